#include "isolate/detail/sandbox/seccomp_notify.hpp"

#include "isolate/detail/process/fd_passing.hpp"
#include "isolate/detail/sandbox/landlock.hpp"

#include "sandbox_child.hpp"

#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/posix/stream_descriptor.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

using namespace isolate_test;
using namespace std::chrono_literals;
namespace sandbox = isolate::detail::sandbox;
using isolate::detail::unique_fd;

namespace {

// An errno no kernel path returns for the calls under test: seeing it proves
// the supervisor answered with the plan's errno, not the kernel.
constexpr int marker = EHWPOISON;
constexpr auto patience = 20s;

// In the child: loads the plan and sends its listener to the parent over
// `control` (a bare byte when there is none), then closes its own copy, as
// the worker must before the plugin runs. Reports "ec".
bool load_and_send(sandbox::seccomp_plan const& plan, child_report const& out, int control) {
  std::error_code ec;
  unique_fd listener = sandbox::apply_seccomp_with_listener(plan, ec);
  out.put("ec", ec.value());
  std::byte const tag{1};
  int const fd = listener.get();
  std::span<int const> const fds = listener ? std::span<int const>(&fd, 1) : std::span<int const>();
  isolate::detail::send_with_fds(control, std::span<std::byte const>(&tag, 1), fds, patience, ec);
  return !ec;
}

// The parent's side of a child that sends its listener first: serves its
// notifications and reads its report until it ends. Every wait is bounded.
class supervised_child {
 public:
  // Forks; the child runs body(report, control) and leaves with _exit(0).
  template <class Body>
  explicit supervised_child(Body&& body) {
    int pipe_fds[2], pair[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(pipe_fds[0]);
      ::close(pair[0]);
      body(child_report(pipe_fds[1]), pair[1]);
      ::_exit(0);
    }
    REQUIRE(pid_ > 0);
    ::close(pipe_fds[1]);
    ::close(pair[1]);
    report_.reset(pipe_fds[0]);
    control_.reset(pair[0]);
    deadline_ = std::chrono::steady_clock::now() + patience;
  }
  supervised_child(supervised_child const&) = delete;
  supervised_child& operator=(supervised_child const&) = delete;
  ~supervised_child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      reap();
    }
  }

  // Waits for the child's first message: true when it carried a listener,
  // which a supervisor with `options` now holds.
  bool receive_listener(sandbox::supervisor_options options = {}) {
    std::byte tag{};
    std::error_code ec;
    auto fds = isolate::detail::receive_with_fds_between(control_.get(), std::span<std::byte>(&tag, 1), 0, 1,
                                                         patience, ec);
    REQUIRE_MESSAGE(!ec, ec.message());
    if (fds.empty()) return false;
    supervisor_.emplace(std::move(fds.front()), std::move(options));
    return true;
  }

  sandbox::seccomp_supervisor& supervisor() { return *supervisor_; }
  int control() const noexcept { return control_.get(); }
  pid_t pid() const noexcept { return pid_; }

  // Serves and reads until `done()` holds or the child closes its report
  // pipe; false (after a failed check) when the deadline passed first.
  bool serve(std::function<bool()> const& done = {}, std::size_t limit = 64) {
    while (!(done && done())) {
      if (!report_) return true;
      int const listener = supervisor_ && !hung_up_ ? supervisor_->native_handle() : -1;
      pollfd fds[2] = {{report_.get(), POLLIN, 0}, {listener, POLLIN, 0}};
      auto const left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - std::chrono::steady_clock::now());
      int const n = ::poll(fds, 2, static_cast<int>(std::max<long>(left.count(), 0)));
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) {
        FAIL_CHECK("the supervised child did not finish in time");
        return false;
      }
      if (fds[1].revents != 0) hung_up_ = supervisor_->handle_pending(limit).hung_up;
      if (fds[0].revents != 0) read_report();
    }
    return true;
  }

  // Kills the child and reaps it, serving nothing: its waiting calls are withdrawn.
  child_outcome kill_and_reap() {
    ::kill(pid_, SIGKILL);
    reap();
    return outcome_;
  }

  // Serves to the end, then reaps the child.
  child_outcome finish() {
    if (!serve()) ::kill(pid_, SIGKILL);
    reap();
    parse();
    return outcome_;
  }

  std::string const& report_text() const noexcept { return text_; }

 private:
  void read_report() {
    char buffer[4096];
    ssize_t const n = ::read(report_.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) return;
    if (n <= 0) {
      report_.reset();
      return;
    }
    text_.append(buffer, static_cast<std::size_t>(n));
  }

  void reap() {
    while (::waitpid(pid_, &outcome_.status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

  void parse() {
    std::size_t start = 0;
    while (start < text_.size()) {
      std::size_t const end = text_.find('\n', start);
      std::string const line = text_.substr(start, end - start);
      std::size_t const space = line.rfind(' ');
      if (space != std::string::npos) outcome_.values[line.substr(0, space)] = std::stol(line.substr(space + 1));
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }

  pid_t pid_ = -1;
  unique_fd report_, control_;
  std::optional<sandbox::seccomp_supervisor> supervisor_;
  bool hung_up_ = false;
  std::chrono::steady_clock::time_point deadline_;
  std::string text_;
  child_outcome outcome_;
};

long socket_errno(int family, int type) {
  int const fd = ::socket(family, type, 0);
  if (fd >= 0) ::close(fd);
  return errno_of(fd);
}

long open_errno(char const* path, int flags, int dir = AT_FDCWD) {
  int const fd = ::openat(dir, path, flags | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);
  return errno_of(fd);
}

long connect_errno(void const* address, socklen_t length) {
  // The descriptor is never looked at: the filter refuses connect() first.
  return errno_of(::connect(-1, static_cast<sockaddr const*>(address), length));
}

// The calls a plan refuses in different ways; each reports its errno.
void probe_calls(child_report const& out) {
  out.put("socket_inet", socket_errno(AF_INET, SOCK_STREAM));
  out.put("socket_unix", socket_errno(AF_UNIX, SOCK_STREAM));
  int pair[2];
  out.put("socketpair", errno_of(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair)));
  out.put("fork", fork_errno());
  out.put("clone_newuser", errno_of(::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)));
  out.put("clone3", clone3_errno());
  out.put("thread", thread_errno());
  out.put("ptrace", errno_of(::ptrace(PTRACE_ATTACH, ::getppid(), nullptr, nullptr)));
  out.put("unshare", errno_of(::unshare(CLONE_NEWUSER)));
  out.put("personality", errno_of(::personality(READ_IMPLIES_EXEC)));
  out.put("open_write", open_errno("/nonexistent-isolate-dir/x", O_WRONLY | O_CREAT));
  out.put("open_read", open_errno("/nonexistent-isolate-dir/x", O_RDONLY));
  out.put("kill_parent", errno_of(::kill(::getppid(), 0)));
}

sockaddr_in inet_address(char const* host, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, host, &a.sin_addr);
  return a;
}

// Finds the record of `syscall` whose argument is `argument`.
sandbox::refused_call const* find(std::vector<sandbox::refused_call> const& records, std::string_view syscall,
                                  std::string_view argument) {
  for (auto const& r : records) {
    if (r.syscall == syscall && r.argument == argument) return &r;
  }
  return nullptr;
}

std::string describe(std::vector<sandbox::refused_call> const& records) {
  std::string text;
  for (auto const& r : records) {
    text += std::to_string(r.pid) + " " + r.syscall + "(" + r.argument + ") = " + std::to_string(r.error) + "\n";
  }
  return text;
}

// Threads of `pid` now inside system call `number` (waiting for an answer).
int threads_in_syscall(pid_t pid, long number) {
  int count = 0;
  std::error_code ec;
  for (auto const& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "syscall");
    long nr = -1;
    if (in >> nr && nr == number) ++count;
  }
  return count;
}

// A fresh directory under /tmp, removed with what it holds.
class temp_dir {
 public:
  temp_dir() {
    char name[] = "/tmp/isolate-notify-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path_ = name;
  }
  temp_dir(temp_dir const&) = delete;
  temp_dir& operator=(temp_dir const&) = delete;
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }
  std::string const& path() const noexcept { return path_; }

 private:
  std::string path_;
};

sandbox::supervisor_options options_for(sandbox::seccomp_plan const& plan, std::size_t max_records = 1024) {
  sandbox::supervisor_options options;
  options.plan = plan;
  options.max_records = max_records;
  return options;
}

long elapsed_ns(timespec const& a, timespec const& b) {
  return (b.tv_sec - a.tv_sec) * 1'000'000'000L + (b.tv_nsec - a.tv_nsec);
}

}  // namespace

TEST_CASE("notification is available on this kernel and libseccomp") {
  // LIMITS.md: Linux 6.18 offers user_notif; libseccomp 2.5.4 is API level 6.
  CHECK(sandbox::seccomp_notify_available());
}

TEST_CASE("a notify plan is refused by apply_seccomp; without notify, no listener and the errno answers") {
  child_outcome const r = in_child([](child_report const& out) {
    sandbox::seccomp_plan plan;
    plan.deny_sockets = plan.notify = true;
    std::error_code ec;
    sandbox::apply_seccomp(plan, ec);  // nobody would hold the listener
    out.put("apply_notify", ec.value());
    plan.notify = false;
    plan.observe_opens = true;  // observing needs a listener
    unique_fd listener = sandbox::apply_seccomp_with_listener(plan, ec);
    out.put("observe_alone", ec.value());
    plan.observe_opens = false;
    listener = sandbox::apply_seccomp_with_listener(plan, ec);
    out.put("fallback_ec", ec.value());
    out.put("fallback_listener", listener ? 1 : 0);
    out.put("socket", socket_errno(AF_INET, SOCK_STREAM));
  });
  REQUIRE(r.exited_cleanly());
  CHECK(r["apply_notify"] == EINVAL);
  CHECK(r["observe_alone"] == EINVAL);
  CHECK(r["fallback_ec"] == 0);
  CHECK(r["fallback_listener"] == 0);
  CHECK(r["socket"] == EACCES);
}

TEST_CASE("the supervisor sees each refusal as it happens, with its argument and thread, and answers it") {
  sandbox::seccomp_plan plan;
  plan.policy = sandbox::syscall_policy::deny_list;
  plan.deny_sockets = plan.deny_new_processes = plan.notify = true;
  plan.refused_errno = marker;
  supervised_child child([&](child_report const& out, int control) {
    if (!load_and_send(plan, out, control)) return;
    out.put("pid", ::getpid());
    out.put("parent", ::getppid());
    out.put("inet", socket_errno(AF_INET, SOCK_STREAM | SOCK_CLOEXEC));
    out.put("inet6", socket_errno(AF_INET6, SOCK_DGRAM));
    out.put("ptrace", errno_of(::ptrace(PTRACE_ATTACH, ::getppid(), nullptr, nullptr)));
    out.put("mount", errno_of(::mount("none", "/mnt", "tmpfs", 0, nullptr)));
    out.put("fork", fork_errno());
    // Allowed calls do not wait for anyone.
    int pair[2];
    out.put("socketpair", errno_of(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair)));
    out.put("thread", thread_errno());
  });
  REQUIRE(child.receive_listener(options_for(plan)));
  child_outcome const r = child.finish();
  REQUIRE(r.exited_cleanly());
  CHECK(r["ec"] == 0);
  CHECK(r["inet"] == EACCES);
  CHECK(r["inet6"] == EACCES);
  CHECK(r["ptrace"] == marker);
  CHECK(r["mount"] == marker);
  CHECK(r["fork"] == EAGAIN);
  CHECK(r["socketpair"] == 0);
  CHECK(r["thread"] == 0);

  std::vector<sandbox::refused_call> const records = child.supervisor().take_records();
  INFO(describe(records));
  REQUIRE(records.size() == 5);
  CHECK(records[0].syscall == "socket");
  CHECK(records[0].argument == "AF_INET SOCK_STREAM|SOCK_CLOEXEC");
  CHECK(records[0].error == EACCES);
  CHECK(records[0].pid == r["pid"]);
  CHECK(records[1].argument == "AF_INET6 SOCK_DGRAM");
  CHECK(records[2].syscall == "ptrace");
  CHECK(records[2].argument == "PTRACE_ATTACH pid " + std::to_string(r["parent"]));
  CHECK(records[2].error == marker);
  CHECK(records[3].syscall == "mount");
  CHECK(records[3].argument == "/mnt");
  CHECK(records[4].syscall == "clone");  // glibc's fork()
  CHECK(records[4].argument.starts_with("flags 0x"));
  CHECK(records[4].error == EAGAIN);
  sandbox::supervisor_counts const counts = child.supervisor().counts();
  CHECK(counts.refused == 5);
  CHECK(counts.continued == 0);
  CHECK(counts.dropped == 0);
  CHECK(child.supervisor().take_records().empty());
}

TEST_CASE("the supervisor answers every refusal with the errno the plan answers without notify") {
  for (auto const policy : {sandbox::syscall_policy::deny_list, sandbox::syscall_policy::allow_list}) {
    for (bool const options : {false, true}) {
      sandbox::seccomp_plan plan;
      plan.policy = policy;
      plan.deny_sockets = options;
      plan.deny_unix_sockets = !options;
      plan.deny_ip_sockets = !options;
      plan.deny_new_processes = options;
      plan.refused_errno = marker;
      CAPTURE(static_cast<int>(policy));
      CAPTURE(options);
      child_outcome const plain = in_child([&](child_report const& out) {
        std::error_code ec;
        sandbox::apply_seccomp(plan, ec);
        out.put("ec", ec.value());
        if (!ec) probe_calls(out);
      });
      REQUIRE(plain.exited_cleanly());
      CHECK(plain["ec"] == 0);
      // Observing opens with no trees to judge them by lets every one the plan allows through.
      for (bool const observe : {false, true}) {
        CAPTURE(observe);
        sandbox::seccomp_plan notifying = plan;
        notifying.notify = true;
        notifying.observe_opens = observe;
        supervised_child child([&](child_report const& out, int control) {
          if (load_and_send(notifying, out, control)) probe_calls(out);
        });
        REQUIRE(child.receive_listener(options_for(notifying)));
        child_outcome const notified = child.finish();
        REQUIRE(notified.exited_cleanly());
        CHECK(plain.values == notified.values);
        CHECK(notified["socket_unix"] == EACCES);  // refused either way
        CHECK(notified["clone3"] == ENOSYS);       // answered by the filter, not notified
        sandbox::supervisor_counts const counts = child.supervisor().counts();
        CHECK(counts.refused >= 5);
        // open_read, and open_write where the plan allows it (an allow-list refuses it: never CONTINUEd).
        bool const allow_list = policy == sandbox::syscall_policy::allow_list;
        CHECK(counts.continued == (observe ? (allow_list ? 1U : 2U) : 0U));
        for (auto const& call : child.supervisor().take_records()) CHECK(call.syscall != "clone3");
      }
    }
  }
}

TEST_CASE("addresses and paths are read from the worker's memory, bounded and printable") {
  sandbox::seccomp_plan plan;
  plan.policy = sandbox::syscall_policy::allow_list;
  plan.notify = true;
  plan.refused_errno = marker;
  std::string const long_path = "/" + std::string(1000, 'a');
  supervised_child child([&](child_report const& out, int control) {
    if (!load_and_send(plan, out, control)) return;
    sockaddr_in const v4 = inet_address("127.0.0.1", 8080);
    out.put("v4", connect_errno(&v4, sizeof v4));
    sockaddr_in6 v6{};
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(443);
    v6.sin6_addr = in6addr_loopback;
    out.put("v6", connect_errno(&v6, sizeof v6));
    sockaddr_un path{};
    path.sun_family = AF_UNIX;
    std::strcpy(path.sun_path, "/run/isolate-test.sock");
    out.put("unix", connect_errno(&path, sizeof path));
    sockaddr_un abstract{};
    abstract.sun_family = AF_UNIX;
    std::memcpy(abstract.sun_path, "\0isolate", 8);
    out.put("abstract", connect_errno(&abstract, offsetof(sockaddr_un, sun_path) + 8));
    sockaddr_in const dns = inet_address("10.0.0.1", 53);
    out.put("sendto", errno_of(::sendto(-1, "x", 1, 0, reinterpret_cast<sockaddr const*>(&dns), sizeof dns)));
    out.put("open_write", open_errno("/tmp/isolate-forbidden", O_WRONLY | O_CREAT));
    out.put("long", open_errno(long_path.c_str(), O_WRONLY));
    out.put("control_chars", open_errno("/tmp/a\nb\x01\\", O_WRONLY));
    // A pointer to nothing: the kernel would say EFAULT; the record says "?".
    out.put("bad_pointer", errno_of(::syscall(SYS_openat, AT_FDCWD, 8L, O_WRONLY, 0)));
  });
  REQUIRE(child.receive_listener(options_for(plan)));
  child_outcome const r = child.finish();
  REQUIRE(r.exited_cleanly());
  for (char const* key : {"v4", "v6", "unix", "abstract", "sendto", "open_write", "long", "control_chars", "bad_pointer"}) {
    CAPTURE(key);
    CHECK(r[key] == marker);
  }
  std::vector<sandbox::refused_call> const records = child.supervisor().take_records();
  INFO(describe(records));
  CHECK(find(records, "connect", "127.0.0.1:8080") != nullptr);
  CHECK(find(records, "connect", "[::1]:443") != nullptr);
  CHECK(find(records, "connect", "/run/isolate-test.sock") != nullptr);
  CHECK(find(records, "connect", "@isolate") != nullptr);
  CHECK(find(records, "sendto", "10.0.0.1:53") != nullptr);
  CHECK(find(records, "openat", "/tmp/isolate-forbidden") != nullptr);
  CHECK(find(records, "openat", "/tmp/a\\x0ab\\x01\\x5c") != nullptr);
  CHECK(find(records, "openat", "?") != nullptr);
  bool long_seen = false;
  for (auto const& call : records) {
    CHECK(call.argument.size() <= sandbox::seccomp_supervisor::max_argument);
    if (call.argument.starts_with("/aaaa")) {
      long_seen = true;
      CHECK(call.argument.size() == sandbox::seccomp_supervisor::max_argument);
      CHECK(call.argument.ends_with("..."));
    }
  }
  CHECK(long_seen);
}

TEST_CASE("closing the listener: the waiting refused call and every later one fail with ENOSYS, none hangs") {
  sandbox::seccomp_plan plan;
  plan.deny_sockets = plan.notify = true;
  supervised_child child([&](child_report const& out, int control) {
    if (!load_and_send(plan, out, control)) return;
    out.put("answered", socket_errno(AF_INET, SOCK_STREAM));
    out.put("waiting_when_closed", socket_errno(AF_INET, SOCK_STREAM));  // the parent closes while this waits
    out.put("after_close", socket_errno(AF_INET, SOCK_STREAM));
  });
  REQUIRE(child.receive_listener(options_for(plan)));
  auto& supervisor = child.supervisor();
  // One notification a step: the child's second call can follow the first
  // answer before the step ends, and must be left waiting, not answered.
  REQUIRE(child.serve([&] { return supervisor.counts().refused == 1; }, 1));
  // The second call's notification: wait until it is there, then close without answering.
  pollfd ready{supervisor.native_handle(), POLLIN, 0};
  REQUIRE(::poll(&ready, 1, static_cast<int>(std::chrono::milliseconds(patience).count())) == 1);
  supervisor.close();
  supervisor.close();  // twice is fine
  CHECK(supervisor.native_handle() == -1);
  CHECK(supervisor.handle_pending().hung_up);
  child_outcome const r = child.finish();
  REQUIRE(r.exited_cleanly());
  CHECK(r["answered"] == EACCES);
  CHECK(r["waiting_when_closed"] == ENOSYS);
  CHECK(r["after_close"] == ENOSYS);
}

TEST_CASE("a thread killed while its call waits: the supervisor sees the hang-up, records nothing, throws nothing") {
  sandbox::seccomp_plan plan;
  plan.deny_sockets = plan.notify = true;
  supervised_child child([&](child_report const& out, int control) {
    if (!load_and_send(plan, out, control)) return;
    out.put("socket", socket_errno(AF_INET, SOCK_STREAM));
  });
  REQUIRE(child.receive_listener(options_for(plan)));
  auto& supervisor = child.supervisor();
  pollfd ready{supervisor.native_handle(), POLLIN, 0};
  REQUIRE(::poll(&ready, 1, static_cast<int>(std::chrono::milliseconds(patience).count())) == 1);
  child_outcome const r = child.kill_and_reap();  // no task uses the filter any more
  CHECK(r.killed_by(SIGKILL));
  sandbox::pending_step const step = supervisor.handle_pending();
  CHECK(step.hung_up);
  CHECK(step.handled == 0);
  CHECK(supervisor.take_records().empty());
  CHECK(supervisor.counts().refused == 0);
}

TEST_CASE("a flood from many threads is answered a bounded number at a time, driven by Asio; records are capped") {
  constexpr int threads = 8;
  sandbox::seccomp_plan plan;
  plan.deny_sockets = plan.notify = true;
  supervised_child child([&](child_report const& out, int control) {
    if (!load_and_send(plan, out, control)) return;
    out.put("pid", ::getpid());
    std::atomic<int> refused{0};
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) {
      pool.emplace_back([&] {
        if (socket_errno(AF_INET, SOCK_STREAM) == EACCES) ++refused;
      });
    }
    for (auto& t : pool) t.join();
    out.put("refused", refused);
  });
  REQUIRE(child.receive_listener(options_for(plan, 5)));
  auto& supervisor = child.supervisor();
  // Every thread waiting at once (nothing to wait on for that but /proc).
  auto const deadline = std::chrono::steady_clock::now() + patience;
  while (threads_in_syscall(child.pid(), SYS_socket) < threads && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  REQUIRE(threads_in_syscall(child.pid(), SYS_socket) == threads);
  sandbox::pending_step const first = supervisor.handle_pending(3);
  CHECK(first.handled == 3);
  CHECK(first.more);
  CHECK_FALSE(first.hung_up);

  // The rest through an io_context, two at a time.
  asio::io_context io;
  asio::posix::stream_descriptor watch(io, ::dup(supervisor.native_handle()));
  std::size_t largest_step = 0, steps = 0;
  bool hung_up = false;
  std::function<void(std::error_code)> on_ready = [&](std::error_code ec) {
    if (ec) return;
    sandbox::pending_step const step = supervisor.handle_pending(2);
    largest_step = std::max(largest_step, step.handled);
    ++steps;
    if (step.hung_up) {
      hung_up = true;
      return;
    }
    if (step.more) {
      asio::post(io, [&] { on_ready({}); });
    } else {
      watch.async_wait(asio::posix::stream_descriptor::wait_read, on_ready);
    }
  };
  // Edge-triggered epoll: with notifications already waiting, start by handling, not by waiting.
  asio::post(io, [&] { on_ready({}); });
  io.run_for(patience);
  CHECK(hung_up);  // every thread answered, the child exited
  CHECK(largest_step <= 2);
  CHECK(steps >= 3);
  child_outcome const r = child.finish();
  REQUIRE(r.exited_cleanly());
  CHECK(r["refused"] == threads);
  sandbox::supervisor_counts const counts = supervisor.counts();
  CHECK(counts.refused == threads);
  CHECK(counts.dropped == threads - 5);
  std::vector<sandbox::refused_call> const records = supervisor.take_records();
  CHECK(records.size() == 5);
  for (auto const& call : records) CHECK(call.pid != r["pid"]);  // threads, not the main one
}

TEST_CASE("in a PID namespace, the pid recorded is the thread's in the supervisor's namespace") {
  sandbox::seccomp_plan plan;
  plan.deny_sockets = plan.notify = true;
  supervised_child child([&](child_report const& out, int control) {
    // The worker's layout: a user namespace and a PID namespace, the worker PID 1 in it.
    if (::unshare(CLONE_NEWUSER | CLONE_NEWPID) != 0) {
      out.put("unshare", errno);
      std::byte const tag{0};
      std::error_code ec;
      isolate::detail::send_with_fds(control, std::span<std::byte const>(&tag, 1), {}, patience, ec);
      return;
    }
    pid_t const worker = ::fork();
    if (worker == 0) {
      if (load_and_send(plan, out, control)) {
        out.put("inside_pid", ::getpid());
        out.put("socket", socket_errno(AF_INET, SOCK_STREAM));
        sockaddr_in const v4 = inet_address("192.0.2.7", 80);
        out.put("connect", connect_errno(&v4, sizeof v4));
      }
      ::_exit(0);
    }
    out.put("outside_pid", worker);
    int status = 0;
    if (worker > 0) ::waitpid(worker, &status, 0);
    out.put("worker_status", status);
  });
  bool const listener = child.receive_listener(options_for(plan));
  child_outcome const r = child.finish();
  REQUIRE(r.exited_cleanly());
  if (!listener) {
    MESSAGE("no PID namespace here (unshare: " << std::strerror(static_cast<int>(r["unshare"])) << "): skipped");
    return;
  }
  CHECK(r["worker_status"] == 0);
  CHECK(r["inside_pid"] == 1);
  CHECK(r["socket"] == EACCES);
  std::vector<sandbox::refused_call> const records = child.supervisor().take_records();
  INFO(describe(records));
  REQUIRE(records.size() == 1);  // connect() is allowed by this plan
  CHECK(records[0].pid == r["outside_pid"]);
  CHECK(records[0].pid != 1);
  CHECK(records[0].argument == "AF_INET SOCK_STREAM");
}

namespace {

// The files of the observation tests: a read tree, a write tree, and what is
// outside both, with symlinks across the border.
struct observed_tree {
  temp_dir dir;
  observed_tree() {
    std::filesystem::create_directories(dir / "read/sub");
    std::filesystem::create_directories(dir / "write");
    std::filesystem::create_directories(dir / "outside");
    std::ofstream(dir / "read/file") << "r";
    std::ofstream(dir / "read/sub/file") << "r";
    std::ofstream(dir / "outside/file") << "o";
    std::filesystem::create_symlink(dir / "outside/file", dir / "read/link_out");  // inside, pointing out
    std::filesystem::create_symlink(dir / "read/file", dir / "outside/link_in");   // outside, pointing in
  }
  sandbox::landlock_plan landlock() const {
    sandbox::landlock_plan plan;
    plan.restrict_filesystem = true;
    plan.read_paths = {dir / "read"};
    plan.write_paths = {dir / "write"};
    return plan;
  }
  // The supervisor's view of the same trees.
  sandbox::supervisor_options options_for(sandbox::seccomp_plan const& plan) const {
    sandbox::supervisor_options options = ::options_for(plan);
    options.read_paths = landlock().read_paths;
    options.write_paths = landlock().write_paths;
    return options;
  }
};

// Opens inside and outside Landlock's trees; each reports its errno.
void open_calls(observed_tree const& t, child_report const& out) {
  out.put("read", open_errno((t.dir / "read/file").c_str(), O_RDONLY));
  out.put("read_dir", open_errno((t.dir / "read/sub").c_str(), O_RDONLY | O_DIRECTORY));
  out.put("read_for_write", open_errno((t.dir / "read/file").c_str(), O_WRONLY));
  out.put("create", open_errno((t.dir / "write/new").c_str(), O_WRONLY | O_CREAT));
  out.put("create_in_read", open_errno((t.dir / "read/new").c_str(), O_WRONLY | O_CREAT));
  out.put("outside", open_errno((t.dir / "outside/file").c_str(), O_RDONLY));
  out.put("link_out", open_errno((t.dir / "read/link_out").c_str(), O_RDONLY));
  out.put("link_in", open_errno((t.dir / "outside/link_in").c_str(), O_RDONLY));
  out.put("dotdot", open_errno((t.dir / "read/sub/../../outside/file").c_str(), O_RDONLY));
  out.put("absent", open_errno((t.dir / "read/absent").c_str(), O_RDONLY));
  out.put("creat", errno_of(::creat((t.dir / "write/by_creat").c_str(), 0600)));
  int const read_dir = ::open((t.dir / "read").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  out.put("at_dir", open_errno("sub/file", O_RDONLY, read_dir));
  out.put("at_dir_out", open_errno("../outside/file", O_RDONLY, read_dir));
  out.put("chdir", errno_of(::chdir((t.dir / "read/sub").c_str())));
  out.put("relative", open_errno("file", O_RDONLY));
  out.put("relative_out", open_errno("../../outside/file", O_RDONLY));
}

}  // namespace

TEST_CASE("observed opens: inside Landlock's trees go through (Landlock deciding), outside are refused and recorded") {
  observed_tree const t;
  if (sandbox::landlock_abi() < 1) {
    MESSAGE("no Landlock here: skipped");
    return;
  }
  sandbox::seccomp_plan plan;
  plan.policy = sandbox::syscall_policy::deny_list;
  // Landlock alone: the answers the observation must not change.
  child_outcome const plain = in_child([&](child_report const& out) {
    std::error_code ec;
    sandbox::apply_landlock(t.landlock(), ec);
    out.put("landlock_ec", ec.value());
    sandbox::apply_seccomp(plan, ec);
    out.put("ec", ec.value());
    if (!ec) open_calls(t, out);
  });
  REQUIRE(plain.exited_cleanly());
  REQUIRE(plain["landlock_ec"] == 0);

  sandbox::seccomp_plan observing = plan;
  observing.notify = observing.observe_opens = true;
  supervised_child child([&](child_report const& out, int control) {
    std::error_code ec;
    sandbox::apply_landlock(t.landlock(), ec);
    out.put("landlock_ec", ec.value());
    if (load_and_send(observing, out, control)) open_calls(t, out);
  });
  REQUIRE(child.receive_listener(t.options_for(observing)));
  child_outcome const observed = child.finish();
  REQUIRE(observed.exited_cleanly());
  CHECK(plain.values == observed.values);
  CHECK(observed["read"] == 0);
  CHECK(observed["read_dir"] == 0);
  CHECK(observed["create"] == 0);
  CHECK(observed["creat"] == 0);
  CHECK(observed["link_in"] == 0);
  CHECK(observed["at_dir"] == 0);
  CHECK(observed["relative"] == 0);
  CHECK(observed["absent"] == ENOENT);  // unjudged: the kernel's answer
  for (char const* key : {"read_for_write", "create_in_read", "outside", "link_out", "dotdot", "at_dir_out", "relative_out"}) {
    CAPTURE(key);
    CHECK(observed[key] == EACCES);
  }
  std::vector<sandbox::refused_call> const records = child.supervisor().take_records();
  INFO(describe(records));
  CHECK(records.size() == 7);
  CHECK(find(records, "openat", t.dir / "outside/file") != nullptr);
  CHECK(find(records, "openat", t.dir / "read/link_out") != nullptr);
  CHECK(find(records, "openat", "../outside/file") != nullptr);
  CHECK(find(records, "openat", "../../outside/file") != nullptr);
  for (auto const& call : records) CHECK(call.error == EACCES);
  CHECK(child.supervisor().counts().continued >= 8);
}

TEST_CASE("cost: a notified refusal and an observed open, against their errno and unobserved baselines") {
  constexpr int rounds = 2000;
  observed_tree const t;
  std::string const file = t.dir / "read/file";
  // ns per call: `call` `rounds` times, after a warm-up.
  auto const time_calls = [&](auto&& call) {
    for (int i = 0; i < 100; ++i) call();
    timespec a{}, b{};
    ::clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < rounds; ++i) call();
    ::clock_gettime(CLOCK_MONOTONIC, &b);
    return elapsed_ns(a, b) / rounds;
  };
  auto const refuse = [] { (void)socket_errno(AF_INET, SOCK_STREAM); };
  auto const open_file = [&] { (void)open_errno(file.c_str(), O_RDONLY); };

  bool const landlock = sandbox::landlock_abi() >= 1;
  sandbox::seccomp_plan plan;
  plan.deny_sockets = true;
  child_outcome const baseline = in_child([&](child_report const& out) {
    if (landlock) {
      std::error_code ec;
      sandbox::apply_landlock(t.landlock(), ec);
    }
    out.put("open_ns", time_calls(open_file));
    std::error_code ec;
    sandbox::apply_seccomp(plan, ec);
    out.put("refuse_ns", time_calls(refuse));
    out.put("getppid_ns", time_calls([] { (void)::getppid(); }));
  });
  REQUIRE(baseline.exited_cleanly());

  sandbox::seccomp_plan notifying = plan;
  notifying.notify = notifying.observe_opens = true;
  supervised_child child([&](child_report const& out, int control) {
    if (landlock) {
      std::error_code ec;
      sandbox::apply_landlock(t.landlock(), ec);
    }
    if (!load_and_send(notifying, out, control)) return;
    out.put("open_ns", time_calls(open_file));
    out.put("refuse_ns", time_calls(refuse));
  });
  REQUIRE(child.receive_listener(t.options_for(notifying)));
  child_outcome const notified = child.finish();
  REQUIRE(notified.exited_cleanly());
  CHECK(child.supervisor().counts().continued >= rounds);
  CHECK(child.supervisor().counts().refused >= rounds);
  std::string const figures = "per call, ns: trivial syscall " + std::to_string(baseline["getppid_ns"]) +
                              "; socket() refused by errno " + std::to_string(baseline["refuse_ns"]) +
                              ", by the supervisor " + std::to_string(notified["refuse_ns"]) + "; open() " +
                              std::to_string(baseline["open_ns"]) + ", observed (CONTINUE) " +
                              std::to_string(notified["open_ns"]) + (landlock ? "" : " (no Landlock)");
  MESSAGE(figures);
}
