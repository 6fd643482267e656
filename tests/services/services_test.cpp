// Plugins calling their host, written once and run under every transport.
#include "isolate/services.hpp"

#include <isolate/isolate.hpp>

#include "accountant.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <vector>

using namespace services_test;
using namespace std::chrono_literals;

namespace {

struct host_ledger final : ledger {
  int record(const std::string& entry) override {
    if (entry == "boom") throw std::invalid_argument("the ledger refuses 'boom'");
    std::lock_guard lock(mutex);
    entries.push_back(entry);
    return static_cast<int>(entries.size());
  }
  int ask_plugin_to_double_twice(int x) override { return plugin->double_it(plugin->double_it(x)); }

  std::mutex mutex;
  std::vector<std::string> entries;
  accountant* plugin = nullptr;  // set once loaded: the host calls the plugin back
};

struct host_ticks final : ticks {
  void tick(int n) override {
    {
      std::lock_guard lock(mutex);
      seen.push_back(n);
    }
    changed.notify_all();
  }
  // Waits (bounded, so a regression fails instead of hanging) until `count` ticks arrived.
  bool wait_for(std::size_t count) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 20s, [&] { return seen.size() >= count; });
  }
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<int> seen;
};

template <class Policy>
struct fixture {
  host_ledger book;
  host_ticks clock;
  isolate::plugin<accountant, Policy> plugin = [&] {
    isolate::host_services services;
    services.provide<ledger>(book).provide<ticks>(clock);
    return isolate::load<accountant, Policy>(ISOLATE_TEST_ACCOUNTANT_PLUGIN, {}, services);
  }();
  fixture() { book.plugin = &*plugin; }
};

}  // namespace

#define ISOLATE_TEST_POLICIES isolate::in_process, isolate::thread, isolate::process

TEST_CASE_TEMPLATE("a plugin calls a host service and gets its answer", Policy, ISOLATE_TEST_POLICIES) {
  fixture<Policy> f;
  CHECK(f.plugin->post("rent") == 1);
  CHECK(f.plugin->post("food") == 2);
  CHECK(f.book.entries == std::vector<std::string>{"rent", "food"});
  CHECK(f.plugin->post_many(200) == 202);
}

TEST_CASE_TEMPLATE("the host may call the plugin again while the plugin waits on the host", Policy,
                   ISOLATE_TEST_POLICIES) {
  fixture<Policy> f;
  CHECK(f.plugin->round_trip_through_host(5) == 21);
  CHECK(f.plugin->round_trip_through_host(1) == 5);
}

TEST_CASE_TEMPLATE("a host service's exception reaches the plugin, and through it the host", Policy,
                   ISOLATE_TEST_POLICIES) {
  fixture<Policy> f;
  CHECK_THROWS_WITH_AS(f.plugin->post("boom"), "the ledger refuses 'boom'", std::invalid_argument);
  CHECK(f.plugin->post("after") == 1);
}

TEST_CASE_TEMPLATE("events arrive in order, during a call", Policy, ISOLATE_TEST_POLICIES) {
  fixture<Policy> f;
  f.plugin->emit_ticks(50);
  REQUIRE(f.clock.wait_for(50));
  std::vector<int> expected(50);
  for (int i = 0; i < 50; ++i) expected[i] = i;
  CHECK(f.clock.seen == expected);
}

TEST_CASE_TEMPLATE("events sent while no call is in flight still arrive", Policy, ISOLATE_TEST_POLICIES) {
  fixture<Policy> f;
  f.plugin->emit_ticks_later(3);
  REQUIRE(f.clock.wait_for(3));
  CHECK(f.clock.seen == std::vector<int>{100, 101, 102});
}

// What "one-way" means: under process the plugin does not wait for the
// host's handler, so the handler's failure is not the plugin's; under
// in_process and thread an event is a direct call on the plugin's thread, and
// the handler's exception goes through the plugin's call.
TEST_CASE_TEMPLATE("an event is one-way under process, a direct call in the host's process", Policy,
                   ISOLATE_TEST_POLICIES) {
  struct refusing_ticks final : ticks {
    void tick(int n) override {
      if (n == 2) throw std::runtime_error("tick 2 refused");
      seen.push_back(n);
    }
    std::vector<int> seen;
  };
  host_ledger book;
  refusing_ticks clock;
  isolate::host_services services;
  services.provide<ledger>(book).provide<ticks>(clock);
  auto plugin = isolate::load<accountant, Policy>(ISOLATE_TEST_ACCOUNTANT_PLUGIN, {}, services);
  if constexpr (std::is_same_v<Policy, isolate::process>) {
    plugin->emit_ticks(4);  // nothing waited for tick 2's answer
    CHECK(clock.seen == std::vector<int>{0, 1, 3});
  } else {
    CHECK_THROWS_WITH_AS(plugin->emit_ticks(4), "tick 2 refused", std::runtime_error);
    CHECK(clock.seen == std::vector<int>{0, 1});
  }
}

TEST_CASE_TEMPLATE("asking for a service the host does not provide is a clear error", Policy, ISOLATE_TEST_POLICIES) {
  fixture<Policy> f;
  CHECK(f.plugin->missing_service_is_reported());
}

// Under process the thread that reads the worker's frames runs event handlers.
// A handler that calls the plugin reads the ring for its own reply, and meets
// there the reply to the call that thread is waiting for (sent as the lone
// caller, so it has no entry in the table of pending calls).
TEST_CASE("process: an event handler may call the plugin while the reply to the call in flight arrives") {
  struct calling_ticks final : ticks {
    void tick(int n) override { doubled.push_back(plugin->double_it(n)); }
    accountant* plugin = nullptr;
    std::vector<int> doubled;
  };
  host_ledger book;
  calling_ticks clock;
  isolate::host_services services;
  services.provide<ledger>(book).provide<ticks>(clock);
  auto plugin = isolate::load<accountant, isolate::process>(ISOLATE_TEST_ACCOUNTANT_PLUGIN, {}, services);
  clock.plugin = &*plugin;
  plugin->emit_ticks(5);
  // Each handler's call reads the next event and runs its handler before its own reply.
  std::sort(clock.doubled.begin(), clock.doubled.end());
  CHECK(clock.doubled == std::vector<int>{0, 2, 4, 6, 8});
  CHECK(plugin->double_it(21) == 42);
}
