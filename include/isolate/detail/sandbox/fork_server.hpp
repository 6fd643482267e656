// The fork server of isolate::sandbox: a process forked from the host while
// it is still single-threaded (at the top of main), which forks one child
// per run. fork() of a multi-threaded host is never safe (a lock held by
// another thread stays held in the child forever); a fork of this
// single-threaded server is, and it still runs the host's own code.
//
// Per run, the server forks C. Under a preset that protects the host, C
// makes new user, PID, mount, IPC and UTS namespaces (and a network one),
// the server writes its id maps as for a worker (sandbox/spawn.hpp), and C
// forks G, PID 1 of the namespaces: G mounts a /proc of its own and forks
// R, the runner, then reaps and reports R's ending (sandbox/init.hpp).
// Without namespaces C is the one that forks R and reports. R applies the
// limits (sandbox/worker_limits.hpp), reads the arguments from the host,
// runs the function and sends its result, then _exits: no destructor or
// atexit handler of the host runs in it.
//
// Each of these dies with its parent (PR_SET_PDEATHSIG): the host killing C
// through the pidfd it is given ends the run, whatever R is doing.
#ifndef ISOLATE_DETAIL_SANDBOX_FORK_SERVER_HPP
#define ISOLATE_DETAIL_SANDBOX_FORK_SERVER_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/process/child.hpp"
#include "isolate/detail/process/handshake.hpp"
#include "isolate/detail/process/unique_fd.hpp"
#include "isolate/detail/sandbox/function_call.hpp"
#include "isolate/detail/sandbox/init.hpp"
#include "isolate/detail/sandbox/spawn.hpp"
#include "isolate/detail/sandbox/worker_limits.hpp"
#include "isolate/detail/system_call.hpp"
#include "isolate/error.hpp"
#include "isolate/wire/archive.hpp"
#include "isolate/wire/buffer.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <initializer_list>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace isolate::detail::sandbox {

// The call, the first frame the host sends on a run's socket; the arguments follow.
struct call_message {
  code_address trampoline;
  code_address function;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(trampoline, function);
  }
};

// What the host asks the server for: a run under these limits (the call
// comes later, on the run's own socket, so that a run can be started before
// its function is known: a warm pool), or whether it has a call's code (the
// server runs no function, so its answer cannot be forged by one).
struct run_request {
  enum class kind : std::uint8_t { start_run, check_code };
  kind asked = kind::start_run;
  limits_message limits;
  call_message call;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(asked, limits, call);
  }
};

// The server's answer: 0 and C's pidfd attached, or why no run started.
struct run_started {
  std::int32_t error = 0;  // errno
  std::string what;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(error, what);
  }
};

// What the runner sends first: the limits as they hold, or the first that cannot.
struct limits_outcome {
  std::string failure;  // empty: every limit holds (or best effort)
  limits::report report;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(failure, report);
  }
};

// Frames on a run's socket: an 8-byte size, then that many bytes.
inline bool write_all(int fd, const void* data, std::size_t size) noexcept {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const auto n = retry_on_eintr([&] { return ::send(fd, p, size, MSG_NOSIGNAL); });
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

inline bool read_all(int fd, void* data, std::size_t size) noexcept {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    const auto n = retry_on_eintr([&] { return ::read(fd, p, size); });
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// Frames written in one sendmsg where the socket takes them whole: a
// reader blocked on the first frame's size wakes once, with all of it there.
inline bool write_frames(int fd, std::initializer_list<std::span<const std::byte>> frames,
                         std::span<const int> fds = {}) noexcept {
  std::array<std::uint64_t, 4> sizes{};
  std::array<iovec, 8> pieces{};
  if (frames.size() > sizes.size()) return false;
  std::size_t count = 0;
  for (const auto& frame : frames) {
    std::uint64_t& size = sizes[count / 2];
    size = frame.size();
    pieces[count] = {&size, sizeof size};
    pieces[count + 1] = {const_cast<std::byte*>(frame.data()), frame.size()};
    count += 2;
  }
  msghdr msg{};
  msg.msg_iov = pieces.data();
  msg.msg_iovlen = count;
  // Descriptors ride on the first byte.
  std::array<char, CMSG_SPACE(sizeof(int))> control{};
  if (fds.size() > 1) return false;
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int));
  }
  const auto sent = retry_on_eintr([&] { return ::sendmsg(fd, &msg, MSG_NOSIGNAL); });
  if (sent < 0) return false;
  // What the socket's buffer did not take at once (a large frame), piece by piece.
  auto skip = static_cast<std::size_t>(sent);
  for (std::size_t i = 0; i < count; ++i) {
    if (skip >= pieces[i].iov_len) {
      skip -= pieces[i].iov_len;
      continue;
    }
    if (!write_all(fd, static_cast<const char*>(pieces[i].iov_base) + skip, pieces[i].iov_len - skip)) return false;
    skip = 0;
  }
  return true;
}

inline bool write_frame(int fd, std::span<const std::byte> bytes) noexcept { return write_frames(fd, {bytes}); }

// A frame from the host, which is trusted.
inline std::optional<std::vector<std::byte>> read_frame(int fd) {
  std::uint64_t size = 0;
  if (!read_all(fd, &size, sizeof size)) return std::nullopt;
  std::vector<std::byte> bytes(size);
  if (!read_all(fd, bytes.data(), bytes.size())) return std::nullopt;
  return bytes;
}

template <class T>
wire::buffer encoded(const T& value) {
  wire::buffer out;
  wire::output_archive archive(out);
  archive(value);
  return out;
}

// One message on the server's socket (SOCK_SEQPACKET), with descriptors.
inline bool send_message(int socket, std::span<const std::byte> bytes, std::span<const int> fds) noexcept {
  iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::array<char, CMSG_SPACE(2 * sizeof(int))> control{};
  if (!fds.empty() && fds.size() <= 2) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  }
  return retry_on_eintr([&] { return ::sendmsg(socket, &msg, MSG_NOSIGNAL); }) == static_cast<ssize_t>(bytes.size());
}

// Its size (0: the peer is gone), with the descriptors it carried in `fds`.
inline std::size_t receive_message(int socket, std::span<std::byte> bytes, std::vector<unique_fd>& fds) noexcept {
  std::array<char, CMSG_SPACE(2 * sizeof(int))> control{};
  iovec iov{bytes.data(), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  const auto got = retry_on_eintr([&] { return ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC); });
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); got > 0 && c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.emplace_back(fd);
    }
  }
  return got > 0 ? static_cast<std::size_t>(got) : 0;
}

// Result frames from the runner start with one of these, then its usage
// (so that the host need not wait for its ending), then the value or exception.
enum class result_kind : std::uint8_t { value = 0, exception = 1 };

struct runner_usage {
  std::int64_t user_us = 0, system_us = 0, max_rss_kb = 0;
};

inline runner_usage usage_now() noexcept {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return {usage.ru_utime.tv_sec * 1'000'000 + usage.ru_utime.tv_usec,
          usage.ru_stime.tv_sec * 1'000'000 + usage.ru_stime.tv_usec, usage.ru_maxrss};
}

// The policy a runner applies: opens are not observed (observe_files), as
// no host judges them; Landlock alone does. A refused system call is
// answered by the host, which records it (report_refusals): the listener
// goes to it with the limits.
inline limits::policy policy_of_runs(limits::policy policy) {
  policy.observe_files = false;
  return policy;
}

// The seccomp plan a runner loads under `limits`: what the fork server
// compiles ahead and the host's supervisor answers by.
inline seccomp_plan seccomp_plan_of_runs(const limits_message& limits) {
  return plan_as_loaded(seccomp_plan_for(policy_of_runs(limits.policy), limits.network_namespace));
}

// The runner, R: limits, arguments, the call, the result. Never returns.
[[noreturn]] inline void run_function(int run_fd, const run_request& request, bool namespaces) {
  const auto& policy = request.limits.policy;
  if (policy.protect_host) {
    // The environment is reduced to the allow-list, as a worker's is.
    std::vector<std::string> kept = policy.environment;
    for (const auto& name : policy.inherit_environment) {
      if (const char* value = std::getenv(name.c_str())) kept.push_back(name + "=" + value);
    }
    ::clearenv();
    for (auto& entry : kept) {
      const auto eq = entry.find('=');
      if (eq != std::string::npos) ::setenv(entry.substr(0, eq).c_str(), entry.substr(eq + 1).c_str(), 1);
    }
    if (::chdir(policy.working_directory.c_str()) != 0) ::_exit(worker_exit_failed);
  }
  // stdin is /dev/null (as a sandboxed worker's is): the host's stays the host's.
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) ::_exit(worker_exit_failed);
  if (policy.protect_host) ::dup2(null_fd, 0);
  if (policy.worker_output == limits::output::discard) {
    ::dup2(null_fd, 1);
    ::dup2(null_fd, 2);
  }
  ::close(null_fd);
  const limits::policy applied = policy_of_runs(policy);
  started_as start;
  start.namespaces = namespaces;
  start.network_namespace = request.limits.network_namespace;
  start.no_memory_cgroup = "no memory cgroup for sandboxed functions";
  limits_applier applier(applied, start);
  limits_outcome outcome;
  if (auto failure = applier.apply("")) outcome.failure = *failure;
  outcome.report = applier.report();
  unique_fd listener = applier.take_listener();
  const int passed = listener.get();
  const auto limits_frame = encoded(outcome);
  const bool sent = write_frames(run_fd, {limits_frame.bytes()}, listener ? std::span<const int>(&passed, 1)
                                                                         : std::span<const int>());
  // Closed before the function runs: kept, a refused call would wait forever
  // once the host is gone, and the function could answer its own refusals.
  listener.reset();
  if (!sent || !outcome.failure.empty()) ::_exit(worker_exit_failed);

  // Waits here (a warm run) until the host has a call for it.
  const auto header = read_frame(run_fd);
  const auto arguments = read_frame(run_fd);
  if (!header || !arguments) ::_exit(worker_exit_failed);
  call_message call;  // checked by the server (fork_server::check_code) before the host sent it
  wire::buffer result;
  try {
    wire::input_archive archive{std::span<const std::byte>(*header)};
    archive(call);
  } catch (...) {
    ::_exit(worker_exit_failed);
  }
  constexpr std::size_t head = 1 + sizeof(runner_usage);
  result.resize(head);
  auto kind = result_kind::value;
  try {
    auto enter = reinterpret_cast<trampoline>(static_cast<std::uintptr_t>(call.trampoline.address));
    enter(static_cast<std::uintptr_t>(call.function.address), *arguments, result);
  } catch (...) {
    result.resize(head);
    kind = result_kind::exception;
    wire::encode_exception(result, std::current_exception());
  }
  const runner_usage usage = usage_now();
  std::memcpy(result.data(), &kind, 1);
  std::memcpy(result.data() + 1, &usage, sizeof usage);
  ::_exit(write_frame(run_fd, result.bytes()) ? 0 : worker_exit_failed);
}

// C: namespaces if asked, then G (or C itself) forks R and reports. Never returns.
[[noreturn]] inline void start_run(int server_fd, int sync_fd, int run_fd, int report_fd, const run_request& request) {
  ::signal(SIGCHLD, SIG_DFL);  // the server ignores it; C waits for its child
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::close(server_fd);
  const bool namespaces = request.limits.namespaces;
  if (!namespaces) {
    const pid_t c = ::getpid();
    fork_and_report(report_fd);  // returns in R
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != c) ::_exit(worker_exit_failed);
    run_function(run_fd, request, false);
  }
  int flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
  if (request.limits.network_namespace) flags |= CLONE_NEWNET;
  std::int32_t status = ::unshare(flags) == 0 ? 0 : errno;
  if (!write_all(sync_fd, &status, sizeof status) || status != 0) ::_exit(worker_exit_failed);
  char go = 0;
  if (!read_all(sync_fd, &go, 1)) ::_exit(worker_exit_failed);
  ::close(sync_fd);
  // The ids the maps gave (see spawn_detail::child_main).
  if (::geteuid() == 0 && ::setgroups(0, nullptr) != 0 && errno != EPERM) ::_exit(worker_exit_failed);
  if (::setresgid(0, 0, 0) != 0 || ::setresuid(0, 0, 0) != 0) ::_exit(worker_exit_failed);
  int life[2];
  if (::pipe2(life, O_CLOEXEC) != 0) ::_exit(worker_exit_failed);
  const pid_t g = ::fork();
  if (g < 0) ::_exit(worker_exit_failed);
  if (g == 0) {
    // G, PID 1: dies with C (then the kernel ends the namespace and R in it).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::close(life[1]);
    pollfd hung{life[0], POLLIN, 0};
    if (::poll(&hung, 1, 0) != 0) ::_exit(worker_exit_failed);  // C went before PDEATHSIG held
    ::close(life[0]);
    namespace_proc = mount_own_proc();
    fork_and_report(report_fd);  // returns in R
    run_function(run_fd, request, true);
  }
  ::close(life[0]);
  ::close(run_fd);
  ::close(report_fd);
  int ignored = 0;
  while (::waitpid(g, &ignored, 0) < 0 && errno == EINTR) {
  }
  ::_exit(0);
}

// In namespaces the runner is PID 2: its seccomp filter can be compiled
// here, once per plan, and the fork hands it to the runner, which then only
// loads it (limits_applier's load_plan finds it).
inline void precompile_filter(const limits_message& limits) {
  if (!limits.namespaces) return;
  const seccomp_plan plan = seccomp_plan_of_runs(limits);
  if (seccomp_detail::needs_filter(plan)) seccomp_detail::precompile(plan, 2);
}

// The server's loop: one request, one fork, one answer. Never returns.
[[noreturn]] inline void serve(int server_fd) {
  ::signal(SIGCHLD, SIG_IGN);  // the kernel reaps the C's
  const bool root = ::geteuid() == 0;
  std::vector<std::byte> message(1 << 16);
  for (;;) {
    std::vector<unique_fd> fds;
    const std::size_t got = receive_message(server_fd, message, fds);
    if (got == 0) ::_exit(0);  // the host is gone
    run_started answer;
    unique_fd pidfd;
    run_request request;
    try {
      wire::input_archive archive(std::span<const std::byte>(message.data(), got));
      archive(request);
    } catch (const std::exception& e) {
      answer = {EINVAL, std::string("malformed request: ") + e.what()};
    }
    if (answer.error == 0 && request.asked == run_request::kind::check_code) {
      const bool here = same_code_here(request.call.trampoline) && same_code_here(request.call.function);
      const auto reply = encoded(run_started{here ? 0 : ENOENT, ""});
      if (!send_message(server_fd, reply.bytes(), {})) ::_exit(0);
      continue;
    }
    if (answer.error == 0 && fds.size() != 2) answer = {EINVAL, "a request comes with two descriptors"};
    if (answer.error == 0) {
      int sync[2] = {-1, -1};
      if (request.limits.namespaces && ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync) != 0) {
        answer = {errno, "socketpair"};
      } else {
        unique_fd sync_here(sync[0]), sync_there(sync[1]);
        precompile_filter(request.limits);
        const pid_t c = ::fork();
        if (c == 0) start_run(server_fd, sync_there.get(), fds[0].get(), fds[1].get(), request);
        sync_there.reset();
        if (c < 0) {
          answer = {errno, "fork"};
        } else {
          pidfd = unique_fd(pidfd_open(c));
          if (!pidfd) answer = {errno, "pidfd_open"};
          if (answer.error == 0 && request.limits.namespaces) {
            std::int32_t status = 0;
            if (!read_all(sync_here.get(), &status, sizeof status)) {
              answer = {EPIPE, "the run's process died before making its namespaces"};
            } else if (status != 0) {
              answer = {status, "unshare (new user, PID, mount, IPC, UTS namespaces)"};
            } else if (auto ec = spawn_detail::write_id_maps(c, root)) {
              answer = {ec.value(), "writing the namespace's id maps"};
            } else {
              const char one = 1;
              if (!write_all(sync_here.get(), &one, 1)) answer = {EPIPE, "the run's process died"};
            }
          }
          if (answer.error != 0) ::kill(c, SIGKILL);
        }
      }
    }
    fds.clear();
    const auto reply = encoded(answer);
    const int passed = pidfd.get();
    if (!send_message(server_fd, reply.bytes(), answer.error == 0 ? std::span<const int>(&passed, 1)
                                                                 : std::span<const int>())) {
      ::_exit(0);
    }
  }
}

// The threads of this process, as /proc counts them.
inline std::size_t thread_count() {
  std::size_t count = 0;
  if (DIR* tasks = ::opendir("/proc/self/task")) {
    while (const dirent* entry = ::readdir(tasks)) count += entry->d_name[0] != '.';
    ::closedir(tasks);
  }
  return count;
}

// The host's end of the server. One per host process.
class fork_server {
 public:
  // Starts the server if it is not running; only while the host has one thread.
  static fork_server& instance() {
    static fork_server server;
    return server;
  }

  // Asks for a run; returns C's pidfd.
  unique_fd start(const run_request& request, int run_fd, int report_fd) {
    const int fds[2] = {run_fd, report_fd};
    std::vector<unique_fd> received;
    const run_started answer = exchange(request, fds, received);
    if (answer.error != 0) {
      const auto why = fmt::format("{}: {}", answer.what, std::system_category().message(answer.error));
      const bool namespaces = request.limits.namespaces && answer.error != EAGAIN && answer.error != ENOMEM;
      throw error(namespaces ? errc::limit_unenforceable : errc::load_failed,
                  "the sandbox could not start the function: " + why);
    }
    if (received.size() != 1) throw error(errc::protocol_error, "the fork server sent no process descriptor");
    return std::move(received.front());
  }

  // Whether the server (and so every run) has this code: the function and
  // its trampoline, in the same files at the same bases as in the host.
  // Asked once per function.
  void check_code(const call_message& call) {
    const std::pair key{call.trampoline.address, call.function.address};
    {
      std::lock_guard lock(mutex_);
      if (known_code_.contains(key)) return;
    }
    run_request request;
    request.asked = run_request::kind::check_code;
    request.call = call;
    std::vector<unique_fd> received;
    if (exchange(request, {}, received).error != 0) {
      throw error(errc::unsupported, "the function is not in the sandbox's processes: its library was loaded after "
                                     "isolate::sandbox::start_fork_server()");
    }
    std::lock_guard lock(mutex_);
    known_code_.insert(key);
  }

  pid_t pid() const noexcept { return pid_; }

 private:
  // One request and its answer (the server answers one at a time).
  run_started exchange(const run_request& request, std::span<const int> fds, std::vector<unique_fd>& received) {
    const auto message = encoded(request);
    if (message.size() > (1 << 16)) throw error(errc::message_too_large, "the sandbox's limits take too many bytes");
    std::lock_guard lock(mutex_);
    if (!send_message(socket_.get(), message.bytes(), fds)) {
      throw error(errc::plugin_closed, "the sandbox's fork server is gone: " + last_system_error().message());
    }
    std::array<std::byte, 4096> reply{};
    const std::size_t got = receive_message(socket_.get(), reply, received);
    if (got == 0) throw error(errc::plugin_closed, "the sandbox's fork server is gone");
    run_started answer;
    decoding([&] {
      wire::input_archive archive(std::span<const std::byte>(reply.data(), got));
      archive(answer);
    });
    return answer;
  }

  fork_server() {
#if !defined(__SANITIZE_THREAD__)  // ThreadSanitizer runs a thread of its own, and forks safely
    if (thread_count() > 1) {
      throw error(errc::unsupported,
                  "the sandbox's fork server must start while the host has one thread: call "
                  "isolate::sandbox::start_fork_server() at the top of main");
    }
#endif
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
      throw error(errc::load_failed, "cannot make the fork server's socket: " + last_system_error().message());
    }
    unique_fd here(pair[0]), there(pair[1]);
    const pid_t host = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) throw error(errc::load_failed, "cannot fork the sandbox's fork server: " + last_system_error().message());
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != host) ::_exit(0);
      ::prctl(PR_SET_NAME, "isolate-fork-sv");
      // No handler of the host's runs here, nor in a run: every signal to its default, none blocked.
      for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
      }
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      const int fd = there.get();
      // Only its socket, and the standard streams the runs inherit.
      if (fd > 3) ::close_range(3, static_cast<unsigned>(fd) - 1, 0);
      ::close_range(static_cast<unsigned>(fd) + 1, ~0U, 0);
      serve(fd);
    }
    pid_ = pid;
    socket_ = std::move(here);
  }

  std::mutex mutex_;
  unique_fd socket_;
  pid_t pid_ = -1;
  std::set<std::pair<std::uint64_t, std::uint64_t>> known_code_;  // (trampoline, function) the server has
};

}  // namespace isolate::detail::sandbox

#endif
