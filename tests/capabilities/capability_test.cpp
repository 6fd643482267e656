// isolate::capability: objects handed across the boundary both ways, called
// through it, and released when the side that received them drops them or
// when the plugin goes, under every transport.
#include <isolate/isolate.hpp>

#include "objects.hpp"

#include <asio/use_future.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

using namespace objects_test;

namespace {

struct host_counter final : counter {
  explicit host_counter(int start = 0) : value_(start) {}
  int next() override { return ++value_; }
  int value() override { return value_; }
  void fail(const std::string& what) override { throw std::runtime_error(what); }
  void hang() override {}
  std::atomic<int> value_;
};

// Keeps what the plugin publishes, and calls it at once.
struct host_registry final : registry {
  int publish(isolate::capability<counter> c) override {
    const int first = c->next();
    std::lock_guard lock(mutex);
    published.push_back(std::move(c));
    return first;
  }
  std::mutex mutex;
  std::vector<isolate::capability<counter>> published;
};

template <class Policy>
auto load_factory(host_registry& registry, typename Policy::options options = {}) {
  isolate::host_services services;
  services.provide<objects_test::registry>(registry);
  return isolate::load<factory, Policy>(ISOLATE_TEST_OBJECTS_PLUGIN, options, services);
}

template <class Policy>
constexpr bool out_of_process = std::is_same_v<Policy, isolate::process>;

}  // namespace

#define ISOLATE_TEST_POLICIES isolate::in_process, isolate::thread, isolate::process

TEST_CASE_TEMPLATE("the host calls an object the plugin made, and dropping it destroys it in the plugin", Policy,
                   ISOLATE_TEST_POLICIES) {
  host_registry registry;
  auto plugin = load_factory<Policy>(registry);
  auto c = plugin->make_counter(41);
  REQUIRE(c);
  CHECK(c.is_remote() == out_of_process<Policy>);
  CHECK(c->next() == 42);
  CHECK(c->next() == 43);
  CHECK(c->value() == 43);
  auto copy = c;  // copies share the object
  CHECK(copy->next() == 44);
  CHECK(plugin->live_counters() == 1);
  c.reset();
  CHECK(plugin->live_counters() == 1);  // the copy still holds it
  copy.reset();
  CHECK(plugin->live_counters() == 0);

  SUBCASE("several at once, in a container") {
    auto many = plugin->make_counters(3);
    REQUIRE(many.size() == 3);
    CHECK(many[0]->next() == 1);
    CHECK(many[2]->next() == 201);
    CHECK(plugin->live_counters() == 3);
    many.pop_back();
    CHECK(plugin->live_counters() == 2);
    many.clear();
    CHECK(plugin->live_counters() == 0);
  }
}

TEST_CASE_TEMPLATE("the plugin calls an object the host hands it, and lets go of it when it drops it", Policy,
                   ISOLATE_TEST_POLICIES) {
  host_registry registry;
  auto plugin = load_factory<Policy>(registry);
  auto mine = std::make_shared<host_counter>(10);
  CHECK(plugin->drain(mine, 5) == 15);
  CHECK(mine->value() == 15);
  CHECK(mine.use_count() == 1);  // the plugin's proxy (or copy) is gone with the call

  plugin->keep(mine);
  CHECK(mine.use_count() == 2);  // held for the plugin: by its table, or by the plugin itself
  CHECK(plugin->next_of_kept() == 16);
  plugin->drop_kept();
  // Out of process the release travels ahead of drop_kept's answer.
  CHECK(mine.use_count() == 1);

  SUBCASE("an empty capability crosses as empty") {
    CHECK_FALSE(plugin->echo(nullptr));
  }
}

TEST_CASE_TEMPLATE("an object handed back still reaches the same object", Policy, ISOLATE_TEST_POLICIES) {
  host_registry registry;
  auto plugin = load_factory<Policy>(registry);
  auto mine = std::make_shared<host_counter>(0);
  auto back = plugin->echo(mine);
  REQUIRE(back);
  CHECK(back->next() == 1);
  CHECK(mine->value() == 1);
  // In one process it is the object itself; across, a proxy whose calls go round.
  CHECK((back.get() == mine.get()) == !out_of_process<Policy>);
  back.reset();
  CHECK(mine.use_count() == 1);
}

TEST_CASE_TEMPLATE("an object handed back and still held when the plugin is unloaded", Policy,
                   ISOLATE_TEST_POLICIES) {
  // Out of process the plugin re-exports its proxy of the host's object:
  // the worker must drop it while it can still tell the host.
  host_registry registry;
  auto mine = std::make_shared<host_counter>(0);
  isolate::capability<counter> back;
  {
    auto plugin = load_factory<Policy>(registry);
    back = plugin->echo(mine);
    CHECK(back->next() == 1);
  }
  CHECK(mine.use_count() == (out_of_process<Policy> ? 1 : 2));  // the plugin's worker held it until it ended
  back.reset();
  CHECK(mine.use_count() == 1);
}

TEST_CASE_TEMPLATE("what an object's method throws reaches its caller, either way", Policy, ISOLATE_TEST_POLICIES) {
  host_registry registry;
  auto plugin = load_factory<Policy>(registry);
  auto theirs = plugin->make_counter(0);
  CHECK_THROWS_WITH(theirs->fail("the plugin's object failed"), doctest::Contains("the plugin's object failed"));
  CHECK(theirs->next() == 1);  // and it serves on
  CHECK(plugin->failure_of(std::make_shared<host_counter>(0), "the host's object failed") ==
        "the host's object failed");
}

TEST_CASE("process: a call to a plugin's object that hangs times out, and the plugin's worker is replaced") {
  host_registry registry;
  isolate::process::options options;
  options.call_timeout = std::chrono::milliseconds(300);
  options.restart = isolate::restart_policy::crash(1);
  auto plugin = load_factory<isolate::process>(registry, options);
  auto stuck = plugin->make_counter(0);
  try {
    stuck->hang();
    FAIL("a hung call returned");
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::timeout);
  }
  CHECK(plugin->make_counter(1)->next() == 2);  // a fresh worker
  CHECK_THROWS_AS(stuck->next(), isolate::error);
}

TEST_CASE_TEMPLATE("a plugin hands the host an object through a host service, which calls it at once", Policy,
                   ISOLATE_TEST_POLICIES) {
  host_registry registry;
  auto plugin = load_factory<Policy>(registry);
  CHECK(plugin->publish_one(7) == 8);  // the host called the plugin's object while serving its call
  REQUIRE(registry.published.size() == 1);
  CHECK(registry.published.front()->next() == 9);
  CHECK(plugin->live_counters() == 1);
  registry.published.clear();
  CHECK(plugin->live_counters() == 0);
}

TEST_CASE_TEMPLATE("objects cross in asynchronous calls too", Policy, isolate::thread, isolate::process) {
  host_registry registry;
  auto plugin = load_factory<Policy>(registry);
  auto made = plugin.async(&factory::make_counter, 3, asio::use_future).get();
  CHECK(made->next() == 4);
  auto mine = std::make_shared<host_counter>(0);
  CHECK(plugin.async(&factory::drain, isolate::capability<counter>(mine), 2, asio::use_future).get() == 2);
  made.reset();
  CHECK(plugin->live_counters() == 0);
  CHECK(mine.use_count() == 1);
}

TEST_CASE_TEMPLATE("an object the plugin made, held by the host after the plugin is unloaded", Policy,
                   isolate::thread, isolate::process) {
  host_registry registry;
  isolate::capability<counter> kept;
  {
    auto plugin = load_factory<Policy>(registry);
    kept = plugin->make_counter(1);
    CHECK(kept->next() == 2);
  }
  if constexpr (out_of_process<Policy>) {
    // Its process is gone: a named error, never a hang.
    CHECK_THROWS_WITH_AS(kept->next(), doctest::Contains("unloaded"), isolate::error);
  } else {
    // In the host's process the object lives on, and its library with it.
    CHECK(kept->next() == 3);
  }
  kept.reset();
}

TEST_CASE("process: a crashed worker's objects fail with plugin_closed, and the host's objects it held are released") {
  host_registry registry;
  isolate::process::options options;
  options.restart = isolate::restart_policy::crash(1);
  auto plugin = load_factory<isolate::process>(registry, options);
  auto theirs = plugin->make_counter(0);
  CHECK(theirs->next() == 1);
  auto mine = std::make_shared<host_counter>(0);
  plugin->keep(mine);
  CHECK(mine.use_count() == 2);

  CHECK_THROWS_AS(plugin->crash(), isolate::error);
  // The next call waits for the restarted worker, which the death preceded.
  CHECK(plugin->live_counters() == 0);
  CHECK(mine.use_count() == 1);
  try {
    theirs->next();
    FAIL("a call to a dead worker's object succeeded");
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::plugin_closed);
    CHECK(std::string(e.what()).find("ask the plugin for a new one") != std::string::npos);
  }
  // A new object from the new worker works.
  auto fresh = plugin->make_counter(5);
  CHECK(fresh->next() == 6);
}

TEST_CASE("process: the host's objects held by the plugin are released when it is unloaded") {
  host_registry registry;
  auto mine = std::make_shared<host_counter>(0);
  {
    auto plugin = load_factory<isolate::process>(registry);
    plugin->keep(mine);
    CHECK(mine.use_count() == 2);
  }
  CHECK(mine.use_count() == 1);
}

TEST_CASE("a capability outside a call is refused with a clear error") {
  isolate::capability<counter> c = std::make_shared<host_counter>(0);
  isolate::wire::buffer out;
  isolate::wire::output_archive archive(out);
  CHECK_THROWS_WITH_AS(archive(c), doctest::Contains("can only cross a plugin boundary"), isolate::error);
}
