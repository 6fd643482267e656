// Telemetry of a process plugin, checked against work whose cost is known:
// calls and failures counted, latency sampled, bytes each way, CPU time of
// a call that burns 50 ms, peak memory of one that touches 64 MiB, restarts
// and the last exit; readable while the plugin runs, printable with fmt and
// exportable as JSON.
#include "isolate/telemetry.hpp"

#include "support.hpp"

#include "../support/failure.hpp"

#include <asio/use_future.hpp>
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>
#include <string>

using namespace supervision_test;
using namespace std::chrono_literals;
using isolate_test::contains;
using isolate_test::failure_of;

TEST_CASE("telemetry: calls, failures, latency and bytes are counted as the plugin runs") {
  auto p = load_watched();
  const auto before = p.transport().telemetry();
  CHECK(before.plugin == "watched");
  CHECK(before.running);
  CHECK(before.pid == p.transport().pid());
  CHECK(before.calls == 0);
  CHECK(before.errors == 0);
  CHECK(before.latency_samples == 0);

  for (int i = 0; i < 160; ++i) REQUIRE(p->add(i, 1) == i + 1);
  CHECK_THROWS_AS(p->fail(), std::runtime_error);
  CHECK_THROWS_AS(p->fail(), std::runtime_error);
  const auto t = p.transport().telemetry();
  CHECK(t.calls == 162);
  CHECK(t.errors == 2);
  CHECK(t.latency_samples >= 9);  // one call in 17, on this thread
  CHECK(t.latency_p50 > 0ns);
  CHECK(t.latency_p50 <= t.latency_p99);
  CHECK(t.latency_p99 < 1s);
  // Each call and each reply is a frame of at least its header.
  CHECK(t.bytes_sent >= 162 * 16);
  CHECK(t.bytes_received >= 162 * 16);
  CHECK(t.uptime >= 0ms);
  CHECK(t.restarts == 0);
  CHECK(t.violations == 0);
  CHECK(t.last_exit.empty());
}

TEST_CASE("telemetry: asynchronous calls and their failures are counted too") {
  auto options = watched_options();
  auto p = load_watched(options);
  auto ok = p.async(&watched::add, 2, 3, asio::use_future);
  auto failed = p.async(&watched::fail, asio::use_future);
  CHECK(ok.get() == 5);
  CHECK_THROWS_AS(failed.get(), std::runtime_error);
  const auto t = p.transport().telemetry();
  CHECK(t.calls == 2);
  CHECK(t.errors == 1);
}

TEST_CASE("telemetry: CPU time of a call that burns 50 ms, and peak memory of one that touches 64 MiB") {
  auto p = load_watched();
  const auto before = p.transport().telemetry();
  p->burn_cpu_ms(50);
  const auto burnt = p.transport().telemetry();
  // The kernel counts in clock ticks (10 ms at 100 Hz), and splits the
  // time between user and system by sampling: their sum is what is exact.
  const auto spent = (burnt.cpu_user + burnt.cpu_system) - (before.cpu_user + before.cpu_system);
  CHECK(spent >= 40ms);
  CHECK(spent < 2s);
  CHECK(before.peak_memory_bytes < (std::uint64_t{48} << 20));
  CHECK(p->touch_mib(64) == 64);
  const auto touched = p.transport().telemetry();
  CHECK(touched.peak_memory_bytes >= (std::uint64_t{64} << 20));
  CHECK(touched.peak_memory_bytes < (std::uint64_t{1} << 30));
}

TEST_CASE("telemetry: what a dead worker used is kept, and its end is the last exit") {
  auto options = watched_options();
  options.restart = isolate::restart_policy::crash(2, 1ms);
  auto p = load_watched(options);
  p->burn_cpu_ms(50);
  CHECK(p->touch_mib(64) == 64);
  const auto e = failure_of([&] { p->segfault(); });
  CHECK(e.code() == isolate::errc::plugin_crashed);
  CHECK(p->add(1, 1) == 2);  // restarted
  const auto t = p.transport().telemetry();
  CHECK(t.restarts == 1);
  CHECK(t.calls == 4);
  CHECK(t.errors == 1);
  CHECK(t.cpu_user + t.cpu_system >= 40ms);  // the first worker's, from its reaping
  CHECK(t.peak_memory_bytes >= (std::uint64_t{64} << 20));
  CHECK_MESSAGE(contains(t.last_exit, "SIGSEGV"), t.last_exit);
  CHECK(t.violations == 1);
}

TEST_CASE("telemetry: what a worker replaced by the host did is kept (restart, reload)") {
  auto p = load_watched(watched_options());
  p->burn_cpu_ms(50);
  CHECK(p->add(1, 1) == 2);
  p.transport().link().restart_now("restarted by the test");
  CHECK(p->add(2, 2) == 4);
  auto t = p.transport().telemetry();
  CHECK(t.calls == 3);  // two on the first worker, one on the second
  CHECK(t.cpu_user + t.cpu_system >= 40ms);  // the first worker's burn
  p.transport().reload();
  CHECK(p->add(3, 3) == 6);
  t = p.transport().telemetry();
  CHECK(t.calls == 4);
  CHECK(t.violations == 0);  // the host's own doing
}

TEST_CASE("telemetry: printed with fmt as a table, and exported as JSON") {
  auto p = load_watched();
  CHECK(p->add(1, 2) == 3);
  const auto t = p.transport().telemetry();
  const auto table = fmt::format("{}", t);
  MESSAGE("\n" << table);
  for (const char* row : {"plugin        watched", "state         running (pid", "calls         1 (0 failed)",
                          "latency", "bytes", "cpu", "peak memory", "restarts      0", "violations    0",
                          "last exit     -"}) {
    CHECK_MESSAGE(contains(table, row), row);
  }
  const auto json = isolate::to_json(t);
  CHECK(json.starts_with("{\"plugin\":\"watched\",\"running\":true,"));
  CHECK(contains(json, "\"calls\":1,"));
  CHECK(contains(json, "\"last_exit\":\"\"}"));
}

TEST_CASE("telemetry: JSON strings are escaped") {
  isolate::plugin_telemetry t;
  t.plugin = "a \"quoted\" name\\";
  t.last_exit = "line\nbreak\x01";
  const auto json = isolate::to_json(t);
  CHECK(contains(json, R"("plugin":"a \"quoted\" name\\")"));
  CHECK(contains(json, R"("last_exit":"line\nbreak\u0001")"));
}
