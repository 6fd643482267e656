// Stress: rounds of 10,000 asynchronous calls in flight from 4 host threads
// to 8 process plugins, while plugins' workers are killed at random (restart
// on). Every call completes exactly once, with its value or a named error;
// none is lost, none hangs (the wait is bounded).
//
// ISOLATE_STRESS_ROUNDS sets another number of rounds (5).
#include "host_footprint.hpp"

#include "../hardening/support.hpp"

#include <asio/bind_executor.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <doctest/doctest.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using namespace hardening_test;
using namespace reliability_test;
using namespace std::chrono_literals;

namespace {

constexpr int plugin_count = 8;
constexpr int caller_count = 4;

// What became of each call: how many times it completed, and how.
struct outcomes {
  explicit outcomes(long calls) : completions(static_cast<std::size_t>(calls)) {}

  void complete(long call, std::exception_ptr failure, int value, int expected) {
    completions[static_cast<std::size_t>(call)].fetch_add(1);
    std::lock_guard lock(mutex);
    if (!failure) {
      if (value == expected) {
        ++values;
      } else {
        ++wrong_values;
      }
    } else {
      try {
        std::rethrow_exception(failure);
      } catch (const isolate::error& e) {
        if (e.code().category() == isolate::error_category()) {
          ++errors[static_cast<isolate::errc>(e.code().value())];
        } else {
          ++unnamed_errors;
        }
      } catch (...) {
        ++unnamed_errors;
      }
    }
    ++done;
    all_done.notify_all();
  }

  // Until `count` calls have completed (bounded: a lost call fails the test at the end instead).
  void wait_for_count(long count) {
    std::unique_lock lock(mutex);
    all_done.wait_for(lock, std::chrono::seconds(120), [&] { return done >= count; });
  }

  bool wait(std::chrono::seconds bound) {
    std::unique_lock lock(mutex);
    return all_done.wait_for(lock, bound, [&] { return done == static_cast<long>(completions.size()); });
  }

  std::vector<std::atomic<int>> completions;
  std::mutex mutex;
  std::condition_variable all_done;
  long done = 0, values = 0, wrong_values = 0, unnamed_errors = 0;
  std::map<isolate::errc, long> errors;
};

}  // namespace

TEST_CASE("stress: rounds of 10,000 asynchronous calls from 4 threads to 8 plugins, workers killed at random: "
          "each call completes exactly once") {
  constexpr long in_flight = 10'000;
  const long rounds = count_from_environment("ISOLATE_STRESS_ROUNDS", 5);
  const long total = in_flight * rounds;
  isolate::process::options options;
  options.restart = isolate::restart_policy::crash(1000, 0ms);
  std::vector<hardy_plugin> plugins;
  for (int i = 0; i < plugin_count; ++i) {
    options.concurrency = i % 2 == 0 ? 1 : 2;  // half the workers run two calls at once, taking turns reading
    plugins.push_back(load_hardy(options));
  }

  // Completions run here, on two threads of the test's own.
  asio::io_context completions;
  auto work = asio::make_work_guard(completions);
  std::vector<std::thread> completing;
  for (int i = 0; i < 2; ++i) completing.emplace_back([&] { completions.run(); });

  outcomes results(total);
  std::atomic<bool> calling{true};
  std::atomic<int> kills{0};
  // Kills a random plugin's worker every few milliseconds while calls go out.
  std::thread killer([&] {
    std::mt19937 random(12345);
    bool first = true;  // one kill at least, before the first calls go out
    while (first || calling.load()) {
      first = false;
      auto& victim = plugins[random() % plugin_count];
      const int pid = victim.transport().pid();
      if (pid > 0 && ::kill(pid, SIGKILL) == 0) kills.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(500 + random() % 2500));  // pacing, not waiting for anything
    }
  });

  std::vector<std::thread> callers;
  for (int t = 0; t < caller_count; ++t) {
    callers.emplace_back([&, t] {
      for (long call = t; call < total; call += caller_count) {
        // A round's calls go out at once; the next round waits for the one before.
        if (call % in_flight < caller_count && call >= in_flight) results.wait_for_count(call - call % in_flight);
        const int a = static_cast<int>(call % 1000);
        auto& p = plugins[static_cast<std::size_t>(call % plugin_count)];
        p.async(&hardy::add, a, 1,
                asio::bind_executor(completions, [&results, call, a](std::exception_ptr failure, int value) {
                  results.complete(call, failure, value, a + 1);
                }));
      }
    });
  }
  for (auto& caller : callers) caller.join();
  const bool finished = results.wait(120s);
  calling.store(false);
  killer.join();
  work.reset();
  for (auto& thread : completing) thread.join();

  std::string errors;
  for (const auto& [code, count] : results.errors) errors += " " + std::error_code(code).message() + ": " + std::to_string(count);
  MESSAGE(total << " calls in " << rounds << " rounds, " << kills.load() << " kills: " << results.values << " values," << errors);
  REQUIRE(finished);
  long never = 0, twice = 0;
  for (const auto& c : results.completions) {
    if (c.load() == 0) ++never;
    if (c.load() > 1) ++twice;
  }
  CHECK(never == 0);
  CHECK(twice == 0);
  CHECK(results.wrong_values == 0);
  CHECK(results.unnamed_errors == 0);
  CHECK(results.values > 0);
  for (const auto& [code, count] : results.errors) {
    CAPTURE(std::error_code(code).message());
    // What a call to a worker killed under it may end with.
    CHECK((code == isolate::errc::plugin_crashed || code == isolate::errc::plugin_closed ||
           code == isolate::errc::limit_exceeded));
  }
  // And every plugin still answers: a call may meet a worker the last kill
  // has just ended (plugin_crashed); the next goes to its restarted worker.
  for (auto& p : plugins) {
    int answer = 0;
    try {
      answer = p->add(1, 1);
    } catch (const isolate::error& e) {
      CHECK(e.code() == isolate::errc::plugin_crashed);
      answer = p->add(1, 1);
    }
    CHECK(answer == 2);
  }
}
