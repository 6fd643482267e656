// Lifecycle hooks: the plugin's (its constructor reads the configuration and
// may refuse; its on_stop still calls the host) under every transport, and
// the host's (manager_hooks: before and after load, after a crash and a restart).
#include <isolate/isolate.hpp>
#include <isolate/manager.hpp>

#include "lifecycle.hpp"

#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

using namespace lifecycle_test;
using namespace std::chrono_literals;

namespace {

struct host_journal final : journal {
  void write(const std::string& line) override {
    {
      std::lock_guard lock(mutex);
      lines.push_back(line);
    }
    changed.notify_all();
  }
  std::vector<std::string> read() {
    std::lock_guard lock(mutex);
    return lines;
  }
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> lines;
};

template <class Policy>
auto load_greeter(host_journal& journal, std::string configuration, typename Policy::options options = {}) {
  isolate::host_services services;
  services.provide<lifecycle_test::journal>(journal).configure(std::move(configuration));
  return isolate::load<greeter, Policy>(ISOLATE_TEST_LIFECYCLE_PLUGIN, options, services);
}

}  // namespace

#define ISOLATE_TEST_POLICIES isolate::in_process, isolate::thread, isolate::process

TEST_CASE_TEMPLATE("a plugin reads its configuration as it loads, and its on_stop still reaches the host", Policy,
                   ISOLATE_TEST_POLICIES) {
  host_journal journal;
  {
    auto plugin = load_greeter<Policy>(journal, "greeting=bonjour");
    CHECK(plugin->greet("Ada") == "bonjour, Ada");
    CHECK(plugin->configuration() == "greeting=bonjour");
    CHECK(journal.read() == std::vector<std::string>{"loaded with 'greeting=bonjour'"});
  }
  // The unload ran on_stop, whose calls to the host were answered, before it returned.
  CHECK(journal.read() == std::vector<std::string>{"loaded with 'greeting=bonjour'", "stopping", "stopped"});

  // No configuration: an empty one.
  {
    auto plugin = load_greeter<Policy>(journal, "");
    CHECK(plugin->configuration().empty());
    CHECK(plugin->greet("Ada") == "hello, Ada");
  }
}

TEST_CASE_TEMPLATE("a plugin refuses to start, in its constructor or its on_load: load_refused and its reason",
                   Policy, ISOLATE_TEST_POLICIES) {
  host_journal journal;
  auto refusal = [&](const std::string& configuration) -> std::string {
    try {
      auto plugin = load_greeter<Policy>(journal, configuration);
    } catch (const isolate::error& e) {
      CHECK(e.code() == isolate::errc::load_refused);
      CHECK(std::string(e.what()).find("refused to start") != std::string::npos);
      return e.what();
    }
    FAIL("the load should have been refused");
    return {};
  };
  CHECK(refusal("refuse-early").find("the configuration says 'refuse-early'") != std::string::npos);
  CHECK(journal.read().empty());  // the constructor refused: on_load never ran
  CHECK(refusal("refuse-late").find("on_load found 'refuse-late'") != std::string::npos);
  // on_load reached the host before it refused; a plugin that never started is not stopped.
  CHECK(journal.read() == std::vector<std::string>{"loaded with 'refuse-late'"});
}

TEST_CASE("a process plugin's on_stop past its deadline: the worker is killed and the unload goes on") {
  host_journal journal;
  isolate::process::options options;
  options.stop_timeout = 200ms;
  pid_t worker = 0;
  {
    auto plugin = load_greeter<isolate::process>(journal, "hang", options);
    worker = plugin.transport().pid();
    REQUIRE(worker > 0);
  }
  // on_stop began (its first call reached the host) and never finished.
  CHECK(journal.read() == std::vector<std::string>{"loaded with 'hang'", "stopping"});
  CHECK(::kill(worker, 0) == -1);  // gone and reaped
}

TEST_CASE("a process plugin whose destructor never returns: the unload kills the worker and goes on") {
  host_journal journal;
  pid_t worker = 0;
  std::chrono::steady_clock::time_point unloading;
  {
    auto plugin = load_greeter<isolate::process>(journal, "endless-destructor");
    worker = plugin.transport().pid();
    REQUIRE(worker > 0);
    CHECK(plugin->greet("you") == "hello, you");
    unloading = std::chrono::steady_clock::now();
  }
  // on_stop finished, then the destructor never returned: the host waited
  // the stop's grace (2 s; a plugin without the endless destructor unloads
  // in milliseconds), killed the worker and reaped it.
  CHECK(journal.read() == std::vector<std::string>{"loaded with 'endless-destructor'", "stopping", "stopped"});
  CHECK(std::chrono::steady_clock::now() - unloading >= 1900ms);
  CHECK(::kill(worker, 0) == -1);  // gone and reaped
}

TEST_CASE("a process plugin's configuration has a size limit, with a clear error") {
  host_journal journal;
  try {
    auto plugin = load_greeter<isolate::process>(journal, std::string(600 * 1024, 'x'));
    FAIL("the load should have failed");
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::message_too_large);
    CHECK(std::string(e.what()).find("configuration") != std::string::npos);
  }
}

TEST_CASE("the host's hooks: before and after load at every level, after a crash and a restart of a process plugin") {
  host_journal journal;
  isolate::host_services services;
  services.provide<lifecycle_test::journal>(journal);

  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> seen;
  auto note = [&](std::string what) {
    {
      std::lock_guard lock(mutex);
      seen.push_back(std::move(what));
    }
    changed.notify_all();
  };
  isolate::manager_hooks hooks;
  hooks.before_load = [&](const isolate::plugin_info& p) {
    if (p.id == "vetoed") throw isolate::error(isolate::errc::load_refused, "the host's policy refuses 'vetoed'");
    note("before " + p.id + " " + isolate::to_string(p.level));
  };
  hooks.after_load = [&](const isolate::plugin_info& p) { note("after " + p.id); };
  hooks.after_crash = [&](const isolate::plugin_info& p, const isolate::violation& v) {
    note("crashed " + p.id + (v.kind == isolate::violation_kind::crash ? " (crash)" : " (other)"));
  };
  hooks.after_restart = [&](const isolate::plugin_info& p, const isolate::recovery& r) {
    note("restarted " + p.id + (r.action == isolate::recovery_action::restart ? " (restart)" : " (other)"));
  };
  auto wait_for = [&](const std::string& what) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 20s, [&] { return std::find(seen.begin(), seen.end(), what) != seen.end(); });
  };

  isolate::manager plugins(hooks);
  {
    auto a = plugins.load<greeter>("a", ISOLATE_TEST_LIFECYCLE_PLUGIN, isolate::level::parse("in_process"), services);
    auto b = plugins.load<greeter>("b", ISOLATE_TEST_LIFECYCLE_PLUGIN, isolate::level::parse("thread"), services);
    auto c = plugins.load<greeter>("c", ISOLATE_TEST_LIFECYCLE_PLUGIN, isolate::level::parse("process"), services);
    std::lock_guard lock(mutex);
    CHECK(seen == std::vector<std::string>{"before a in_process", "after a", "before b thread", "after b",
                                           "before c process:minimal", "after c"});
  }

  // before_load refuses: the load throws what it threw, and nothing is loaded under the id.
  try {
    plugins.load<greeter>("vetoed", ISOLATE_TEST_LIFECYCLE_PLUGIN, isolate::level::parse("process"), services);
    FAIL("the host's hook should have refused the load");
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::load_refused);
    CHECK(std::string(e.what()).find("the host's policy refuses 'vetoed'") != std::string::npos);
  }
  CHECK_FALSE(plugins.is_loaded("vetoed"));

  // A process plugin killed from outside: after_crash; restarted by the host: after_restart.
  auto c = plugins.get<greeter>("c");
  const pid_t worker = c.as<isolate::process>()->transport().pid();
  REQUIRE(worker > 0);
  REQUIRE(::kill(worker, SIGKILL) == 0);
  CHECK(wait_for("crashed c (crash)"));
  plugins.restart("c");
  CHECK(wait_for("restarted c (restart)"));
  CHECK(c->greet("Ada") == "hello, Ada");

  // The plugin's own hook ran for each unload, under every level.
  plugins.shutdown();
  c = {};
  const auto lines = journal.read();
  CHECK(std::count(lines.begin(), lines.end(), "stopped") == 3);  // a, b, and c's restarted worker
}
