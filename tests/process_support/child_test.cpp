#include "isolate/detail/process/child.hpp"

#include "child_fixture.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>

using namespace isolate_test;

namespace {

child_process spawn_helper(std::vector<std::string> args) {
  return child_process::spawn(spawn_options{helper_path, std::move(args), {}, {}});
}

exit_status wait_sync(child_process& child) {
  auto status = child.wait_exit(patience);
  REQUIRE(status.has_value());
  return *status;
}

// Runs an io_context on this thread until the child's exit wait completes.
std::pair<std::error_code, exit_status> wait_async(child_process& child) {
  asio::io_context io;
  std::optional<std::pair<std::error_code, exit_status>> result;
  child.async_wait_exit(io.get_executor(), [&](std::error_code ec, exit_status s) { result.emplace(ec, s); });
  io.run_for(patience);
  REQUIRE(result.has_value());
  return *result;
}

std::vector<int> parse_fds(std::string const& text) {
  std::vector<int> fds;
  std::istringstream in(text);
  for (int fd; in >> fd;) fds.push_back(fd);
  std::sort(fds.begin(), fds.end());
  return fds;
}

bool is_reaped(pid_t pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG) < 0 && errno == ECHILD;
}

}  // namespace

TEST_CASE("exit_status describes exits and signals") {
  CHECK(exit_status{false, 3, false}.describe() == "exited with status 3");
  CHECK(exit_status{true, SIGSEGV, false}.describe() == "killed by signal 11 (SIGSEGV)");
  CHECK(exit_status{true, SIGABRT, true}.describe() == "killed by signal 6 (SIGABRT), core dumped");
  CHECK(exit_status{true, 1000, false}.describe() == "killed by signal 1000");
}

TEST_CASE("wait_exit reports the exit code and signal") {
  SUBCASE("exit code") {
    auto child = spawn_helper({"exit", "3"});
    CHECK(child.pid() > 0);
    CHECK(child.pidfd() >= 0);
    auto status = wait_sync(child);
    CHECK(status.exited_with(3));
    CHECK(status.describe() == "exited with status 3");
    CHECK(child.status() == status);
    CHECK(is_reaped(child.pid()));
  }
  SUBCASE("exit 0") {
    auto child = spawn_helper({"exit", "0"});
    CHECK(wait_sync(child).exited_with(0));
  }
  SUBCASE("SIGSEGV") {
    auto child = spawn_helper({"segv"});
    auto status = wait_sync(child);
    CHECK(status.killed_by(SIGSEGV));
    CHECK(status.describe().starts_with("killed by signal 11 (SIGSEGV)"));
  }
  SUBCASE("abort") {
    auto child = spawn_helper({"abort"});
    CHECK(wait_sync(child).killed_by(SIGABRT));
  }
  SUBCASE("a second wait returns the same status") {
    auto child = spawn_helper({"exit", "7"});
    CHECK(wait_sync(child).exited_with(7));
    CHECK(wait_sync(child).exited_with(7));
  }
}

TEST_CASE("async_wait_exit reports the exit code and signal") {
  SUBCASE("exit code") {
    auto child = spawn_helper({"exit", "42"});
    auto [ec, status] = wait_async(child);
    CHECK(!ec);
    CHECK(status.exited_with(42));
    CHECK(is_reaped(child.pid()));
  }
  SUBCASE("SIGSEGV") {
    auto child = spawn_helper({"segv"});
    auto [ec, status] = wait_async(child);
    CHECK(!ec);
    CHECK(status.killed_by(SIGSEGV));
  }
  SUBCASE("a child that exited before the wait started") {
    auto child = spawn_helper({"exit", "5"});
    pollfd p{child.pidfd(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10'000) == 1);  // exited, not yet reaped
    auto [ec, status] = wait_async(child);
    CHECK(!ec);
    CHECK(status.exited_with(5));
  }
  SUBCASE("after a synchronous wait reaped it") {
    auto child = spawn_helper({"exit", "6"});
    CHECK(wait_sync(child).exited_with(6));
    auto [ec, status] = wait_async(child);
    CHECK(!ec);
    CHECK(status.exited_with(6));
  }
  SUBCASE("an empty child_process fails through the executor") {
    child_process empty;
    auto [ec, status] = wait_async(empty);
    CHECK(ec == std::errc::bad_file_descriptor);
  }
}

TEST_CASE("async_wait_exit with the io_context running on another thread") {
  // The wait is started from this thread while the reactor runs elsewhere:
  // the exit edge can reach the reactor before the wait is queued.
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  for (int i = 0; i < 40; ++i) {
    auto child = spawn_helper({"exit", std::to_string(i)});
    if (i % 2 == 0) {
      // Already exited: the edge is there the moment the pidfd is registered.
      pollfd p{child.pidfd(), POLLIN, 0};
      REQUIRE(::poll(&p, 1, 10'000) == 1);
    }
    std::promise<std::pair<std::error_code, exit_status>> done;
    child.async_wait_exit(io.get_executor(), [&](std::error_code ec, exit_status s) { done.set_value({ec, s}); });
    auto result = done.get_future();
    REQUIRE(result.wait_for(patience) == std::future_status::ready);
    auto [ec, status] = result.get();
    CHECK(!ec);
    CHECK(status.exited_with(i));
  }
  guard.reset();
  runner.join();
}

TEST_CASE("kill stops a hung child") {
  auto [channel, child] = spawn_connected({"hang"});
  auto ready = read_message(channel.get(), 64, patience);
  REQUIRE(ready.type == 1);

  // Still running: a bounded wait times out without an error.
  std::error_code ec;
  auto const before = std::chrono::steady_clock::now();
  CHECK_FALSE(child.wait_exit(100ms, ec).has_value());
  CHECK(!ec);
  CHECK(std::chrono::steady_clock::now() - before >= 100ms);

  child.kill(SIGTERM);
  auto status = wait_sync(child);
  CHECK(status.killed_by(SIGTERM));
  CHECK(status.describe() == "killed by signal 15 (SIGTERM)");

  // Reaped: the pidfd still names the dead child, never a recycled PID.
  child.kill(SIGKILL, ec);
  CHECK(ec == std::errc::no_such_process);
  CHECK_THROWS_AS(child.kill(SIGKILL), std::system_error);
}

TEST_CASE("a cancelled async_wait_exit completes with operation_aborted") {
  auto [channel, child] = spawn_connected({"hang"});
  asio::io_context io;
  asio::cancellation_signal cancel;
  std::optional<std::error_code> result;
  child.async_wait_exit(io.get_executor(), asio::bind_cancellation_slot(
                                               cancel.slot(), [&](std::error_code ec, exit_status) { result = ec; }));
  io.poll();
  CHECK_FALSE(result.has_value());
  cancel.emit(asio::cancellation_type::terminal);
  io.run_for(patience);
  REQUIRE(result.has_value());
  CHECK(*result == asio::error::operation_aborted);
  CHECK_FALSE(child.status().has_value());
}

TEST_CASE("destroying a running child kills and reaps it") {
  SUBCASE("no wait in flight") {
    auto [channel, child] = spawn_connected({"hang"});
    pid_t const pid = child.pid();
    { child_process doomed = std::move(child); }
    CHECK(is_reaped(pid));
  }
  SUBCASE("an async wait in flight completes with SIGKILL") {
    asio::io_context io;
    std::optional<exit_status> result;
    pid_t pid;
    {
      auto [channel, child] = spawn_connected({"hang"});
      pid = child.pid();
      child.async_wait_exit(io.get_executor(), [&](std::error_code ec, exit_status s) {
        CHECK(!ec);
        result = s;
      });
      io.poll();
    }
    CHECK(is_reaped(pid));
    io.run_for(patience);
    REQUIRE(result.has_value());
    CHECK(result->killed_by(SIGKILL));
  }
  SUBCASE("move assignment over a running child") {
    auto child = spawn_helper({"exit", "0"});
    auto [channel, hung] = spawn_connected({"hang"});
    pid_t const pid = hung.pid();
    hung = std::move(child);
    CHECK(is_reaped(pid));
    CHECK(wait_sync(hung).exited_with(0));
  }
}

TEST_CASE("spawning a program that cannot run fails clearly") {
  SUBCASE("missing") {
    spawn_options options{"/nonexistent/isolate-worker", {}, {}, {}};
    std::error_code ec;
    auto child = child_process::spawn(options, ec);
    CHECK(ec == std::errc::no_such_file_or_directory);
    CHECK_FALSE(child.valid());
    try {
      child_process::spawn(options);
      FAIL("spawn did not throw");
    } catch (std::system_error const& e) {
      CHECK(e.code() == std::errc::no_such_file_or_directory);
      std::string const what = e.what();
      CHECK(what.find("/nonexistent/isolate-worker") != std::string::npos);
      CHECK(what.find("No such file or directory") != std::string::npos);
    }
  }
  SUBCASE("not executable") {
    char path[] = "/tmp/isolate-not-executable-XXXXXX";
    int const fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    std::error_code ec;
    child_process::spawn(spawn_options{path, {}, {}, {}}, ec);
    ::unlink(path);
    CHECK(ec == std::errc::permission_denied);
  }
  SUBCASE("a bad descriptor to inherit") {
    std::error_code ec;
    child_process::spawn(spawn_options{helper_path, {"exit", "0"}, {{-1, 3}}, {}}, ec);
    CHECK(ec == std::errc::bad_file_descriptor);
    child_process::spawn(spawn_options{helper_path, {"exit", "0"}, {{987, 3}}, {}}, ec);
    CHECK(ec == std::errc::bad_file_descriptor);
  }
}

TEST_CASE("only the inherited descriptors reach the child") {
  SUBCASE("fd 3, and not a stray fd opened without close-on-exec") {
    int const stray = ::open("/dev/null", O_RDONLY);  // deliberately inheritable
    REQUIRE(stray >= 0);
    auto [channel, child] = spawn_connected({"list-fds"});
    ::close(stray);
    auto listing = read_message(channel.get(), 4096, patience);
    CHECK(listing.type == 2);
    auto fds = parse_fds(text_of(listing.body));
    fds.erase(std::remove_if(fds.begin(), fds.end(), [](int fd) { return fd <= 2; }), fds.end());
    CHECK(fds == std::vector<int>{3});
    CHECK(wait_sync(child).exited_with(0));
  }
  SUBCASE("two descriptors swapping numbers") {
    // Parent fd 60 goes to child fd 61 and 61 to 60: a naive dup2 order
    // would overwrite one source with the other.
    std::error_code ec;
    auto [host_end, child_end] = make_socket_pair(ec);
    REQUIRE(!ec);
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    unique_fd pipe_read(pipe_fds[0]);
    unique_fd pipe_write(pipe_fds[1]);
    REQUIRE(::dup3(child_end.get(), 60, O_CLOEXEC) == 60);
    REQUIRE(::dup3(pipe_write.get(), 61, O_CLOEXEC) == 61);
    unique_fd at60(60);
    unique_fd at61(61);
    spawn_options options{helper_path, {"list-fds", "61", "60"}, {{60, 61}, {61, 60}}, {}};
    auto child = child_process::spawn(options);
    pipe_write.reset();
    at61.reset();
    char buf[8] = {};
    CHECK(::read(pipe_read.get(), buf, sizeof buf) == 4);
    CHECK(std::string_view(buf) == "pipe");
    auto listing = read_message(host_end.get(), 4096, patience);
    auto fds = parse_fds(text_of(listing.body));
    fds.erase(std::remove_if(fds.begin(), fds.end(), [](int fd) { return fd <= 2; }), fds.end());
    CHECK(fds == std::vector<int>{60, 61});
    CHECK(wait_sync(child).exited_with(0));
    // The parent's own descriptors are untouched and still close-on-exec.
    CHECK((::fcntl(60, F_GETFD) & FD_CLOEXEC) != 0);
  }
}

TEST_CASE("the environment is inherited or replaced") {
  ::setenv("ISOLATE_TEST_VALUE", "from-parent", 1);
  SUBCASE("inherited") {
    auto [channel, child] = spawn_connected({"getenv", "ISOLATE_TEST_VALUE"});
    CHECK(text_of(read_message(channel.get(), 4096, patience).body) == "from-parent");
  }
  SUBCASE("replaced") {
    std::error_code ec;
    auto [host_end, child_end] = make_socket_pair(ec);
    spawn_options options{helper_path,
                          {"getenv", "ISOLATE_TEST_VALUE"},
                          {{child_end.get(), 3}},
                          {"ISOLATE_TEST_VALUE=given with spaces"}};
    auto child = child_process::spawn(options);
    CHECK(text_of(read_message(host_end.get(), 4096, patience).body) == "given with spaces");
  }
  SUBCASE("replaced, so the parent's other variables are gone") {
    std::error_code ec;
    auto [host_end, child_end] = make_socket_pair(ec);
    auto child = child_process::spawn(
        spawn_options{helper_path, {"getenv", "ISOLATE_TEST_VALUE"}, {{child_end.get(), 3}}, {"OTHER=1"}});
    CHECK(text_of(read_message(host_end.get(), 4096, patience).body) == "<unset>");
  }
  ::unsetenv("ISOLATE_TEST_VALUE");
}
