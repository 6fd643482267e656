// Two plugins built against two incompatible builds of one library
// (libversioned 1.0 and 1.1, one soname, same symbols, other behaviour).
// In one process the dynamic loader keeps one copy per soname, so the plugin
// loaded second runs against the first one's build: these tests prove that
// the clash is real under in_process and thread (and would notice if it ever
// went away), and that under isolate::process each plugin gets its own.
#include <isolate/plugin_library.hpp>

#include <isolate/transport/in_process.hpp>
#include <isolate/transport/process.hpp>
#include <isolate/transport/thread.hpp>

#include "formatter.hpp"

#include <dlfcn.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

using conflicting_deps_test::formatter;

namespace {

namespace fs = std::filesystem;

const fs::path v1_plugin = ISOLATE_TEST_FORMATTER_V1_PLUGIN;
const fs::path v2_plugin = ISOLATE_TEST_FORMATTER_V2_PLUGIN;
const fs::path v2_parse_plugin = ISOLATE_TEST_FORMATTER_V2_PARSE_PLUGIN;

// The directories the two builds of libversioned.so.1 live in.
fs::path v1_dir() { return fs::canonical(ISOLATE_TEST_VERSIONED_V1_DIR); }
fs::path v2_dir() { return fs::canonical(ISOLATE_TEST_VERSIONED_V2_DIR); }

// Whether this process has a libversioned loaded; the loader knows it by its
// soname, whichever directory it came from. Every test starts and ends without
// one, so no test sees what another one loaded.
bool host_has_libversioned() {
  void* handle = ::dlopen("libversioned.so.1", RTLD_LAZY | RTLD_NOLOAD);
  if (handle == nullptr) return false;
  ::dlclose(handle);
  return true;
}

fs::path directory_of(const std::string& file) {
  REQUIRE_FALSE(file.empty());
  return fs::canonical(fs::path(file).parent_path());
}

// What libversioned at `level` writes for 42.
std::string forty_two_at(int level) { return level == 1 ? "42" : "0x2a"; }

// The plugin runs against the build of libversioned it was built against.
template <class Plugin>
void check_runs_against_own_build(Plugin& plugin, int level) {
  CHECK(plugin->built_against() == level);
  CHECK(plugin->api_level() == level);
  CHECK(plugin->format(42) == forty_two_at(level));
  CHECK(plugin->round_trip(42) == 42);
  CHECK(directory_of(plugin->library_file()) == (level == 1 ? v1_dir() : v2_dir()));
}

// The plugin, built against `built`, runs against the build at `bound` instead.
template <class Plugin>
void check_runs_against_other_build(Plugin& plugin, int built, int bound) {
  CHECK(plugin->built_against() == built);
  CHECK(plugin->api_level() == bound);
  CHECK(plugin->format(42) == forty_two_at(bound));
  CHECK(directory_of(plugin->library_file()) == (bound == 1 ? v1_dir() : v2_dir()));
}

template <class Policy>
isolate::plugin<formatter, Policy> load(const fs::path& library) {
  return isolate::load<formatter, Policy>(library);
}

}  // namespace

// The policies whose plugins live in the host's address space.
#define ISOLATE_TEST_IN_HOST_POLICIES isolate::in_process, isolate::thread

TEST_CASE_TEMPLATE("alone, each plugin runs against the libversioned it was built against", Policy,
                   ISOLATE_TEST_IN_HOST_POLICIES, isolate::process) {
  REQUIRE_FALSE(host_has_libversioned());
  constexpr bool in_host = !std::is_same_v<Policy, isolate::process>;
  {
    auto plugin = load<Policy>(v1_plugin);
    check_runs_against_own_build(plugin, 1);
    CHECK(host_has_libversioned() == in_host);
  }
  // Unloaded with its plugin, so the next one starts from a clean loader.
  CHECK_FALSE(host_has_libversioned());
  {
    auto plugin = load<Policy>(v2_plugin);
    check_runs_against_own_build(plugin, 2);
  }
  {
    auto plugin = load<Policy>(v2_parse_plugin);
    check_runs_against_own_build(plugin, 2);
  }
  CHECK_FALSE(host_has_libversioned());
}

TEST_CASE_TEMPLATE("in one process, the plugin loaded second silently runs against the first one's libversioned",
                   Policy, ISOLATE_TEST_IN_HOST_POLICIES) {
  REQUIRE_FALSE(host_has_libversioned());
  SUBCASE("1.0 first: the plugin built against 1.1 gets 1.0's behaviour") {
    auto first = load<Policy>(v1_plugin);
    auto second = load<Policy>(v2_plugin);
    check_runs_against_own_build(first, 1);
    check_runs_against_other_build(second, 2, 1);
  }
  SUBCASE("1.1 first: the plugin built against 1.0 gets 1.1's behaviour") {
    auto first = load<Policy>(v2_plugin);
    auto second = load<Policy>(v1_plugin);
    check_runs_against_own_build(first, 2);
    check_runs_against_other_build(second, 1, 2);
  }
  CHECK_FALSE(host_has_libversioned());
}

TEST_CASE_TEMPLATE("in one process, a plugin that needs a function only 1.1 has fails to load after 1.0", Policy,
                   ISOLATE_TEST_IN_HOST_POLICIES) {
  REQUIRE_FALSE(host_has_libversioned());
  {
    auto first = load<Policy>(v1_plugin);
    bool refused = false;
    try {
      auto second = load<Policy>(v2_parse_plugin);
    } catch (const isolate::error& e) {
      refused = true;
      CHECK(e.code() == isolate::errc::load_failed);
      const std::string what = e.what();
      INFO(what);
      CHECK(what.find("undefined symbol") != std::string::npos);
      CHECK(what.find("versioned5parse") != std::string::npos);
    }
    CHECK(refused);
    // The failed load leaves the first plugin as it was.
    check_runs_against_own_build(first, 1);
  }
  CHECK_FALSE(host_has_libversioned());
}

TEST_CASE("under isolate::process every plugin runs against its own libversioned, all at the same time") {
  REQUIRE_FALSE(host_has_libversioned());
  auto v1 = load<isolate::process>(v1_plugin);
  auto v2 = load<isolate::process>(v2_plugin);
  auto v2_parse = load<isolate::process>(v2_parse_plugin);
  check_runs_against_own_build(v1, 1);
  check_runs_against_own_build(v2, 2);
  check_runs_against_own_build(v2_parse, 2);
  // Three workers, none of them the host, and the host never loaded the library.
  const std::set<int> pids{v1->pid(), v2->pid(), v2_parse->pid()};
  CHECK(pids.size() == 3);
  CHECK(pids.count(static_cast<int>(::getpid())) == 0);
  CHECK_FALSE(host_has_libversioned());

  // Called at once from three threads, each still answers with its own build.
  const auto hammer = [](isolate::plugin<formatter, isolate::process>& plugin, int level) {
    int wrong = 0;
    for (int i = 0; i < 200; ++i) {
      if (plugin->format(42) != forty_two_at(level) || plugin->round_trip(i) != i) ++wrong;
    }
    return wrong;
  };
  auto a = std::async(std::launch::async, hammer, std::ref(v1), 1);
  auto b = std::async(std::launch::async, hammer, std::ref(v2), 2);
  auto c = std::async(std::launch::async, hammer, std::ref(v2_parse), 2);
  CHECK(a.get() == 0);
  CHECK(b.get() == 0);
  CHECK(c.get() == 0);
}

TEST_CASE("isolating one of the two is enough: 1.0 in the host, 1.1 in a worker") {
  REQUIRE_FALSE(host_has_libversioned());
  {
    auto in_host = load<isolate::in_process>(v1_plugin);
    auto in_worker = load<isolate::process>(v2_parse_plugin);
    check_runs_against_own_build(in_host, 1);
    check_runs_against_own_build(in_worker, 2);
    CHECK(in_host->pid() == static_cast<int>(::getpid()));
    CHECK(in_worker->pid() != static_cast<int>(::getpid()));
  }
  CHECK_FALSE(host_has_libversioned());
}
