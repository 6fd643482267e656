// Starting a worker program and watching it until it exits.
//
// The child is started with posix_spawn (a vfork-style clone followed by exec,
// safe in a multi-threaded host, unlike a bare fork) and tracked through a
// pidfd, so signals and waits can never hit a recycled PID.
#ifndef ISOLATE_DETAIL_PROCESS_CHILD_HPP
#define ISOLATE_DETAIL_PROCESS_CHILD_HPP

#include "isolate/detail/config.hpp"

#include "isolate/detail/deadline.hpp"
#include "isolate/detail/process/launcher.hpp"
#include "isolate/detail/process/readiness.hpp"
#include "isolate/detail/process/process_usage.hpp"
#include "isolate/detail/process/unique_fd.hpp"
#include "isolate/detail/system_call.hpp"
#include "isolate/detail/throw_error.hpp"

#include <fmt/format.h>
#include <asio/async_result.hpp>
#include <asio/compose.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>

extern "C" char** environ;  // NOLINT: POSIX declares it nowhere in C++ headers

namespace isolate::detail {

struct spawn_options {
  std::string program;                           // path of the executable; PATH is not searched
  std::vector<std::string> args;                 // argv[1..]; argv[0] is `program`
  std::vector<std::pair<int, int>> inherit_fds;  // (fd in parent, fd number in child)
  std::vector<std::string> env;                  // "NAME=value" entries; empty = the parent's
  bool exact_env = false;                        // true: `env` even when empty, never the parent's
  std::string working_directory{};               // empty: the parent's
  bool null_stdin = false;                       // stdin from /dev/null
  bool discard_output = false;                   // stdout and stderr to /dev/null
};

struct exit_status {
  bool signaled = false;
  int code_or_signal = 0;
  bool core_dumped = false;

  bool exited_with(int code) const noexcept { return !signaled && code_or_signal == code; }
  bool killed_by(int sig) const noexcept { return signaled && code_or_signal == sig; }

  // "exited with status 3", "killed by signal 11 (SIGSEGV), core dumped"
  std::string describe() const {
    if (!signaled) return fmt::format("exited with status {}", code_or_signal);
    char const* abbrev = ::sigabbrev_np(code_or_signal);
    std::string text = abbrev != nullptr ? fmt::format("killed by signal {} (SIG{})", code_or_signal, abbrev)
                                         : fmt::format("killed by signal {}", code_or_signal);
    if (core_dumped) text += ", core dumped";
    return text;
  }

  friend bool operator==(exit_status const&, exit_status const&) = default;
};


inline int pidfd_open(pid_t pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0u)); }

inline int pidfd_send_signal(int pidfd, int sig) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0u));
}

inline exit_status status_from(siginfo_t const& info) noexcept {
  exit_status s;
  s.signaled = info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED;
  s.core_dumped = info.si_code == CLD_DUMPED;
  s.code_or_signal = info.si_status;
  return s;
}

inline void set_error(std::error_code& ec, int err) noexcept { ec.assign(err, std::system_category()); }

// Shared by the child_process and any exit wait in flight, so a wait can
// complete after the child_process object was moved or destroyed.
struct child_state {
  pid_t pid = -1;
  unique_fd pidfd;
  std::mutex mutex;
  std::optional<exit_status> status;  // set once, by whoever reaps
  resource_usage usage;                // what the child and what it reaped used, once reaped

  // waitid without blocking, with the rusage its system call gives (glibc's wrapper does not).
  int reap(siginfo_t& info, rusage& resources) noexcept {
    return static_cast<int>(retry_on_eintr([&] {
      return ::syscall(SYS_waitid, P_PIDFD, pidfd.get(), &info, WEXITED | WNOHANG, &resources);
    }));
  }

  // Reaps the child if it has exited; never blocks. Serialised so that two
  // reapers cannot race (the loser would get ECHILD and lose the status).
  std::optional<exit_status> try_reap(std::error_code& ec) {
    std::lock_guard lock(mutex);
    ec.clear();
    if (status) return status;
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    rusage resources{};
    const int rc = reap(info, resources);
    if (rc < 0) {
      set_error(ec, errno);
      return std::nullopt;
    }
    if (info.si_pid == 0) return std::nullopt;  // still running
    status = status_from(info);
    usage = usage_from(resources);
    return status;
  }

  // Kills and reaps, waiting at most `patience` for the kernel to tear the
  // child down; false if it was not gone by then (stuck in the kernel: the
  // launcher reaps it later). Waits with poll, then reaps with WNOHANG: the
  // pidfd's file description may be non-blocking (Asio sets O_NONBLOCK on
  // the duplicate an exit wait watches), and then a blocking waitid would
  // fail with EAGAIN.
  bool kill_and_reap(std::chrono::milliseconds patience) noexcept {
    std::lock_guard lock(mutex);
    if (status) return true;
    pidfd_send_signal(pidfd.get(), SIGKILL);
    const auto deadline = deadline_after(patience);
    for (;;) {
      siginfo_t info;
      std::memset(&info, 0, sizeof info);
      rusage resources{};
      const int rc = reap(info, resources);
      if (rc == 0 && info.si_pid != 0) {
        status = status_from(info);
        usage = usage_from(resources);
        return true;
      }
      if (rc < 0 && errno != EAGAIN) return true;  // not ours to reap (ECHILD): nothing is left to wait for
      std::error_code ignored;
      if (!wait_ready(pidfd.get(), POLLIN, deadline, ignored) && ignored == std::errc::timed_out) return false;
    }
  }

  bool exit_observable() const noexcept {
    pollfd p{pidfd.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }
};

// posix_spawn's attribute and file-action objects, destroyed on every path.
struct spawn_attributes {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  bool attr_ok = false;
  bool actions_ok = false;
  spawn_attributes() {
    attr_ok = ::posix_spawnattr_init(&attr) == 0;
    actions_ok = ::posix_spawn_file_actions_init(&actions) == 0;
  }
  ~spawn_attributes() {
    if (attr_ok) ::posix_spawnattr_destroy(&attr);
    if (actions_ok) ::posix_spawn_file_actions_destroy(&actions);
  }
  spawn_attributes(spawn_attributes const&) = delete;
  spawn_attributes& operator=(spawn_attributes const&) = delete;
};

template <typename Executor>
struct wait_exit_op {
  std::shared_ptr<child_state> state;
  Executor executor;
  std::shared_ptr<asio::posix::stream_descriptor> watch;
  bool started = false;
  std::error_code early;  // a failure to start, delivered through the executor

  template <typename Self>
  void operator()(Self& self, std::error_code ec = {}) {
    if (!started) {
      started = true;
      // Failures complete through the executor, never inside the initiating call.
      if (!state) {
        early = std::make_error_code(std::errc::bad_file_descriptor);
        return asio::post(executor, std::move(self));
      }
      unique_fd copy = duplicate_fd(state->pidfd.get(), early);
      if (early) return asio::post(executor, std::move(self));
      watch = std::make_shared<asio::posix::stream_descriptor>(executor, copy.release());
      auto watch_ref = watch;
      auto state_ref = state;
      watch->async_wait(asio::posix::stream_descriptor::wait_read, std::move(self));
      // Asio's epoll registration is edge-triggered: if the child had already
      // exited and another thread's reactor consumed that edge before the wait
      // was queued, the wait would never complete. Check once more now that
      // it is queued, and wake it ourselves.
      if (state_ref->exit_observable()) watch_ref->cancel();
      return;
    }
    if (early) return finish(self, early, {});
    std::error_code reap_ec;
    std::optional<exit_status> status = state ? state->try_reap(reap_ec) : std::nullopt;
    if (status) return finish(self, {}, *status);
    if (reap_ec) return finish(self, reap_ec, {});
    if (ec) return finish(self, ec, {});
    // Readable yet not reapable (e.g. a tracer saw the exit first): wait again.
    auto watch_ref = watch;
    watch_ref->async_wait(asio::posix::stream_descriptor::wait_read, std::move(self));
  }

  template <typename Self>
  void finish(Self& self, std::error_code ec, exit_status status) {
    watch.reset();  // close the duplicate pidfd before the handler runs
    state.reset();
    self.complete(ec, status);
  }
};


// A spawned child process, owned: destroying it kills (SIGKILL) and reaps a
// child that is still running, so no zombie is ever left behind.
class child_process {
 public:
  child_process() noexcept = default;
  child_process(child_process&&) noexcept = default;
  child_process& operator=(child_process&& other) noexcept {
    if (this != &other) {
      terminate_now();
      state_ = std::move(other.state_);
    }
    return *this;
  }
  ~child_process() { terminate_now(); }

  // Starts `options.program`. Only the fds named in `inherit_fds` (plus 0, 1
  // and 2) are open in the child; the signal mask and dispositions are reset.
  static child_process spawn(spawn_options const& options, std::error_code& ec) {
    ec.clear();
    int highest_target = 2;
    for (auto [from, to] : options.inherit_fds) {
      if (from < 0 || to < 0) {
        set_error(ec, EBADF);
        return {};
      }
      highest_target = std::max(highest_target, to);
    }
    // Copies numbered above every target, so that no dup2 onto a target can
    // overwrite the source of a later one (mapping 5->3 and 3->4).
    std::vector<unique_fd> sources;
    sources.reserve(options.inherit_fds.size());
    for (auto [from, to] : options.inherit_fds) {
      sources.push_back(duplicate_fd(from, ec, highest_target + 1));
      if (ec) return {};
    }

    spawn_attributes sa;
    if (!sa.attr_ok || !sa.actions_ok) {
      set_error(ec, ENOMEM);
      return {};
    }
    int rc = 0;
    for (std::size_t i = 0; i < sources.size() && rc == 0; ++i)
      // dup2 clears close-on-exec on the target, so the copies themselves
      // (close-on-exec) vanish at exec while the targets survive.
      rc = ::posix_spawn_file_actions_adddup2(&sa.actions, sources[i].get(), options.inherit_fds[i].second);
    // Fds between 3 and the highest target that are not targets: close.
    for (int fd = 3; fd <= highest_target && rc == 0; ++fd) {
      bool const is_target = std::any_of(options.inherit_fds.begin(), options.inherit_fds.end(),
                                         [fd](auto const& p) { return p.second == fd; });
      if (!is_target) rc = ::posix_spawn_file_actions_addclose(&sa.actions, fd);
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    // Everything else is meant to be close-on-exec already; this also catches
    // fds another thread or library opened without it.
    if (rc == 0) rc = ::posix_spawn_file_actions_addclosefrom_np(&sa.actions, highest_target + 1);
#endif
    if (rc == 0 && options.null_stdin) rc = ::posix_spawn_file_actions_addopen(&sa.actions, 0, "/dev/null", O_RDONLY, 0);
    for (int fd : {1, 2}) {
      if (rc == 0 && options.discard_output) rc = ::posix_spawn_file_actions_addopen(&sa.actions, fd, "/dev/null", O_WRONLY, 0);
    }
    if (rc == 0 && !options.working_directory.empty()) {
      // The program's path is looked up after this: a relative one would be relative to the new directory.
      if (!options.program.starts_with('/')) rc = EINVAL;
      if (rc == 0) rc = ::posix_spawn_file_actions_addchdir_np(&sa.actions, options.working_directory.c_str());
    }
    sigset_t none;
    sigset_t all;
    ::sigemptyset(&none);
    ::sigfillset(&all);
    if (rc == 0) rc = ::posix_spawnattr_setsigmask(&sa.attr, &none);
    if (rc == 0) rc = ::posix_spawnattr_setsigdefault(&sa.attr, &all);
    if (rc == 0) rc = ::posix_spawnattr_setflags(&sa.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (rc != 0) {
      set_error(ec, rc);
      return {};
    }

    std::vector<char*> argv;
    argv.reserve(options.args.size() + 2);
    argv.push_back(const_cast<char*>(options.program.c_str()));
    for (auto const& a : options.args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    if (!options.env.empty() || options.exact_env) {
      envp.reserve(options.env.size() + 1);
      for (auto const& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
      envp.push_back(nullptr);
    }

    pid_t pid = -1;
    rc = ::posix_spawn(&pid, options.program.c_str(), &sa.actions, &sa.attr, argv.data(),
                       envp.empty() ? environ : envp.data());
    if (rc != 0) {
      set_error(ec, rc);
      return {};
    }

    auto state = std::make_shared<child_state>();
    state->pid = pid;
    // The child is ours and unreaped until we wait, so its PID cannot be
    // reused before this (unless the host sets SIGCHLD to SIG_IGN).
    state->pidfd.reset(pidfd_open(pid));
    if (!state->pidfd) {
      int const err = errno;
      ::kill(pid, SIGKILL);
      int ignored;
      retry_on_eintr([&] { return ::waitpid(pid, &ignored, 0); });
      set_error(ec, err);
      return {};
    }
    child_process child;
    child.state_ = std::move(state);
    return child;
  }

  static child_process spawn(spawn_options const& options) {
    std::error_code ec;
    child_process child = spawn(options, ec);
    throw_if_error(ec, fmt::format("cannot start worker program '{}'", options.program));
    return child;
  }

  // Takes over a child started some other way (sandbox::spawn_in_namespaces),
  // with its pidfd.
  static child_process adopt(pid_t pid, unique_fd pidfd) {
    auto state = std::make_shared<child_state>();
    state->pid = pid;
    state->pidfd = std::move(pidfd);
    child_process child;
    child.state_ = std::move(state);
    return child;
  }

  bool valid() const noexcept { return state_ != nullptr; }
  pid_t pid() const noexcept { return state_ ? state_->pid : -1; }
  // For poll/epoll only: its file description may be non-blocking (an exit
  // wait's duplicate shares it), so reap through wait_exit, not waitid.
  int pidfd() const noexcept { return state_ ? state_->pidfd.get() : -1; }

  // In a child of fork(): closes this process's pidfd (the child process is
  // the parent's), without killing or waiting. The object must then be
  // leaked, not destroyed.
  void close_descriptor_after_fork() noexcept {
    if (state_) state_->pidfd.reset();
  }

  // The exit status, once the child has been reaped by a wait.
  std::optional<exit_status> status() const {
    if (!state_) return std::nullopt;
    std::lock_guard lock(state_->mutex);
    return state_->status;
  }

  // What the child (with what it reaped) used, once it has been reaped; zeros before.
  resource_usage usage() const {
    if (!state_) return {};
    std::lock_guard lock(state_->mutex);
    return state_->usage;
  }

  // Sends `sig` through the pidfd. Fails with ESRCH once the child has been
  // reaped; a child that has exited but is not yet reaped accepts (and ignores) it.
  void kill(int sig, std::error_code& ec) noexcept {
    ec.clear();
    if (!state_) return set_error(ec, EBADF);
    if (pidfd_send_signal(state_->pidfd.get(), sig) < 0) set_error(ec, errno);
  }

  void kill(int sig) {
    std::error_code ec;
    kill(sig, ec);
    throw_if_error(ec, fmt::format("cannot signal worker process {}", pid()));
  }

  // Blocks up to `timeout` for the child to exit and reaps it. Returns
  // nullopt (and no error) if it is still running when the time is up.
  std::optional<exit_status> wait_exit(std::chrono::milliseconds timeout, std::error_code& ec) {
    ec.clear();
    if (!state_) {
      set_error(ec, EBADF);
      return std::nullopt;
    }
    auto const deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto s = state_->try_reap(ec); s || ec) return s;
      auto const left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      if (!wait_ready(state_->pidfd.get(), POLLIN, deadline, ec)) {
        if (ec == std::errc::timed_out) ec.clear();
        return std::nullopt;
      }
    }
  }

  std::optional<exit_status> wait_exit(std::chrono::milliseconds timeout) {
    std::error_code ec;
    auto s = wait_exit(timeout, ec);
    throw_if_error(ec, fmt::format("cannot wait for worker process {}", pid()));
    return s;
  }

  // Completes with (error_code, exit_status) once the child has exited and
  // has been reaped, on `executor`. Survives moving or destroying this object:
  // destruction kills the child and the wait completes with SIGKILL.
  // Supports per-operation (terminal) cancellation.
  template <typename Executor, typename CompletionToken>
  auto async_wait_exit(Executor const& executor, CompletionToken&& token) {
    return asio::async_compose<CompletionToken, void(std::error_code, exit_status)>(
        wait_exit_op<Executor>{state_, executor, nullptr, false, {}}, token, executor);
  }

 private:
  // How long destruction waits for a killed child to go before leaving it to the launcher.
  static constexpr std::chrono::milliseconds reap_patience{1000};

  void terminate_now() noexcept {
    if (state_ && !state_->kill_and_reap(reap_patience)) {
      try {
        auto state = state_;
        launcher::instance().reap_later(state->pidfd.get(), [state] {
          std::error_code ec;
          return state->try_reap(ec).has_value() || static_cast<bool>(ec);
        });
      } catch (...) {
        // No launcher (out of memory or threads): the zombie stays until the host exits.
      }
    }
    state_.reset();
  }

  std::shared_ptr<child_state> state_;
};

}  // namespace isolate::detail

#endif
