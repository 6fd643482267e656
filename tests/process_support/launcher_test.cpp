#include "isolate/detail/process/launcher.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include "isolate/detail/process/child.hpp"

#include "../support/sanitizers.hpp"

#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using isolate::detail::launcher;

namespace {
constexpr auto patience = 20s;
using isolate_test::under_tsan;
}  // namespace

TEST_CASE("run() returns what the job returns") {
  auto& l = launcher::instance();
  CHECK(l.run([] { return 42; }) == 42);
  auto owned = l.run([] { return std::make_unique<int>(7); });  // move-only results too
  REQUIRE(owned);
  CHECK(*owned == 7);
  int side_effect = 0;
  l.run([&] { side_effect = 3; });
  CHECK(side_effect == 3);
}

TEST_CASE("run() rethrows what the job throws") {
  auto& l = launcher::instance();
  CHECK_THROWS_WITH_AS(l.run([]() -> int { throw std::runtime_error("job failed"); }), "job failed",
                       std::runtime_error);
  try {
    l.run([] { throw isolate::error(isolate::errc::load_failed, "no worker"); });
    FAIL("nothing thrown");
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::load_failed);
  }
  CHECK(l.run([] { return 1; }) == 1);  // and goes on running jobs
}

TEST_CASE("every job runs on one thread, which is not the caller's") {
  auto& l = launcher::instance();
  std::vector<std::thread> callers;
  std::vector<std::thread::id> ran_on(8);
  std::vector<std::thread::id> caller_ids(8);
  for (std::size_t i = 0; i < ran_on.size(); ++i) {
    callers.emplace_back([&, i] {
      caller_ids[i] = std::this_thread::get_id();
      ran_on[i] = launcher::instance().run([] { return std::this_thread::get_id(); });
    });
  }
  for (auto& t : callers) t.join();
  const std::set<std::thread::id> threads(ran_on.begin(), ran_on.end());
  CHECK(threads.size() == 1);
  const auto launcher_thread = *threads.begin();
  CHECK(launcher_thread != std::this_thread::get_id());
  for (const auto& id : caller_ids) CHECK(launcher_thread != id);
  CHECK(&launcher::instance() == &l);
}

TEST_CASE("reap_later reaps a child that exits later") {
  int gate[2];
  REQUIRE(::pipe2(gate, O_CLOEXEC) == 0);
  // Started on the launcher's thread, as workers are: the child's parent is that thread.
  const pid_t child = launcher::instance().run([&] {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(gate[1]);
      char byte;
      const auto n = ::read(gate[0], &byte, 1);  // until the test lets it go
      ::_exit(n == 0 ? 5 : 6);
    }
    return pid;
  });
  REQUIRE(child > 0);
  ::close(gate[0]);
  const int pidfd = isolate::detail::pidfd_open(child);
  REQUIRE(pidfd >= 0);

  std::promise<int> reaped;
  auto status = reaped.get_future();
  int polls = 0;
  launcher::instance().reap_later(pidfd, [&, pidfd]() {
    ++polls;
    siginfo_t info{};
    if (::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG) != 0 || info.si_pid == 0) return false;
    ::close(pidfd);
    reaped.set_value(info.si_status);
    return true;
  });
  // Not before the child exits: the launcher does not call reap until the pidfd is readable.
  CHECK(status.wait_for(50ms) == std::future_status::timeout);
  ::close(gate[1]);  // the child exits
  REQUIRE(status.wait_for(patience) == std::future_status::ready);
  CHECK(status.get() == 5);
  CHECK(::waitpid(child, nullptr, WNOHANG) == -1);  // reaped already: no zombie left
  CHECK(errno == ECHILD);
}

// TSan refuses to start a thread in a child of a multi-threaded process.
TEST_CASE("a child of fork() gets a launcher of its own" * doctest::skip(under_tsan)) {
  auto& parent_launcher = launcher::instance();
  const auto parent_thread = parent_launcher.run([] { return std::this_thread::get_id(); });
  (void)parent_thread;
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The parent's launcher thread is not here: a job run on it would never run.
    auto& mine = launcher::instance();
    const int answer = mine.run([] { return 9; });
    ::_exit(&mine != &parent_launcher && answer == 9 ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
