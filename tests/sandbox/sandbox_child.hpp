// What the sandbox tests share: running a body in a forked child that applies
// a sandbox to itself and reports what its system calls returned.
//
// A sandbox cannot be undone, so every test applies it in a child: the test
// process stays free, and each case starts from a clean slate. The child
// reports "key value" lines through a pipe (write() is allowed by every
// policy under test) and leaves with _exit, so no atexit handler, doctest
// code or sanitizer leak check runs inside the sandbox.
#ifndef ISOLATE_TESTS_SANDBOX_SANDBOX_CHILD_HPP
#define ISOLATE_TESTS_SANDBOX_SANDBOX_CHILD_HPP

#include <doctest/doctest.h>

#include <algorithm>
#include <thread>
#include <system_error>
#include <cstdint>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>

namespace isolate_test {

// errno of a call that returns -1 on failure; 0 when it succeeded.
inline long errno_of(long rc) noexcept { return rc < 0 ? errno : 0; }

// The child's side: one line per value.
class child_report {
 public:
  explicit child_report(int fd) noexcept : fd_(fd) {}

  void put(std::string_view key, long value) const noexcept {
    char line[160];
    int const n = std::snprintf(line, sizeof line, "%.*s %ld\n", static_cast<int>(key.size()), key.data(), value);
    if (n > 0) (void)!::write(fd_, line, static_cast<std::size_t>(n));
  }

 private:
  int fd_;
};

// The parent's side: how the child ended and what it reported.
struct child_outcome {
  int status = 0;
  std::map<std::string, long, std::less<>> values;

  bool exited_cleanly() const noexcept { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
  bool killed_by(int sig) const noexcept { return WIFSIGNALED(status) && WTERMSIG(status) == sig; }
  // A key the child never reported reads as -1000, which no errno equals.
  long operator[](std::string_view key) const {
    auto const it = values.find(key);
    return it == values.end() ? -1000 : it->second;
  }
};

// Runs body(child_report&) in a forked child and waits for it (20 s at most,
// then kills it). The caller must have no other threads: only the forking
// thread survives in the child.
template <class Body>
child_outcome in_child(Body&& body) {
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  std::fflush(nullptr);  // else a child could write the parent's pending output again
  pid_t const pid = ::fork();
  if (pid == 0) {  // no doctest macro here: a passing one would log from the child under -s
    ::close(fds[0]);
    child_report report(fds[1]);
    body(report);
    ::_exit(0);
  }
  REQUIRE(pid > 0);
  ::close(fds[1]);
  child_outcome outcome;
  std::string text;
  auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    auto const left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fds[0], POLLIN, 0};
    int const ready = ::poll(&p, 1, static_cast<int>(std::max<long>(left.count(), 0)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      ::kill(pid, SIGKILL);
      FAIL_CHECK("the sandboxed child did not finish within 20 s");
      break;
    }
    char buffer[4096];
    ssize_t const n = ::read(fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  while (::waitpid(pid, &outcome.status, 0) < 0 && errno == EINTR) {
  }
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t const end = text.find('\n', start);
    std::string const line = text.substr(start, end - start);
    std::size_t const space = line.rfind(' ');
    if (space != std::string::npos) outcome.values[line.substr(0, space)] = std::stol(line.substr(space + 1));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return outcome;
}

// A process that waits to be killed: a target outside the sandbox.
class idle_process {
 public:
  idle_process() {
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      for (;;) ::pause();
    }
    REQUIRE(pid_ > 0);
  }
  idle_process(idle_process const&) = delete;
  idle_process& operator=(idle_process const&) = delete;
  ~idle_process() {
    ::kill(pid_, SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  pid_t pid() const noexcept { return pid_; }

 private:
  pid_t pid_;
};

// Probes shared by the seccomp tests: each makes one kind of call and says
// what it got (0, or the errno).

// fork(), with the child (should one appear) leaving at once.
inline long fork_errno() {
  pid_t const pid = ::fork();
  if (pid == 0) ::_exit(0);
  if (pid > 0) ::waitpid(pid, nullptr, 0);
  return errno_of(pid);
}

// clone3 with plain fork semantics; the child, should one appear, leaves at once.
inline long clone3_errno() {
  struct {
    std::uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
  } args{};
  args.exit_signal = SIGCHLD;
  long const pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) ::_exit(0);
  if (pid > 0) ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
  return errno_of(pid);
}

// 0 when a std::thread ran and was joined.
inline long thread_errno() {
  std::atomic<int> ran{0};
  try {
    std::thread([&] { ran = 1; }).join();
  } catch (std::system_error const& e) {
    return e.code().value();
  }
  return ran == 1 ? 0 : -1;
}

}  // namespace isolate_test

#endif
