// Violations, quarantine and recovery, from a real plugin: each death is a
// typed violation with what was done about it; past the threshold the plugin
// is quarantined (calls fail with errc::quarantined, no restart) until the
// host releases it; the history says what happened and why, and the host's
// callbacks hear each step.
#include "isolate/telemetry.hpp"

#include "support.hpp"

#include "../support/failure.hpp"

#include <asio/use_future.hpp>
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <vector>

using namespace supervision_test;
using namespace std::chrono_literals;
using isolate_test::contains;
using isolate_test::failure_of;

namespace {

// What the callbacks heard (they run on the plugin's supervision thread).
struct heard {
  std::mutex mutex;
  std::vector<isolate::violation> violations, crashes;
  std::vector<isolate::recovery> restarts, quarantines;

  void listen(isolate::supervision& s) {
    s.on_violation = [this](const isolate::violation& v) { add(violations, v); };
    s.on_crash = [this](const isolate::violation& v) { add(crashes, v); };
    s.on_restart = [this](const isolate::recovery& r) { add(restarts, r); };
    s.on_quarantine = [this](const isolate::recovery& r) { add(quarantines, r); };
  }
  template <class Entry>
  void add(std::vector<Entry>& to, const Entry& entry) {
    std::lock_guard lock(mutex);
    to.push_back(entry);
  }
  template <class Entry>
  std::size_t count(const std::vector<Entry>& of) {
    std::lock_guard lock(mutex);
    return of.size();
  }
};

}  // namespace

TEST_CASE("violations: each kind of death is recorded with its details and the action taken") {
  auto options = watched_options();
  options.restart = isolate::restart_policy::crash(10, 1ms);
  options.call_timeout = 5s;
  auto p = load_watched(options);

  failure_of([&] { p->segfault(); });
  CHECK(p->add(1, 1) == 2);
  failure_of([&] { p.with_timeout(50ms)->sleep_ms(5000); });
  CHECK(p->add(1, 1) == 2);
  failure_of([&] { p->exit_now(0); });  // unasked: the protocol is broken
  CHECK(p->add(1, 1) == 2);

  const auto violations = p.transport().violations();
  REQUIRE(violations.size() == 3);
  CHECK(violations[0].kind == isolate::violation_kind::crash);
  CHECK(contains(violations[0].details, "SIGSEGV"));
  CHECK(violations[0].action == "worker stopped; restart 1 of 10");
  CHECK(violations[1].kind == isolate::violation_kind::timeout);
  CHECK(contains(violations[1].details, "did not return within 50 ms"));
  CHECK(violations[2].kind == isolate::violation_kind::protocol);
  CHECK(contains(violations[2].details, "without being asked to stop"));
  for (const auto& v : violations) {
    CHECK(v.plugin == "watched");
    CHECK(v.time <= std::chrono::system_clock::now());
  }
  const auto line = fmt::format("{}", violations[0]);
  CHECK(contains(line, "watched crash: "));
  CHECK(contains(line, "-> worker stopped; restart 1 of 10"));
  CHECK(contains(isolate::to_json(violations[1]), "\"kind\":\"timeout\""));

  const auto history = p.transport().history();
  REQUIRE(history.size() == 3);
  for (const auto& r : history) CHECK(r.action == isolate::recovery_action::restart);
  CHECK(contains(history[0].reason, "SIGSEGV"));
  CHECK(p.transport().telemetry().violations == 3);
}

TEST_CASE("violations: a memory limit reached is a resource violation" * doctest::skip(memory_cap_unsupported)) {
  auto options = watched_options();
  options.restart = isolate::restart_policy::crash(1, 1ms);
  options.limits = isolate::limits::standard().memory_mb(64);
  auto p = load_watched(options);
  const auto e = failure_of([&] { p->touch_mib(256); });
  CHECK(e.code() == isolate::errc::limit_exceeded);
  const auto violations = p.transport().violations();
  REQUIRE(violations.size() == 1);
  CHECK(violations[0].kind == isolate::violation_kind::resource);
  CHECK(contains(violations[0].details, "memory limit of 64 MiB"));
}

TEST_CASE("quarantine: past its threshold the plugin is quarantined until released; callbacks hear each step") {
  heard events;
  auto options = watched_options();
  options.restart = isolate::restart_policy::crash(10, 1ms);
  options.supervision.quarantine_after = 3;
  events.listen(options.supervision);
  auto p = load_watched(options);

  for (int crash = 0; crash < 2; ++crash) {
    failure_of([&] { p->segfault(); });
    CHECK(p->add(1, 2) == 3);  // restarted
  }
  CHECK_FALSE(p.transport().quarantined());
  const auto third = failure_of([&] { p->segfault(); });
  CHECK(third.code() == isolate::errc::plugin_crashed);
  const auto refused = failure_of([&] { p->add(1, 2); });
  CHECK(refused.code() == isolate::errc::quarantined);
  CHECK_MESSAGE(contains(refused.what(), "'watched' is quarantined (3 violations reached its threshold of 3)"),
                refused.what());
  CHECK(p.transport().quarantined());
  CHECK(p.transport().restarts() == 2);  // none after the third
  CHECK(p.transport().telemetry().quarantined);

  auto history = p.transport().history();
  REQUIRE(history.size() == 3);
  CHECK(history[2].action == isolate::recovery_action::quarantine);
  CHECK(p.transport().violations().back().action == "worker stopped; quarantined");

  p.transport().release();
  CHECK_FALSE(p.transport().quarantined());
  CHECK(p->add(2, 2) == 4);
  history = p.transport().history();
  REQUIRE(history.size() == 4);
  CHECK(history[3].action == isolate::recovery_action::release);
  // The count starts again: one more crash is not a quarantine.
  failure_of([&] { p->segfault(); });
  CHECK(p->add(1, 1) == 2);
  CHECK_FALSE(p.transport().quarantined());

  // The callbacks ran on the supervision thread before each call above failed or returned.
  CHECK(events.count(events.violations) == 4);
  CHECK(events.count(events.crashes) == 4);
  CHECK(events.count(events.restarts) == 3);
  CHECK(events.count(events.quarantines) == 1);
}

TEST_CASE("quarantine: the host can quarantine a running plugin; its pending call fails with quarantined") {
  auto options = watched_options();
  options.restart = isolate::restart_policy::crash(10, 1ms);
  auto p = load_watched(options);
  CHECK(p->add(1, 1) == 2);
  auto sleeping = p.async(&watched::sleep_ms, 10'000, asio::use_future);
  p.transport().quarantine("the host saw enough");
  const auto e = failure_of([&] { sleeping.get(); });
  CHECK(e.code() == isolate::errc::quarantined);
  CHECK(failure_of([&] { p->add(1, 1); }).code() == isolate::errc::quarantined);
  CHECK(p.transport().history().back().reason == "the host saw enough");
  CHECK(p.transport().violations().empty());  // the host's decision, not the plugin's violation
  p.transport().release();
  CHECK(p->add(1, 1) == 2);
}

TEST_CASE("quarantine: a callback that throws does not stop the supervision") {
  auto options = watched_options();
  options.restart = isolate::restart_policy::crash(3, 1ms);
  options.supervision.on_violation = [](const isolate::violation&) { throw std::runtime_error("callback failed"); };
  options.supervision.on_restart = [](const isolate::recovery&) { throw 42; };
  auto p = load_watched(options);
  failure_of([&] { p->segfault(); });
  CHECK(p->add(1, 1) == 2);
  CHECK(p.transport().restarts() == 1);
}

TEST_CASE("quarantine: repeated denied network attempts are violations that quarantine the plugin; release brings "
          "it back") {
  heard events;
  std::promise<void> quarantined;
  auto options = watched_options();
  // Under strict's network namespace a socket() would reach nothing, unseen:
  // with refusals reported, the IP ones are refused by seccomp too.
  SUBCASE("strict") { options.limits = isolate::limits::strict(); }
  SUBCASE("strict, network by seccomp only") {
    options.limits = isolate::limits::strict().network(isolate::limits::network_isolation::seccomp_only);
  }
  options.supervision.quarantine_after = 3;
  events.listen(options.supervision);
  options.supervision.on_quarantine = [&](const isolate::recovery&) { quarantined.set_value(); };
  auto p = load_watched(options);
  const auto report = p.transport().limits_in_force();
  const bool reported = std::any_of(report.begin(), report.end(), [](const auto& e) {
    return e.limit == "syscalls" && contains(e.mechanism, "each refusal reported to the host");
  });
  REQUIRE_MESSAGE(reported, "this kernel has no seccomp user notification");

  for (int attempt = 0; attempt < 3; ++attempt) {
    try {
      CHECK(p->try_network() == EACCES);  // the plugin sees a refusal, not a kill
    } catch (const isolate::error& e) {
      CHECK(e.code() == isolate::errc::quarantined);  // the third: quarantined as it returned
    }
  }
  REQUIRE(quarantined.get_future().wait_for(10s) == std::future_status::ready);
  CHECK(p.transport().quarantined());
  CHECK(failure_of([&] { p->add(1, 1); }).code() == isolate::errc::quarantined);
  const auto violations = p.transport().violations();
  REQUIRE(violations.size() == 3);
  for (const auto& v : violations) {
    CHECK(v.kind == isolate::violation_kind::network);
    CHECK_MESSAGE(v.details.starts_with("socket(AF_INET SOCK_STREAM"), v.details);
    CHECK(v.action == "refused (EACCES)");
  }
  MESSAGE("after three denied network attempts:\n"
          << fmt::format("{}\n", violations.front()) << fmt::format("{}", p.transport().telemetry()));

  p.transport().release();
  CHECK(p->add(2, 3) == 5);
  CHECK(p->try_network() == EACCES);
  CHECK_FALSE(p.transport().quarantined());
  const auto history = p.transport().history();
  REQUIRE(history.size() == 2);
  CHECK(history[0].action == isolate::recovery_action::quarantine);
  CHECK(history[1].action == isolate::recovery_action::release);
}
