// What the host is told about the limits: limits_in_force() lists each one
// and how it holds; a limit the machine cannot enforce fails the load with
// limit_unenforceable, unless best_effort() is set, and then the report says
// what does not hold while the rest still does. A machine without user
// namespaces is simulated by a seccomp filter on the test host, in a child.
#include "isolate/limits.hpp"

#include "support.hpp"

#include "../support/failure.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <set>
#include <string>

using namespace limits_test;
using namespace std::chrono_literals;
using isolate_test::contains;
using isolate_test::failure_of;

namespace {

// limits_in_force() by limit.
std::map<std::string, isolate::limits::enforcement> by_limit(const isolate::limits::report& report) {
  std::map<std::string, isolate::limits::enforcement> limits;
  for (const auto& entry : report) {
    CHECK_MESSAGE(limits.count(entry.limit) == 0, "reported twice: " << entry.limit);
    limits[entry.limit] = entry;
  }
  return limits;
}

// Every entry holds, and exactly `expected` are listed.
void all_in_force(const isolate::limits::report& report, const std::set<std::string>& expected) {
  std::set<std::string> listed;
  for (const auto& entry : report) {
    CAPTURE(entry.limit);
    CAPTURE(entry.mechanism);
    CHECK(entry.in_force);
    CHECK(!entry.mechanism.empty());
    listed.insert(entry.limit);
  }
  CHECK(listed == expected);
}

const std::set<std::string> host_protection{"host processes", "host /proc", "user", "signals", "abstract sockets",
                                             "privileges"};

std::set<std::string> with(std::set<std::string> names, const std::set<std::string>& more) {
  names.insert(more.begin(), more.end());
  return names;
}

// The test host refuses user namespaces to itself and its children, as a
// machine with user.max_user_namespaces = 0 would (clone3 is refused with
// ENOSYS, so that glibc falls back to clone, whose flags seccomp can read).
bool refuse_user_namespaces(std::string& why) {
  scmp_filter_ctx filter = seccomp_init(SCMP_ACT_ALLOW);
  if (filter == nullptr) return why = "seccomp_init failed", false;
  const scmp_arg_cmp new_user{0, SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER};
  int rc = seccomp_rule_add_array(filter, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1, &new_user);
  if (rc == 0) rc = seccomp_rule_add_array(filter, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1, &new_user);
  if (rc == 0) rc = seccomp_rule_add(filter, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (rc == 0) rc = seccomp_load(filter);
  seccomp_release(filter);
  if (rc != 0) why = "cannot load the filter: " + std::string(std::strerror(-rc));
  return rc == 0;
}

// In a child without user namespaces.
void presets_fail_unenforceable() {
  for (const isolate::limits::policy& limits :
       {isolate::limits::policy(isolate::limits::standard()), isolate::limits::policy(isolate::limits::strict()),
        isolate::limits::policy(isolate::limits::maximum())}) {
    const auto started = std::chrono::steady_clock::now();
    const auto e = failure_of([&] { load_hostile(limits); });
    CHECK(e.code() == isolate::errc::limit_unenforceable);
    CHECK_MESSAGE(contains(e.what(), "user namespaces"), std::string(e.what()));
    CHECK(std::chrono::steady_clock::now() - started < 10s);
  }
}

// In a child without user namespaces.
void best_effort_keeps_the_rest() {
  REQUIRE(::setenv("ISOLATE_TEST_SECRET", "hunter2", 1) == 0);
  auto options = options_with(isolate::limits::strict().best_effort());
  options.restart = isolate::restart_policy::crash(1);
  auto p = load_hostile(options);
  auto limits = by_limit(p.transport().limits_in_force());
  for (const std::string missing : {"host processes", "host /proc", "user"}) {
    CAPTURE(missing);
    CHECK(!limits[missing].in_force);
  }
  CHECK(limits["processes"].in_force == (::geteuid() != 0));  // RLIMIT_NPROC does not bind a root worker
  for (const std::string holding : {"memory", "cpu", "filesystem", "file metadata", "network", "syscalls",
                                    "new processes", "privileges", "signals"}) {
    CAPTURE(holding);
    CAPTURE(limits[holding].mechanism);
    CHECK(limits[holding].in_force);
  }
  CHECK(contains(limits["network"].mechanism, "seccomp"));
  // Its pid is one of the host's now, yet the host is still out of reach.
  CHECK(p->own_pid() == p.transport().link().pid());
  CHECK(p->send_signal(::getpid(), SIGKILL) == EPERM);  // Landlock's signal scope
  CHECK(p->trace(::getpid()) == EPERM);                 // seccomp
  CHECK(p->status_line("CapEff:") == "CapEff:\t0000000000000000");
  CHECK(p->status_line("NoNewPrivs:") == "NoNewPrivs:\t1");
  CHECK(p->make_socket(AF_INET) == EACCES);  // seccomp instead of the namespace
  CHECK(p->open_path("/etc/passwd", O_RDONLY) == EACCES);
  CHECK(p->fork_bomb(10) == std::vector<int>{0, EAGAIN});
  // What needs no namespace holds as it would inside one.
  CHECK(p->environment("ISOLATE_TEST_SECRET") == "(unset)");
  CHECK(p->working_directory() == "/");
  CHECK(p->link_target("/proc/self/fd/0") == "/dev/null");
  CHECK(failure_of([&] { p->crash(); }).code() == isolate::errc::plugin_crashed);
  CHECK(p->add(1, 2) == 3);
  CHECK(p->environment("ISOLATE_TEST_SECRET") == "(unset)");
}

// In a child that is nobody and not dumpable.
void undumpable_host_is_told() {
  REQUIRE(::prctl(PR_GET_DUMPABLE) == 0);
  const auto started = std::chrono::steady_clock::now();
  const auto e = failure_of([&] { load_hostile(isolate::limits::strict()); });
  CHECK(e.code() == isolate::errc::limit_unenforceable);
  CHECK_MESSAGE(contains(e.what(), "not dumpable"), std::string(e.what()));
  CHECK(std::chrono::steady_clock::now() - started < 10s);  // it used to hang for good, in the launcher

  auto p = load_hostile(isolate::limits::strict().best_effort());
  auto limits = by_limit(p.transport().limits_in_force());
  CHECK(!limits["host processes"].in_force);
  CHECK(limits["filesystem"].in_force);
  CHECK(p->send_signal(::getpid(), SIGKILL) == EPERM);
  CHECK(p->trace(::getpid()) == EPERM);
  CHECK(p->add(2, 2) == 4);
}

}  // namespace

TEST_CASE("limits_in_force: every limit of each preset is listed, and holds on this machine" *
          doctest::test_suite(unprivileged_suite)) {
  const std::set<std::string> resources{"memory", "open files", "processes", "core dumps"};
  {
    auto p = load_hostile(isolate::limits::standard());
    all_in_force(p.transport().limits_in_force(), with(with(resources, host_protection), {"syscalls"}));
    auto limits = by_limit(p.transport().limits_in_force());
    CHECK(limits["memory"].mechanism.starts_with("RLIMIT_DATA 1024 MiB"));
    CHECK(limits["processes"].mechanism.starts_with("RLIMIT_NPROC 64"));
    CHECK_MESSAGE(limits["abstract sockets"].mechanism.starts_with("Landlock scope"),
                  limits["abstract sockets"].mechanism);  // no network namespace under standard
    // A deny-list names no pid: the host compiles it once for every worker of the plan.
    CHECK(limits["syscalls"].mechanism ==
          "seccomp deny-list (compiled by the host), each refusal reported to the host");
  }
  {
    auto p = load_hostile(isolate::limits::strict().memory_mb(300).cpu_seconds(7));
    all_in_force(p.transport().limits_in_force(),
                 with(with(resources, host_protection),
                      {"cpu", "file size", "network", "filesystem", "file metadata", "syscalls", "new processes"}));
    auto limits = by_limit(p.transport().limits_in_force());
    CHECK(limits["memory"].mechanism.starts_with("RLIMIT_DATA 300 MiB"));
    CHECK(limits["cpu"].mechanism == "RLIMIT_CPU 7 s");
    CHECK(contains(limits["network"].mechanism, "network namespace"));
    CHECK(contains(limits["filesystem"].mechanism, "Landlock"));
    CHECK(contains(limits["file metadata"].mechanism, "chmod"));
    CHECK(contains(limits["syscalls"].mechanism, "(compiled by the host)"));
  }
  {
    auto options = options_with(isolate::limits::maximum());
    options.restart = isolate::restart_policy::crash(1);
    auto p = load_hostile(options);
    const auto before = p.transport().limits_in_force();
    all_in_force(before, with(with(resources, host_protection), {"cpu", "file size", "network", "filesystem",
                                                                 "file metadata", "syscalls", "new processes"}));
    CHECK(by_limit(before)["syscalls"].mechanism == "seccomp allow-list, each refusal reported to the host");
    // A restarted worker reports again, the same.
    CHECK(failure_of([&] { p->crash(); }).code() == isolate::errc::plugin_crashed);
    CHECK(p->add(1, 1) == 2);
    const auto after = p.transport().limits_in_force();
    REQUIRE(after.size() == before.size());
    for (std::size_t i = 0; i < after.size(); ++i) {
      CHECK(after[i].limit == before[i].limit);
      CHECK(after[i].in_force == before[i].in_force);
    }
  }
  auto p = load_hostile(isolate::limits::minimal());
  CHECK(p.transport().limits_in_force().empty());  // nothing asked, nothing listed
}

TEST_CASE("best_effort: a read_only or writable path that does not exist is not a failure" *
          doctest::test_suite(unprivileged_suite)) {
  const temp_dir readable(0755);
  write_text(readable / "there", "here", 0644);
  auto p = load_hostile(isolate::limits::strict()
                            .read_only("/nonexistent/isolate-limits")
                            .writable("/nonexistent/isolate-limits-w")
                            .read_only(readable / "there"));
  CHECK(by_limit(p.transport().limits_in_force())["filesystem"].in_force);
  CHECK(p->read_file((readable / "there").string()) == "here");
  CHECK(p->open_path("/nonexistent/isolate-limits", O_RDONLY) == ENOENT);
}

TEST_CASE("without user namespaces: each protecting preset fails with limit_unenforceable, at once") {
  CHECK(passes_in_child(refuse_user_namespaces, presets_fail_unenforceable));
}

TEST_CASE("without user namespaces: best_effort loads, says what does not hold, and the rest holds") {
  CHECK(passes_in_child(refuse_user_namespaces, best_effort_keeps_the_rest));
}

TEST_CASE("undumpable host: a host that dropped root and is not dumpable gets a named error at once") {
  if (::geteuid() != 0) {
    MESSAGE("the host is not root: it cannot be a daemon that dropped root");
    return;
  }
  const plugin_copies copies;
  const auto as_undumpable_nobody = [&](std::string& why) { return copies.use(why) && become_nobody(false, why); };
  CHECK(passes_in_child(as_undumpable_nobody, undumpable_host_is_told));
}

TEST_CASE("unprivileged host: the cases above hold with the host as nobody") { run_unprivileged_suite(); }
