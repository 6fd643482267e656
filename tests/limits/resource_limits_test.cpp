// Resources and processes, proved by a plugin that overspends: past its
// memory or CPU cap it is stopped and the host hears limit_exceeded naming
// the limit; a fork bomb meets the process cap (standard) or no fork at all
// (strict); a daemon it double-forks out of its session dies with the worker,
// whether the worker is unloaded or crashes. The plugin comes back each time.
#include "isolate/limits.hpp"

#include "support.hpp"

#include "../support/failure.hpp"
#include "../support/sanitizers.hpp"

#include <doctest/doctest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

using namespace limits_test;
using namespace std::chrono_literals;
using isolate_test::contains;
using isolate_test::failure_of;

namespace {

// A comm name (at most 15 characters) no other test run uses at once.
std::string daemon_name() { return "isod-" + std::to_string(::getpid()); }

}  // namespace

TEST_CASE("memory: past memory_mb the plugin is stopped with limit_exceeded naming memory, then restarted" *
          doctest::test_suite(unprivileged_suite)) {
  // Under standard (namespaces, maybe a cgroup) and under minimal (no
  // sandbox: RLIMIT_DATA alone, set on the worker as it starts).
  for (const isolate::limits::policy& limits :
       {isolate::limits::policy(isolate::limits::standard().memory_mb(64)),
        isolate::limits::policy(isolate::limits::minimal().memory_mb(64))}) {
    CAPTURE(limits.protect_host);
    // Under ASan a minimal worker of a nobody host dies inside the
    // sanitizer's own out-of-memory report ("Failed to mmap", then a
    // signal: "the plugin crashed") instead of with the memory status;
    // as root, and sandboxed, the report has its room. The release suite
    // runs this case both ways.
    if (isolate_test::under_asan && !limits.protect_host && ::geteuid() != 0) continue;
    auto p = load_hostile(restartable(limits));
    CHECK(p->allocate_mib(16) == 16);  // within the cap
    const auto e = failure_of([&] { p->allocate_mib(256); });
    CHECK(e.code() == isolate::errc::limit_exceeded);
    CHECK_MESSAGE(contains(e.what(), "memory limit of 64 MiB"), std::string(e.what()));
    CHECK(p->add(1, 2) == 3);
    CHECK(p.transport().link().restarts() == 1);
    CHECK(p->allocate_mib(16) == 16);  // the new worker has the whole cap again
  }
}

TEST_CASE("memory: shared memory counts against memory_mb where the worker has a memory cgroup; else the report "
          "says it does not" * doctest::test_suite(unprivileged_suite)) {
  auto options = options_with(isolate::limits::standard().memory_mb(64));
  options.restart = isolate::restart_policy::crash(3);  // one for each attack
  std::optional<hostile_plugin> loaded(load_hostile(options));
  auto& p = *loaded;
  const auto memory = limit_named(p.transport().limits_in_force(), "memory");
  REQUIRE(memory);
  CHECK(memory->in_force);
  MESSAGE("memory: " << memory->mechanism);
  if (!contains(memory->mechanism, "and cgroup")) {
    // No memory cgroup for this host (an unprivileged one, without a delegated hierarchy).
    CHECK(contains(memory->mechanism, "private memory only, shared memory is not counted"));
    return;
  }
  CHECK(contains(memory->mechanism, "(all memory, shared too)"));
  CHECK(memory_groups_of_this_host() == 1);
  using bomb = std::uint64_t (hostile::*)(std::uint64_t);
  for (const auto& [name, attack] : {std::pair<const char*, bomb>{"MAP_SHARED|MAP_ANONYMOUS", &hostile::allocate_shared_mib},
                                     {"memfd", &hostile::allocate_memfd_mib},
                                     {"SysV shm", &hostile::allocate_sysv_mib}}) {
    INFO("attack: " << std::string(name));
    CHECK((*p.*attack)(16) == 16);  // within the cap
    const auto e = failure_of([&, attack = attack] { (*p.*attack)(2048); });
    CHECK(e.code() == isolate::errc::limit_exceeded);
    CHECK_MESSAGE(contains(e.what(), "memory limit of 64 MiB (cgroup"), std::string(e.what()));
    CHECK(p->add(1, 2) == 3);  // restarted
    CHECK(memory_groups_of_this_host() == 1);  // the dead worker's group is gone, the new one's is there
  }
  loaded.reset();
  CHECK(memory_groups_of_this_host() == 0);
}

TEST_CASE("memory: a memory cgroup named in the policy that cannot be used fails the load, unless best effort" *
          doctest::test_suite(unprivileged_suite)) {
  const temp_dir not_a_group;
  const auto e = failure_of([&] { load_hostile(isolate::limits::standard().memory_mb(64).memory_cgroup(not_a_group.path())); });
  CHECK(e.code() == isolate::errc::limit_unenforceable);
  CHECK_MESSAGE(contains(e.what(), "is not a cgroup v2 directory nor a cgroup v1 memory group"), std::string(e.what()));
  auto p = load_hostile(isolate::limits::standard().memory_mb(64).memory_cgroup(not_a_group.path()).best_effort());
  CHECK(p->add(1, 2) == 3);
  const auto memory = limit_named(p.transport().limits_in_force(), "memory");
  REQUIRE(memory);
  CHECK(contains(memory->mechanism, "private memory only"));
  CHECK(contains(memory->mechanism, "not a cgroup"));
}

TEST_CASE("cpu: past cpu_seconds the plugin is stopped with limit_exceeded naming CPU, then restarted" *
          doctest::test_suite(unprivileged_suite)) {
  auto options = restartable(isolate::limits::standard().cpu_seconds(1));
  options.call_timeout = 60s;  // far longer than the CPU limit: the limit, not the timeout, ends the call
  auto p = load_hostile(options);
  const auto started = std::chrono::steady_clock::now();
  const auto e = failure_of([&] { p->burn_cpu(false); });
  CHECK(e.code() == isolate::errc::limit_exceeded);
  CHECK_MESSAGE(contains(e.what(), "CPU time limit of 1 s"), std::string(e.what()));
  CHECK(std::chrono::steady_clock::now() - started < 30s);
  CHECK(p->add(2, 3) == 5);
}

TEST_CASE("cpu: a plugin that ignores SIGXCPU is killed a second later, still with limit_exceeded naming CPU" *
          doctest::test_suite(unprivileged_suite)) {
  auto options = restartable(isolate::limits::standard().cpu_seconds(1));
  options.call_timeout = 60s;
  auto p = load_hostile(options);
  const auto e = failure_of([&] { p->burn_cpu(true); });
  CHECK(e.code() == isolate::errc::limit_exceeded);
  CHECK_MESSAGE(contains(e.what(), "CPU time limit of 1 s"), std::string(e.what()));
  CHECK_MESSAGE(contains(e.what(), "SIGKILL"), std::string(e.what()));  // the hard limit's signal, not SIGXCPU
  CHECK(p->add(2, 3) == 5);
}

TEST_CASE("open files: descriptors stop at open_files with EMFILE; the worker goes on" *
          doctest::test_suite(unprivileged_suite)) {
  constexpr int cap = 32;
  auto p = load_hostile(restartable(isolate::limits::strict().open_files(cap)));
  const auto opened = p->open_many(1000);
  REQUIRE(opened.size() == 2);
  CHECK(opened[0] > 0);
  CHECK(opened[0] < cap);  // the worker's own descriptors (channel, control socket, library) count too
  CHECK(opened[1] == EMFILE);
  CHECK(p->add(1, 2) == 3);
  CHECK(p->open_many(1000) == opened);  // given back: the same room again
}

TEST_CASE("rlimits: the plugin cannot raise any limit it was given" * doctest::test_suite(unprivileged_suite)) {
  auto p = load_hostile(restartable(isolate::limits::strict().cpu_seconds(5)));
  for (const int resource : {RLIMIT_DATA, RLIMIT_CPU, RLIMIT_NOFILE, RLIMIT_FSIZE, RLIMIT_NPROC, RLIMIT_CORE}) {
    CAPTURE(resource);
    CHECK(p->raise_limit(resource) == EPERM);  // no CAP_SYS_RESOURCE, and each hard limit is the cap
  }
  CHECK(p->add(1, 1) == 2);
}

TEST_CASE("processes: a fork bomb under standard stops at the process cap; the host goes on" *
          doctest::test_suite(unprivileged_suite)) {
  constexpr int cap = 16;
  auto p = load_hostile(restartable(isolate::limits::standard().processes(cap)));
  for (int round = 0; round < 2; ++round) {  // the children of the first round are gone: the cap is whole again
    CAPTURE(round);
    const auto bomb = p->fork_bomb(1000);
    REQUIRE(bomb.size() == 2);
    MESSAGE("forks that succeeded under a cap of " << cap << " threads and processes: " << bomb[0]);
    CHECK(bomb[0] > 0);      // standard allows new processes...
    CHECK(bomb[0] < cap);    // ...up to the cap, which the worker's own threads share
    CHECK(bomb[1] == EAGAIN);
  }
  CHECK(p->add(3, 4) == 7);
  // The host can still start processes: another worker.
  auto other = load_hostile(restartable(isolate::limits::standard()));
  CHECK(other->add(1, 1) == 2);
}

TEST_CASE("processes: under strict no fork succeeds at all, and no daemon can start" *
          doctest::test_suite(unprivileged_suite)) {
  auto p = load_hostile(restartable(isolate::limits::strict()));
  CHECK(p->fork_bomb(1000) == std::vector<int>{0, EAGAIN});
  CHECK(p->start_daemon(daemon_name()) == -EAGAIN);
  CHECK(pids_named(daemon_name()).empty());
  CHECK(p->add(5, 6) == 11);
}

TEST_CASE("processes: a setsid double-forked daemon dies when the plugin is unloaded" *
          doctest::test_suite(unprivileged_suite)) {
  const auto name = daemon_name();
  std::optional<hostile_plugin> p(load_hostile(restartable(isolate::limits::standard())));
  const int inside = (*p)->start_daemon(name);  // returns once the daemon has named itself
  REQUIRE(inside > 2);
  const auto found = pids_named(name);
  REQUIRE(found.size() == 1);
  const int daemon = found.front();
  // The host sees it by its own pid; the worker's namespace numbers it `inside`.
  const auto nspid = host_status_line(daemon, "NSpid:");
  CHECK_MESSAGE(nspid.ends_with("\t" + std::to_string(inside)), nspid);
  CHECK(uid_in(host_status_line(daemon, "Uid:")) == expected_worker_uid());
  const pid_watch watch(daemon);
  REQUIRE(watch.watching());
  CHECK(!watch.dies_within(0ms));  // alive while the plugin is loaded
  p.reset();
  CHECK(watch.dies_within(10s));
  CHECK(pids_named(name).empty());
}

TEST_CASE("processes: a setsid double-forked daemon dies when the worker crashes; the plugin comes back" *
          doctest::test_suite(unprivileged_suite)) {
  const auto name = daemon_name();
  auto p = load_hostile(restartable(isolate::limits::standard()));
  REQUIRE(p->start_daemon(name) > 2);
  const auto found = pids_named(name);
  REQUIRE(found.size() == 1);
  const pid_watch watch(found.front());
  REQUIRE(watch.watching());
  CHECK(failure_of([&] { p->crash(); }).code() == isolate::errc::plugin_crashed);
  CHECK(watch.dies_within(10s));
  CHECK(p->add(6, 7) == 13);
  CHECK(pids_named(name).empty());
}

TEST_CASE("unprivileged host: the cases above hold with the host as nobody") { run_unprivileged_suite(); }
