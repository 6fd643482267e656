// What only the process transport promises: the plugin can crash, hang or
// attack the shared memory, and the host survives with a named error.
#include "isolate/transport/process.hpp"

#include "faulty.hpp"
#include "isolate/plugin_library.hpp"

#include <doctest/doctest.h>
#include <asio/experimental/deferred.hpp>
#include <asio/use_future.hpp>

#include "../support/failure.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <random>
#include <vector>
#include <string>

using process_test::faulty;
using namespace std::chrono_literals;
using isolate_test::contains;
using isolate_test::failure_of;

namespace {

using faulty_plugin = isolate::plugin<faulty, isolate::process>;

faulty_plugin load_faulty(isolate::process::options options = {}) {
  return isolate::load<faulty, isolate::process>(ISOLATE_TEST_FAULTY_PLUGIN, options);
}

bool process_exists(int pid) { return ::kill(pid, 0) == 0; }

}  // namespace

TEST_CASE("a process plugin answers from another process") {
  auto p = load_faulty();
  CHECK(p->add(2, 3) == 5);
  CHECK(p->pid() != ::getpid());
  CHECK(p.async(&faulty::add, 20, 22, asio::use_future).get() == 42);
}

TEST_CASE("a crash fails the pending call with plugin_crashed naming the signal; the host lives on") {
  auto p = load_faulty();
  SUBCASE("SIGSEGV") {
    const auto e = failure_of([&] { p->segfault(); });
    CHECK(e.code() == isolate::errc::plugin_crashed);
    CHECK(contains(e.what(), "SIGSEGV"));
  }
  SUBCASE("abort") {
    const auto e = failure_of([&] { p->abort_now(); });
    CHECK(e.code() == isolate::errc::plugin_crashed);
    CHECK(contains(e.what(), "SIGABRT"));
  }
  SUBCASE("exit mid-call") {
    const auto e = failure_of([&] { p->exit_now(3); });
    CHECK(e.code() == isolate::errc::plugin_crashed);
    CHECK(contains(e.what(), "exited with status 3"));
  }
  // Without a restart policy the plugin stays down, and says why.
  const auto after = failure_of([&] { p->add(1, 1); });
  CHECK(after.code() == isolate::errc::plugin_crashed);
}

TEST_CASE("a crash fails every pending call at once, not at their timeouts") {
  isolate::process::options options;
  options.concurrency = 4;
  options.call_timeout = 60s;
  auto p = load_faulty(options);
  auto slow1 = p.async(&faulty::sleep_ms, 50'000, asio::use_future);
  auto slow2 = p.async(&faulty::sleep_ms, 50'000, asio::use_future);
  const auto e = failure_of([&] { p->segfault(); });
  CHECK(e.code() == isolate::errc::plugin_crashed);
  // Bounded waits only so that a regression fails instead of hanging the suite.
  REQUIRE(slow1.wait_for(20s) == std::future_status::ready);
  REQUIRE(slow2.wait_for(20s) == std::future_status::ready);
  CHECK(failure_of([&] { slow1.get(); }).code() == isolate::errc::plugin_crashed);
  CHECK(failure_of([&] { slow2.get(); }).code() == isolate::errc::plugin_crashed);
}

TEST_CASE("with a restart policy the plugin comes back after a crash, up to the maximum") {
  isolate::process::options options;
  options.restart = isolate::restart_policy::crash(2, 1ms);
  auto p = load_faulty(options);
  const int first = p->pid();
  CHECK(failure_of([&] { p->segfault(); }).code() == isolate::errc::plugin_crashed);
  const int second = p->pid();  // waits for the restart
  CHECK(second != first);
  CHECK(p->add(1, 2) == 3);
  CHECK(failure_of([&] { p->abort_now(); }).code() == isolate::errc::plugin_crashed);
  CHECK(p->add(2, 2) == 4);
  CHECK(p.transport().link().restarts() == 2);
  CHECK(failure_of([&] { p->segfault(); }).code() == isolate::errc::plugin_crashed);
  // The third crash is one too many: the plugin stays down.
  CHECK(failure_of([&] { p->add(1, 1); }).code() == isolate::errc::plugin_crashed);
}

TEST_CASE("a call that outlives its timeout fails with timeout and the plugin is killed") {
  isolate::process::options options;
  options.call_timeout = 200ms;
  auto p = load_faulty(options);
  const int pid = p->pid();
  const auto e = failure_of([&] { p->hang(); });
  CHECK(e.code() == isolate::errc::timeout);
  CHECK(contains(e.what(), "200 ms"));
  // Killed, not left hanging: the next call reports why it is down.
  CHECK(failure_of([&] { p->add(1, 1); }).code() == isolate::errc::timeout);
  CHECK_FALSE(process_exists(pid));
}

TEST_CASE("a per-call timeout overrides the default, and a restart follows the kill") {
  isolate::process::options options;
  options.call_timeout = 60s;
  options.restart = isolate::restart_policy::crash(1, 1ms);
  auto p = load_faulty(options);
  CHECK(failure_of([&] { p.with_timeout(100ms)->sleep_ms(30'000); }).code() == isolate::errc::timeout);
  CHECK(p->add(4, 5) == 9);  // after the restart
  CHECK(p.with_timeout(10s)->sleep_ms(1) == 1);
}

TEST_CASE("an async call times out too") {
  isolate::process::options options;
  options.call_timeout = 100ms;
  auto p = load_faulty(options);
  auto hung = p.async(&faulty::hang, asio::use_future);
  REQUIRE(hung.wait_for(20s) == std::future_status::ready);
  CHECK(failure_of([&] { hung.get(); }).code() == isolate::errc::timeout);
}

TEST_CASE("an async call can have a timeout of its own, with any token") {
  isolate::process::options options;
  options.call_timeout = 60s;
  options.restart = isolate::restart_policy::crash(2, 1ms);
  auto p = load_faulty(options);
  auto hung = p.with_timeout(100ms).async(&faulty::hang, asio::use_future);
  REQUIRE(hung.wait_for(20s) == std::future_status::ready);
  const auto e = failure_of([&] { hung.get(); });
  CHECK(e.code() == isolate::errc::timeout);
  CHECK(contains(e.what(), "100 ms"));
  // A deferred call keeps its timeout until it is started. (First the restart
  // after the kill: a call made during it may time out waiting for it, which
  // under TSan took longer than 150 ms, and says so.)
  CHECK(p->add(1, 1) == 2);
  auto deferred = p.with_timeout(150ms).async(&faulty::hang, asio::experimental::deferred);
  auto started = std::move(deferred)(asio::use_future);
  REQUIRE(started.wait_for(20s) == std::future_status::ready);
  CHECK(contains(failure_of([&] { started.get(); }).what(), "150 ms"));
  CHECK(p.with_timeout(10s).async(&faulty::add, 2, 2, asio::use_future).get() == 4);
}

TEST_CASE("a plugin stuck while loading fails the load after its timeout") {
  isolate::process::options options;
  options.load_timeout = 300ms;
  const auto e = failure_of([&] { isolate::load<faulty, isolate::process>(ISOLATE_TEST_SLOW_START_PLUGIN, options); });
  CHECK(e.code() == isolate::errc::timeout);
  CHECK(contains(e.what(), "did not finish loading within 300 ms"));
}

TEST_CASE("a plugin that scribbles over the shared memory is killed with protocol_error") {
  isolate::process::options options;
  options.restart = isolate::restart_policy::crash(1, 1ms);
  auto p = load_faulty(options);
  const auto e = failure_of([&] { p->scribble_over_shared_memory(); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK(p->add(1, 1) == 2);  // restarted with fresh rings
}

TEST_CASE("messages larger than the ring are streamed; larger than the maximum are refused") {
  isolate::process::options options;
  options.ring_capacity = 64 * 1024;
  options.max_message_size = 8 << 20;
  auto p = load_faulty(options);
  const std::string big(3 << 20, 'q');
  CHECK(p->size_of(big) == big.size());
  CHECK(p->text_of_size(5 << 20) == std::string(5 << 20, 'z'));
  const auto too_big_request = failure_of([&] { p->size_of(std::string(9 << 20, 'x')); });
  CHECK(too_big_request.code() == isolate::errc::message_too_large);
  // The worker refuses to send the reply; the host did not see its size, so
  // the worker's message_too_large arrives as the peer's.
  const auto too_big_reply = isolate_test::remote_failure_of([&] { p->text_of_size(9 << 20); });
  CHECK(isolate_test::thrown_by_peer(too_big_reply, "message_too_large"));
  CHECK(p->add(1, 1) == 2);  // neither broke the channel
}

std::vector<std::uint8_t> pattern(std::size_t size) { return process_test::pattern_of(size); }

// Payload sizes around the one from which payloads are streamed, and around
// the records of a 64 KiB ring (at most 32 KiB each).
isolate::process::options small_ring() {
  isolate::process::options options;
  options.ring_capacity = 64 * 1024;
  return options;
}
constexpr std::size_t large = isolate::wire::large_payload;
constexpr std::array<std::size_t, 8> sizes_around_the_limits{
    large - 9, large - 8, large - 7, large, std::size_t{32} << 10, std::size_t{64} << 10, (std::size_t{64} << 10) + 1,
    (std::size_t{3} << 20) + 5};

TEST_CASE("large calls decoded straight from the ring arrive intact at every size around the limits") {
  auto p = load_faulty(small_ring());
  for (std::size_t size : sizes_around_the_limits) {
    CAPTURE(size);
    const auto bytes = pattern(size);
    CHECK(p->checksum(bytes) == process_test::checksum_of(bytes));
  }
  CHECK(p->add(1, 2) == 3);
}

TEST_CASE("large results decoded straight from the ring arrive intact at every size around the limits") {
  auto p = load_faulty(small_ring());
  for (std::size_t size : sizes_around_the_limits) {
    CAPTURE(size);
    CHECK(p->pattern_of_size(size) == pattern(size));
    CHECK(p->add(1, 2) == 3);  // the ring is in step after each
  }
  // Read by another thread than the caller (an asynchronous call), and by a
  // caller while another call is outstanding: gathered, as before.
  CHECK(p.async(&faulty::pattern_of_size, 1 << 20, asio::use_future).get() == pattern(1 << 20));
  std::vector<std::future<std::vector<std::uint8_t>>> answers;
  for (int i = 0; i < 3; ++i) {
    answers.push_back(std::async(std::launch::async, [&] { return p->pattern_of_size(std::size_t{2} << 20); }));
  }
  for (auto& answer : answers) CHECK(answer.get() == pattern(std::size_t{2} << 20));
}

TEST_CASE("with several worker threads, large calls are copied out of the ring and still arrive intact") {
  isolate::process::options options;
  options.concurrency = 2;
  auto p = load_faulty(options);
  const auto bytes = pattern(std::size_t{5} << 20);
  std::vector<std::future<std::uint64_t>> answers;
  for (int i = 0; i < 4; ++i) answers.push_back(std::async(std::launch::async, [&] { return p->checksum(bytes); }));
  for (auto& answer : answers) CHECK(answer.get() == process_test::checksum_of(bytes));
}

TEST_CASE("with worker concurrency N, N calls run at once and no more, over the rings and over the socket") {
  for (const bool shared_memory : {true, false}) {
    CAPTURE(shared_memory);
    isolate::process::options options;
    options.shared_memory = shared_memory;
    options.concurrency = 3;
    options.call_timeout = 60s;
    auto p = load_faulty(options);
    // Two rounds of three: each call returns only when three are inside at
    // once; the fourth to sixth wait in the worker until a thread is free.
    std::vector<std::future<int>> met;
    for (int i = 0; i < 6; ++i) met.push_back(p.async(&faulty::meet, 3, asio::use_future));
    for (auto& m : met) {
      REQUIRE(m.wait_for(30s) == std::future_status::ready);
      CHECK(m.get() == 3);
    }
    // A lone caller after that: the threads have settled, and calls still go through.
    for (int i = 0; i < 1000; ++i) REQUIRE(p->add(i, 1) == i + 1);
    CHECK(p->meet(1) == 3);
  }
}

TEST_CASE("a large payload whose serialisation throws while being written fails that call only") {
  auto p = load_faulty();
  process_test::fickle payload;
  payload.how = process_test::fickle::mode::throws;
  payload.bytes.resize(1 << 20);
  CHECK_THROWS_WITH_AS(p->size_of_fickle(payload), "fickle refused to be written", std::runtime_error);
  CHECK(payload.saves == 2);  // measured, then written: the throw came from the ring write
  payload.how = process_test::fickle::mode::steady;
  CHECK(p->size_of_fickle(payload) == payload.bytes.size());  // the ring is still in step
}

TEST_CASE("a large payload that writes less than it measured is a protocol error for that call only") {
  auto p = load_faulty();
  process_test::fickle payload;
  payload.how = process_test::fickle::mode::shrinks;
  payload.bytes.resize(1 << 20);
  // The worker finds the payload malformed; its protocol_error arrives as the peer's.
  CHECK(isolate_test::thrown_by_peer(isolate_test::remote_failure_of([&] { p->size_of_fickle(payload); }),
                                     "protocol_error"));
  CHECK(p->checksum(pattern(1 << 20)) == process_test::checksum_of(pattern(1 << 20)));
}

TEST_CASE("a large call to a plugin that stopped reading times out and the plugin is killed") {
  isolate::process::options options;
  options.ring_capacity = 64 * 1024;
  auto p = load_faulty(options);
  const int pid = p->pid();
  auto hung = p.async(&faulty::hang, asio::use_future);
  // The worker runs hang() and reads nothing more: the ring fills mid-frame.
  const auto e = failure_of([&] { p.with_timeout(300ms)->checksum(pattern(std::size_t{1} << 20)); });
  CHECK(e.code() == isolate::errc::timeout);
  REQUIRE(hung.wait_for(20s) == std::future_status::ready);
  CHECK(failure_of([&] { hung.get(); }).code() == isolate::errc::timeout);
  CHECK_FALSE(process_exists(pid));
}

TEST_CASE("the socket-only variant carries the same calls without shared memory") {
  isolate::process::options options;
  options.shared_memory = false;
  auto p = load_faulty(options);
  CHECK(p->add(2, 3) == 5);
  CHECK(p->size_of(std::string(2 << 20, 'a')) == (2u << 20));
  CHECK(failure_of([&] { p->segfault(); }).code() == isolate::errc::plugin_crashed);
}

TEST_CASE("a missing worker program fails the load with the places it looked") {
  isolate::process::options options;
  options.worker = "/nonexistent/isolate-worker";
  const auto e = failure_of([&] { load_faulty(options); });
  CHECK(e.code() == isolate::errc::load_failed);
  CHECK(contains(e.what(), "/nonexistent/isolate-worker"));
}

TEST_CASE("unloading fails calls still in flight with plugin_closed and stops the worker") {
  std::future<int> pending;
  int pid = 0;
  {
    auto p = load_faulty();
    pid = p->pid();
    pending = p.async(&faulty::sleep_ms, 50'000, asio::use_future);
  }
  REQUIRE(pending.wait_for(20s) == std::future_status::ready);
  CHECK(failure_of([&] { pending.get(); }).code() == isolate::errc::plugin_closed);
  CHECK_FALSE(process_exists(pid));
}

TEST_CASE("a plugin destroyed while its dead worker's calls are failing: their completions do not touch it") {
  // The worker dies (killed from outside) with many calls queued; the io
  // thread fails them one after another, and the plugin is destroyed as soon
  // as the first has failed, while the rest may still be failing. Every call
  // fails with the crash, none hangs, and the destruction waits for the
  // failing to end (worker_session::stop waits until on_exit is over; under
  // TSan, manager_test's shutdown case showed a completion reading the link
  // as it was freed, before that).
  constexpr int calls = 200;
  for (int round = 0; round < 3; ++round) {
    std::mutex mutex;
    std::condition_variable changed;
    int failed = 0, crashed = 0;
    {
      auto p = load_faulty();
      const int pid = p->pid();
      for (int i = 0; i < calls; ++i) {
        p.async(&faulty::sleep_ms, 50'000, [&](std::exception_ptr e, int) {
          bool named = false;
          try {
            if (e) std::rethrow_exception(e);
          } catch (const isolate::error& error) {
            named = error.code() == isolate::errc::plugin_crashed;
          } catch (...) {
          }
          std::lock_guard lock(mutex);
          ++failed;
          crashed += named ? 1 : 0;
          changed.notify_all();
        });
      }
      REQUIRE(::kill(pid, SIGKILL) == 0);
      std::unique_lock lock(mutex);
      REQUIRE(changed.wait_for(lock, 20s, [&] { return failed > 0; }));
    }
    std::unique_lock lock(mutex);
    REQUIRE(changed.wait_for(lock, 20s, [&] { return failed == calls; }));
    CHECK(crashed == calls);
  }
}
