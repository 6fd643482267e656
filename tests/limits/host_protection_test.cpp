// "Protects the host" (limits.hpp), proved by a plugin that attacks: under
// standard and up it cannot signal, trace or read the host or another
// plugin's worker, sees none of their /proc, holds no capability, cannot
// gain any, runs as nobody outside (for a root host), and gets only the
// environment the policy gives it. Under minimal it is today's worker.
#include "isolate/limits.hpp"

#include "support.hpp"

#include "../support/failure.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

using namespace limits_test;
using namespace std::chrono_literals;
using isolate_test::failure_of;

namespace {

// Every preset that protects the host, by name.
std::vector<std::pair<std::string, isolate::limits::policy>> protecting_presets() {
  return {{"standard", isolate::limits::standard()},
          {"strict", isolate::limits::strict()},
          {"maximum", isolate::limits::maximum()}};
}

// What a refused call returns: `otherwise`, but under maximum seccomp's
// allow-list refuses it (EPERM) before the kernel looks any further.
int refusal(const std::string& preset, int otherwise) { return preset == "maximum" ? EPERM : otherwise; }

// What kill() of a process outside the worker's PID namespace returns: it
// does not exist there (maximum allows kill() of its own pid only).
int kill_refusal(const std::string& preset) { return refusal(preset, ESRCH); }

// The plugin crashes on purpose, the host gets plugin_crashed, and the
// restarted plugin computes.
void crashes_and_comes_back(hostile_plugin& p) {
  CHECK(failure_of([&] { p->crash(); }).code() == isolate::errc::plugin_crashed);
  CHECK(p->add(20, 22) == 42);
}

isolate::process::options restartable_bounded(const isolate::limits::policy& limits) {
  auto options = restartable(limits);
  options.call_timeout = 10s;  // a worker stopped by a signal that got through fails the call, not the run
  return options;
}

const std::string no_capabilities = "0000000000000000";

}  // namespace

TEST_CASE("protect_host: the host's pid cannot be signalled, traced, read or opened in /proc" *
          doctest::test_suite(unprivileged_suite)) {
  const int host = ::getpid();
  for (const auto& [name, limits] : protecting_presets()) {
    CAPTURE(name);
    auto p = load_hostile(restartable_bounded(limits));
    CHECK(p->own_pid() == 2);  // the worker proper, under PID 1 of its own namespace
    CHECK(p->send_signal(host, SIGKILL) == kill_refusal(name));
    CHECK(p->send_signal(host, SIGSTOP) == kill_refusal(name));
    CHECK(p->send_signal(host, 0) == kill_refusal(name));
    CHECK(p->trace(host) == EPERM);           // seccomp's deny-list, before any lookup
    CHECK(p->read_memory_of(host) == EPERM);  // the same
    const std::string proc = "/proc/" + std::to_string(host);
    CHECK(p->open_path(proc + "/mem", O_RDONLY) == ENOENT);  // a /proc of its own namespace
    CHECK(p->open_path(proc + "/fd/0", O_RDONLY) == ENOENT);
    CHECK(p->open_path(proc + "/environ", O_RDONLY) == ENOENT);
    // PID 1 of the namespace runs no plugin code, and is outside the plugin's Landlock domain.
    CHECK(p->send_signal(1, SIGKILL) == EPERM);
    CHECK(p->trace(1) == EPERM);
    CHECK(p->open_path("/proc/1/mem", O_RDONLY) == EACCES);
    CHECK(p->open_path("/proc/1/fd/4", O_WRONLY) == refusal(name, EACCES));  // its report to the host
    CHECK(p->send_signal(-1, SIGKILL) == kill_refusal(name));  // every process it may signal: none
    CHECK(p->add(1, 2) == 3);  // nothing above hurt the worker either
    crashes_and_comes_back(p);
  }
  CHECK(::getpid() == host);  // still here, and not stopped: this line ran
}

TEST_CASE("protect_host: another plugin's worker cannot be signalled, traced, read, or its shared memory opened" *
          doctest::test_suite(unprivileged_suite)) {
  for (const auto& [name, limits] : protecting_presets()) {
    CAPTURE(name);
    auto attacker = load_hostile(restartable_bounded(limits));
    auto victim = load_hostile(restartable_bounded(limits));
    const int victim_init = victim.transport().link().pid();
    const int victim_worker = worker_proper(victim);
    REQUIRE(victim_worker > 0);
    for (const int pid : {victim_init, victim_worker}) {
      CAPTURE(pid);
      CHECK(attacker->send_signal(pid, SIGSTOP) == kill_refusal(name));
      CHECK(attacker->send_signal(pid, SIGKILL) == kill_refusal(name));
      CHECK(attacker->trace(pid) == EPERM);
      CHECK(attacker->read_memory_of(pid) == EPERM);
      const std::string proc = "/proc/" + std::to_string(pid);
      // The rings are a memfd the victim holds: its fds and mapped files are out of sight.
      for (const std::string entry : {"/fd/3", "/fd/5", "/mem", "/map_files"}) {
        CAPTURE(entry);
        CHECK(attacker->open_path(proc + entry, O_RDONLY) == ENOENT);
        CHECK(attacker->open_path(proc + entry, O_RDWR) == refusal(name, ENOENT));
      }
    }
    CHECK(victim->add(2, 2) == 4);  // neither stopped nor killed
    CHECK(victim.transport().link().pid() == victim_init);
    CHECK(attacker->add(3, 3) == 6);
    crashes_and_comes_back(attacker);
    CHECK(victim->add(4, 4) == 8);  // the attacker's crash and restart did not touch it
  }
}

TEST_CASE("protect_host: no capabilities, none to be had, no_new_privs, and nobody outside" *
          doctest::test_suite(unprivileged_suite)) {
  for (const auto& [name, limits] : protecting_presets()) {
    CAPTURE(name);
    auto p = load_hostile(restartable_bounded(limits));
    CHECK(p->status_line("CapEff:") == "CapEff:\t" + no_capabilities);
    CHECK(p->status_line("CapPrm:") == "CapPrm:\t" + no_capabilities);
    CHECK(p->status_line("CapInh:") == "CapInh:\t" + no_capabilities);
    CHECK(p->status_line("CapBnd:") == "CapBnd:\t" + no_capabilities);
    CHECK(p->status_line("CapAmb:") == "CapAmb:\t" + no_capabilities);
    CHECK(p->status_line("NoNewPrivs:") == "NoNewPrivs:\t1");
    CHECK(p->status_line("Seccomp:") == "Seccomp:\t2");
    CHECK(p->raise_capabilities() == EPERM);
    CHECK(p->status_line("CapEff:") == "CapEff:\t" + no_capabilities);
    // The worker is uid 0 of its namespace only; whatever it does with that,
    // outside it stays who the host made it.
    const int init = p.transport().link().pid();
    const int worker = worker_proper(p);
    REQUIRE(worker > 0);
    (void)p->become_user(0);
    for (const int pid : {init, worker}) {
      CAPTURE(pid);
      CHECK(uid_in(host_status_line(pid, "Uid:")) == expected_worker_uid());
      CHECK(uid_in(host_status_line(pid, "Gid:")) == expected_worker_uid());
    }
    CHECK(host_status_line(worker, "CapEff:") == "CapEff:\t" + no_capabilities);
    // The user namespace maps one id: no other uid exists to become.
    CHECK(p->become_user(1) == refusal(name, EINVAL));
    crashes_and_comes_back(p);
  }
}

TEST_CASE("protect_host: the environment is the allow-list and the policy's entries; cwd is /; stdin is /dev/null" *
          doctest::test_suite(unprivileged_suite)) {
  REQUIRE(::setenv("ISOLATE_TEST_SECRET", "hunter2", 1) == 0);
  REQUIRE(::setenv("LANG", "C.UTF-8", 1) == 0);  // on the allow-list
  const std::string path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  {
    auto p = load_hostile(restartable_bounded(isolate::limits::standard().environment("ISOLATE_TEST_GIVEN=yes")));
    CHECK(p->environment("ISOLATE_TEST_SECRET") == "(unset)");
    CHECK(p->environment("HOME") == "(unset)");
    CHECK(p->environment("ISOLATE_TEST_GIVEN") == "yes");
    CHECK(p->environment("LANG") == "C.UTF-8");
    if (!path.empty()) CHECK(p->environment("PATH") == path);
    CHECK(p->working_directory() == "/");
    CHECK(p->link_target("/proc/self/fd/0") == "/dev/null");
    crashes_and_comes_back(p);
    // The restarted worker gets the same surroundings.
    CHECK(p->environment("ISOLATE_TEST_SECRET") == "(unset)");
    CHECK(p->environment("ISOLATE_TEST_GIVEN") == "yes");
  }
  const temp_dir place(0755);
  auto p = load_hostile(restartable_bounded(isolate::limits::strict().working_directory(place.path())));
  CHECK(p->working_directory() == place.path().string());
  CHECK(p->environment("ISOLATE_TEST_SECRET") == "(unset)");
  ::unsetenv("ISOLATE_TEST_SECRET");
}

TEST_CASE("protect_host: PID 1 is isolate-init where it is beside the worker, else the worker itself; both report "
          "the worker's end" * doctest::test_suite(unprivileged_suite)) {
  const auto argv0 = [](int pid) {
    const auto cmdline = first_line_of("/proc/" + std::to_string(pid) + "/cmdline");
    return cmdline.substr(0, cmdline.find('\0'));
  };
  const auto pss_kib = [](int pid) {
    for (std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup"); in;) {
      std::string key;
      long kib = 0;
      if (in >> key >> kib && key == "Pss:") return kib;
      in.ignore(1 << 20, '\n');
    }
    return -1L;
  };
  REQUIRE(fs::exists(worker_path().parent_path() / "isolate-init"));
  {
    auto p = load_hostile(restartable_bounded(isolate::limits::strict()));
    const int init = p.transport().link().pid();
    CHECK(argv0(init).ends_with("isolate-init"));
    CHECK(argv0(worker_proper(p)) == "isolate-worker");
    CHECK(p->own_pid() == 2);
    // The point of a program of its own: PID 1 holds no copy of the worker's pages.
    const long init_pss = pss_kib(init), worker_pss = pss_kib(worker_proper(p));
    MESSAGE("PSS: isolate-init " << init_pss << " KiB, the worker " << worker_pss << " KiB");
    if (init_pss >= 0 && worker_pss >= 0) CHECK(init_pss < worker_pss / 2);  // unreadable as nobody: not checked
    crashes_and_comes_back(p);
    CHECK(argv0(p.transport().link().pid()).ends_with("isolate-init"));  // the restarted one too
  }
  {
    // A worker alone in its directory (options.worker): it is its own PID 1.
    temp_dir alone;
    const auto worker = copy_worker_alone(alone);
    auto options = restartable_bounded(isolate::limits::strict());
    options.worker = worker;
    auto p = load_hostile(options);
    CHECK(argv0(p.transport().link().pid()) == worker.string());
    CHECK(argv0(worker_proper(p)) == worker.string());
    CHECK(p->own_pid() == 2);
    CHECK(p->add(1, 2) == 3);
    crashes_and_comes_back(p);
  }
}

TEST_CASE("minimal: today's worker, with the host's environment, pid namespace, user and rights") {
  REQUIRE(::setenv("ISOLATE_TEST_SECRET", "hunter2", 1) == 0);
  auto p = load_hostile(restartable_bounded(isolate::limits::minimal()));
  CHECK(p->environment("ISOLATE_TEST_SECRET") == "hunter2");
  CHECK(p->own_pid() == p.transport().link().pid());  // no PID namespace
  CHECK(p->send_signal(::getpid(), 0) == 0);           // the host is in sight
  CHECK(p->open_path("/proc/" + std::to_string(::getpid()) + "/status", O_RDONLY) == 0);
  CHECK(p->status_line("CapEff:") == host_status_line(::getpid(), "CapEff:"));
  CHECK(p->status_line("NoNewPrivs:") == host_status_line(::getpid(), "NoNewPrivs:"));
  CHECK(uid_in(p->status_line("Uid:")) == ::getuid());
  CHECK(p.transport().limits_in_force().empty());
  crashes_and_comes_back(p);
  ::unsetenv("ISOLATE_TEST_SECRET");
}

TEST_CASE("unprivileged host: the cases above hold with the host as nobody") { run_unprivileged_suite(); }
