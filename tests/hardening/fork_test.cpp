// Item 4: a child of fork() shares the host's rings, sockets and pidfds but
// not its threads. In the child, calls fail with a named error and
// destroying the plugin only closes descriptors; the parent is never disturbed.
#include "isolate/transport/process.hpp"

#include "support.hpp"

#include "../support/failure.hpp"

#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <optional>

using namespace hardening_test;
using namespace std::chrono_literals;

namespace {

// Runs `body` in a forked child, which exits with what it returns (or 100
// on an exception); returns that status.
template <class Body>
int in_child(Body&& body) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int status = 100;
    try {
      status = body();
    } catch (...) {
    }
    std::_Exit(status);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200 + WTERMSIG(status);
}

// 0 when a call from the forked child fails with plugin_closed, naming fork.
int call_fails_after_fork(hardy_plugin& p) {
  try {
    p->add(1, 2);
    return 1;
  } catch (const isolate::error& e) {
    if (e.code() != isolate::errc::plugin_closed) return 2;
    if (std::string(e.what()).find("fork") == std::string::npos) return 3;
    return 0;
  }
}

}  // namespace

TEST_CASE("4: in a forked child calls fail with plugin_closed, and the parent's plugin is untouched") {
  auto p = load_hardy();
  CHECK(p->add(1, 1) == 2);
  const int worker = p.transport().link().pid();
  CHECK(in_child([&] { return call_fails_after_fork(p); }) == 0);
  // The child's answer could have been read as the parent's: check values.
  CHECK(p->bytes_of_size(9).size() == 9);
  CHECK(p->add(20, 22) == 42);
  CHECK(p.transport().link().pid() == worker);
}

TEST_CASE("4: destroying the plugin in a forked child does not stop the parent's worker") {
  std::optional<hardy_plugin> p(load_hardy());
  const int worker = p->transport().link().pid();
  CHECK(in_child([&] {
    p.reset();  // closes the child's descriptors only
    return 0;
  }) == 0);
  CHECK((*p)->add(2, 3) == 5);
  CHECK(p->transport().link().pid() == worker);
}

TEST_CASE("4: a daemonizing host: the parent exits, the child's calls fail, the worker dies with the parent") {
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  // The "host" is a child of this test, so that it can exit as a daemonizing parent does.
  const int status = in_child([&] {
    auto p = load_hardy();
    if (p->add(1, 1) != 2) return 10;
    const int worker = p.transport().link().pid();
    const pid_t daemon = ::fork();
    if (daemon < 0) return 11;
    if (daemon > 0) std::_Exit(0);  // the parent leaves at once, as a daemon's does
    // The daemon: its calls fail; it reports that and the worker's pid.
    const int result = call_fails_after_fork(p);
    const int report[2] = {result, worker};
    if (::write(pipe_fds[1], report, sizeof report) != sizeof report) std::_Exit(12);
    std::_Exit(0);
  });
  CHECK(status == 0);
  ::close(pipe_fds[1]);
  int report[2] = {-1, -1};
  REQUIRE(::read(pipe_fds[0], report, sizeof report) == sizeof report);
  ::close(pipe_fds[0]);
  CHECK(report[0] == 0);
  CHECK(dies_within(report[1], 10s));  // the worker went with its host
}
