// Per-call accounting: p.with_accounting(cost)->method() reports what that
// one call cost where it ran, under each transport: CPU time of a call that
// burns 50 ms, page faults and peak growth of one that touches 64 MiB, the
// cost of a call that threw; nothing for a call whose worker died, and
// nothing asked of calls made without it.
#include "isolate/telemetry.hpp"

#include "support.hpp"
#include "watched_impl.hpp"

#include "../support/failure.hpp"
#include "../support/sanitizers.hpp"

#include <isolate/transport/in_process.hpp>
#include <isolate/transport/thread.hpp>

#include <asio/use_future.hpp>
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

using namespace supervision_test;
using namespace std::chrono_literals;
using isolate_test::contains;
using isolate_test::failure_of;
using isolate_test::under_asan;
using isolate_test::under_tsan;

namespace {

template <class Policy>
auto load_for() {
  if constexpr (std::is_same_v<Policy, isolate::process>) {
    return load_watched();
  } else {
    return isolate::load<watched, Policy>(std::make_unique<watched_impl>());
  }
}

// The kernel counts CPU time in clock ticks and splits it between user and
// system by sampling: their sum is what is exact.
std::chrono::microseconds cpu_of(const isolate::call_cost& cost) { return cost.cpu_user + cost.cpu_system; }

constexpr std::uint64_t mib = std::uint64_t{1} << 20;

}  // namespace

TEST_CASE_TEMPLATE("accounting: a call that burns 50 ms of CPU reports it", Policy, isolate::in_process, isolate::thread,
                   isolate::process) {
  auto p = load_for<Policy>();
  isolate::call_cost cost;
  p.with_accounting(cost)->burn_cpu_ms(50);
  CHECK(cost.measured);
  CHECK(cpu_of(cost) >= 45ms);
  CHECK(cpu_of(cost) < 2s);

  isolate::call_cost small;
  CHECK(p.with_accounting(small)->add(2, 3) == 5);
  CHECK(small.measured);
  CHECK(cpu_of(small) < 20ms);
}

TEST_CASE_TEMPLATE("accounting: a call that touches 64 MiB reports its page faults", Policy, isolate::in_process,
                   isolate::thread, isolate::process) {
  auto p = load_for<Policy>();
  isolate::call_cost cost;
  CHECK(p.with_accounting(cost)->touch_mib(64) == 64);
  CHECK(cost.measured);
  // One fault per 4 KiB page without huge pages, one per 2 MiB with them
  // (and, under TSan, its shadow's: several times as many).
  CHECK(cost.minor_faults >= 64 / 2);
  if (!under_tsan) CHECK(cost.minor_faults < 64 * mib / 4096 * 2);
  if constexpr (std::is_same_v<Policy, isolate::process>) {
    // A fresh worker: the call raised its peak by what it touched. A second
    // one stays under that peak (not under ASan, whose quarantine keeps the
    // first block from being reused).
    CHECK(cost.peak_memory_growth_bytes >= 60 * mib);
    if (!under_tsan) CHECK(cost.peak_memory_growth_bytes < 256 * mib);
    isolate::call_cost again;
    CHECK(p.with_accounting(again)->touch_mib(64) == 64);
    if (!under_asan) CHECK(again.peak_memory_growth_bytes < 16 * mib);
  }
}

TEST_CASE_TEMPLATE("accounting: a call that throws is measured, and its exception arrives", Policy,
                   isolate::in_process, isolate::thread, isolate::process) {
  auto p = load_for<Policy>();
  isolate::call_cost cost;
  CHECK_THROWS_WITH_AS(p.with_accounting(cost)->fail(), "asked to fail", std::runtime_error);
  CHECK(cost.measured);
  CHECK(cpu_of(cost) < 1s);
}

TEST_CASE_TEMPLATE("accounting: only the call made through with_accounting is measured", Policy, isolate::in_process,
                   isolate::thread, isolate::process) {
  auto p = load_for<Policy>();
  isolate::call_cost cost;
  CHECK(p.with_accounting(cost)->add(1, 1) == 2);
  REQUIRE(cost.measured);
  const auto first = cost;
  p->burn_cpu_ms(30);  // not accounted: `cost` keeps the first call's figures
  CHECK(cost.cpu_user == first.cpu_user);
  CHECK(cost.cpu_system == first.cpu_system);
  CHECK(cost.minor_faults == first.minor_faults);
}

TEST_CASE_TEMPLATE("accounting: an asynchronous call's cost is there when its handler runs", Policy,
                   isolate::in_process, isolate::thread, isolate::process) {
  auto p = load_for<Policy>();
  isolate::call_cost cost;
  auto burnt = p.with_accounting(cost).async(&watched::burn_cpu_ms, 40, asio::use_future);
  burnt.get();
  CHECK(cost.measured);
  CHECK(cpu_of(cost) >= 35ms);

  isolate::call_cost failed;
  auto thrown = p.with_accounting(failed).async(&watched::fail, asio::use_future);
  CHECK_THROWS_AS(thrown.get(), std::runtime_error);
  CHECK(failed.measured);
}

TEST_CASE("accounting: a call whose worker dies is not measured, and fails as it would without accounting") {
  auto p = load_watched();
  isolate::call_cost cost;
  const auto e = failure_of([&] { p.with_accounting(cost)->segfault(); });
  CHECK(e.code() == isolate::errc::plugin_crashed);
  CHECK_FALSE(cost.measured);
  CHECK(cost.cpu_user == 0us);

  auto options = watched_options();
  options.call_timeout = 200ms;
  auto q = load_watched(options);
  isolate::call_cost timed_out;
  CHECK(failure_of([&] { q.with_accounting(timed_out)->sleep_ms(5000); }).code() == isolate::errc::timeout);
  CHECK_FALSE(timed_out.measured);
}

TEST_CASE("accounting: the cost prints with fmt and exports as JSON") {
  isolate::call_cost cost;
  CHECK(fmt::format("{}", cost) == "not measured");
  cost.measured = true;
  cost.cpu_user = 1200us;
  cost.cpu_system = 30us;
  cost.minor_faults = 2100;
  cost.peak_memory_growth_bytes = 8 * mib;
  CHECK(fmt::format("{}", cost) == "cpu 1.20 ms user, 30.0 us system; 2100 page faults (0 major); peak +8.0 MiB");
  CHECK(isolate::to_json(cost) ==
        "{\"measured\":true,\"cpu_user_us\":1200,\"cpu_system_us\":30,\"minor_faults\":2100,\"major_faults\":0,"
        "\"peak_memory_growth_bytes\":8388608}");
}
