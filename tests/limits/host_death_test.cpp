// A host killed while its sandboxed plugin spins (and so never reads its
// closed control socket) leaves nothing behind: PID 1 of the sandbox dies
// with the host's launcher thread (PR_SET_PDEATHSIG), and with it every
// process of the namespace. Under both shapes of PID 1: isolate-init beside
// the worker, and the worker as its own PID 1.
//
// Each case forks the host it kills before anything is loaded here (a child
// of fork() has none of its parent's threads, the launcher's included).
#include "isolate/limits.hpp"

#include "support.hpp"

#include <doctest/doctest.h>

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

using namespace limits_test;
using namespace std::chrono_literals;

namespace {

// Clock ticks of user CPU time process `pid` has run, or -1 once it is gone.
long user_ticks(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(in, text)) return -1;
  std::istringstream fields(text.substr(text.rfind(')') + 2));  // after "pid (comm) "
  std::string field;
  for (int i = 3; i < 14 && fields >> field;) ++i;  // fields 3..13
  long utime = -1;
  fields >> utime;
  return utime;
}

// Whether `pidfd`'s process ends within `bound`.
bool ends_within(int pidfd, std::chrono::milliseconds bound) {
  pollfd watched{pidfd, POLLIN, 0};
  return ::poll(&watched, 1, static_cast<int>(bound.count())) == 1;
}

// In a forked child: load the plugin with `options`, tell the parent its
// sandbox's PID 1 and worker, then spin in the plugin forever.
[[noreturn]] void host_that_spins(const isolate::process::options& options, int report) {
  try {
    auto p = load_hostile(options);
    const int pids[2] = {p.transport().link().pid(), worker_proper(p)};
    if (::write(report, pids, sizeof pids) != sizeof pids) ::_exit(2);
    p->burn_cpu(true);  // never returns
  } catch (...) {
  }
  ::_exit(3);
}

void killed_host_leaves_nothing(const isolate::process::options& options) {
  int report[2];
  REQUIRE(::pipe(report) == 0);
  const pid_t host = ::fork();
  REQUIRE(host >= 0);
  if (host == 0) {
    ::close(report[0]);
    host_that_spins(options, report[1]);
  }
  ::close(report[1]);
  int pids[2] = {0, 0};
  const auto got = ::read(report[0], pids, sizeof pids);
  ::close(report[0]);
  if (got != static_cast<ssize_t>(sizeof pids)) {
    ::kill(host, SIGKILL);
    ::waitpid(host, nullptr, 0);
    FAIL("the host did not load the plugin");
  }
  const int init = pids[0], worker = pids[1];
  CAPTURE(init);
  CAPTURE(worker);
  REQUIRE(worker > 0);
  const int init_fd = static_cast<int>(::syscall(SYS_pidfd_open, init, 0));
  const int worker_fd = static_cast<int>(::syscall(SYS_pidfd_open, worker, 0));
  REQUIRE(init_fd >= 0);
  REQUIRE(worker_fd >= 0);
  // Spinning in the plugin: then only the sandbox's PID 1 can end it.
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  while (user_ticks(worker) < 10 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(5ms);  // polling /proc: no event says "it has run 100 ms"
  }
  CHECK(user_ticks(worker) >= 10);
  ::kill(host, SIGKILL);
  ::waitpid(host, nullptr, 0);
  CHECK(ends_within(init_fd, 5s));
  CHECK(ends_within(worker_fd, 5s));
  if (::syscall(SYS_pidfd_send_signal, worker_fd, SIGKILL, nullptr, 0) == 0) MESSAGE("the worker was left behind");
  ::syscall(SYS_pidfd_send_signal, init_fd, SIGKILL, nullptr, 0);
  ::close(init_fd);
  ::close(worker_fd);
}

}  // namespace

TEST_CASE("a killed host leaves no sandboxed process behind, even one whose plugin spins: under isolate-init") {
  REQUIRE(fs::exists(worker_path().parent_path() / "isolate-init"));
  killed_host_leaves_nothing(options_with(isolate::limits::standard()));  // no CPU limit to end the spin
}

TEST_CASE("a killed host leaves no sandboxed process behind, even one whose plugin spins: the worker as PID 1") {
  temp_dir alone;
  const auto worker = copy_worker_alone(alone);
  auto options = options_with(isolate::limits::standard());
  options.worker = worker;
  killed_host_leaves_nothing(options);
}
