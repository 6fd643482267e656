// Many sandboxed plugins at once through one manager: they load side by side
// from four threads, all answer, and the host's threads do not grow with
// their number (one shared pool of io threads; a plugin's receiver thread
// only while it has asynchronous work). After shutdown the host is as it
// was: no thread, process, descriptor or memfd of theirs is left.
//
// CI loads 48 (ISOLATE_MANY_PLUGINS sets another count; the 1000-plugin
// figures are benchmarks/isolate_scale_bench's).
#include "isolate/manager.hpp"

#include "../plugin_library/calculator.hpp"
#include "../reliability/host_footprint.hpp"
#include "../support/sanitizers.hpp"

#include <asio/use_future.hpp>
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using plugin_library_test::calculator;
using reliability_test::host_footprint;

namespace {

// What the library runs for any number of process plugins: the shared io
// pool's threads (the launcher's thread is counted in `before`).
constexpr int library_threads = static_cast<int>(isolate::detail::io_pool::max_threads);

// Waits (bounded) until the host runs at most `most` threads; returns the count seen last.
int threads_settle_to(int most, std::chrono::seconds bound) {
  const auto give_up = std::chrono::steady_clock::now() + bound;
  int now = host_footprint::now().threads;
  while (now > most && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(10ms);  // polling /proc: no event says "a thread ended"
    now = host_footprint::now().threads;
  }
  return now;
}

}  // namespace

TEST_CASE("many sandboxed plugins: loaded side by side, all answer, and the host's threads stay few") {
  isolate::raise_open_files_limit();
  const long count = reliability_test::count_from_environment("ISOLATE_MANY_PLUGINS", 48);
  const auto level = isolate::level::parse("process:strict");
  isolate::manager plugins;
  {
    // Threads that live from their first use on, whatever the plugins:
    // isolate's launcher (the first load) and Asio's system_context (the
    // first use_future completion). Count from there.
    auto first = plugins.load<calculator>("first", ISOLATE_TEST_CALCULATOR_PLUGIN, level);
    CHECK(first.async(&calculator::add, 1, 1, asio::use_future).get() == 2);
    plugins.unload("first");
  }
  const host_footprint before = host_footprint::now();

  std::atomic<long> next{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> loaders;
  for (int t = 0; t < 4; ++t) {
    loaders.emplace_back([&] {
      for (long i; (i = next.fetch_add(1)) < count;) {
        try {
          auto p = plugins.load<calculator>(fmt::format("calc-{}", i), ISOLATE_TEST_CALCULATOR_PLUGIN, level);
          if (p->add(static_cast<int>(i), 1) != i + 1) failures.fetch_add(1);
        } catch (const std::exception& e) {
          failures.fetch_add(1);
          MESSAGE("plugin " << i << ": " << e.what());
        }
      }
    });
  }
  for (auto& t : loaders) t.join();
  REQUIRE(failures.load() == 0);
  REQUIRE(plugins.list().size() == static_cast<std::size_t>(count));

  // Synchronous calls are read by their callers: no thread per plugin.
  for (long i = 0; i < count; ++i) CHECK(plugins.get<calculator>(fmt::format("calc-{}", i))->add(2, 3) == 5);
  const host_footprint during = host_footprint::now();
  MESSAGE(count << " plugins: before " << before << "\nwhile all live: " << during);
  CHECK(during.threads <= before.threads + library_threads);
  CHECK(during.children == before.children + count);  // one worker each (PID 1 of its namespaces)

  // Asynchronous calls to all of them: each plugin's receiver reads its
  // replies, then retires once idle.
  std::vector<std::future<int>> replies;
  for (long i = 0; i < count; ++i) {
    replies.push_back(plugins.get<calculator>(fmt::format("calc-{}", i)).async(&calculator::add, 1, 1, asio::use_future));
  }
  for (auto& reply : replies) CHECK(reply.get() == 2);
  CHECK(threads_settle_to(before.threads + library_threads, 10s) <= before.threads + library_threads);

  plugins.shutdown();
  const host_footprint after = host_footprint::now();
  MESSAGE("after shutdown: " << after);
  CHECK(after.children == before.children);
  CHECK(after.memfds == before.memfds);
  if (!isolate_test::under_tsan) CHECK(after.fds == before.fds);  // TSan's runtime opens descriptors of its own
  // The io pool ended with the last plugin; the launcher's thread stays.
  CHECK(threads_settle_to(before.threads, 10s) <= before.threads);
}
