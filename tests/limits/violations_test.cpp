// A refused system call is a violation the host records even though the
// plugin survives it: the hostile plugin tries the network, ptrace, a new
// process and a file outside its paths; the host answers each refusal
// (seccomp user notification), and records it with the call and what it
// reached for.
#include "isolate/telemetry.hpp"

#include "support.hpp"

#include "../support/failure.hpp"
#include "../support/sanitizers.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

using namespace limits_test;
using namespace std::chrono_literals;
using isolate_test::contains;

namespace {

// The violations the host's callback heard, waited for with a bound (the
// host records a refusal just after answering it).
class violations_heard {
 public:
  explicit violations_heard(isolate::process::options& options) {
    options.supervision.on_violation = [this](const isolate::violation& v) {
      {
        std::lock_guard lock(mutex_);
        heard_.push_back(v);
      }
      changed_.notify_all();
    };
  }
  std::vector<isolate::violation> wait_for(std::size_t count) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, 10s, [&] { return heard_.size() >= count; });
    return heard_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<isolate::violation> heard_;
};

bool refusals_reported(hostile_plugin& p) {
  for (const auto& e : p.transport().limits_in_force()) {
    if (e.limit == "syscalls") return contains(e.mechanism, "each refusal reported to the host");
  }
  return false;
}

// What a sampled limit gives (the worker looks once a second: the host
// hears within about that): one resource violation whose details say
// `what` and `why`, and the plugin runs on.
void check_one_resource_violation(violations_heard& heard, const std::string& what, const std::string& why) {
  const auto v = heard.wait_for(1);
  REQUIRE(v.size() == 1);
  CHECK(v[0].kind == isolate::violation_kind::resource);
  CHECK_MESSAGE(contains(v[0].details, what), v[0].details);
  CHECK_MESSAGE(contains(v[0].details, why), v[0].details);
  CHECK(v[0].action == "recorded; the plugin runs on");
}

}  // namespace

TEST_CASE("violations: a refused socket() is a network violation naming the family; the plugin goes on" *
          doctest::test_suite(unprivileged_suite)) {
  auto options = options_with(isolate::limits::strict().network(isolate::limits::network_isolation::seccomp_only));
  violations_heard heard(options);
  auto p = load_hostile(options);
  REQUIRE(refusals_reported(p));
  CHECK(p->make_socket(AF_INET6) == EACCES);
  CHECK(p->make_socket(AF_UNIX) == EACCES);
  const auto v = heard.wait_for(2);
  REQUIRE(v.size() == 2);
  CHECK(v[0].kind == isolate::violation_kind::network);
  CHECK_MESSAGE(v[0].details == "socket(AF_INET6 SOCK_STREAM|SOCK_CLOEXEC)", v[0].details);
  CHECK(v[0].action == "refused (EACCES)");
  CHECK(v[1].kind == isolate::violation_kind::network);
  CHECK(v[1].details.starts_with("socket(AF_UNIX"));
  CHECK(p->add(1, 2) == 3);
  CHECK(p.transport().violations().size() == 2);
}

TEST_CASE("violations: a plugin that holds every descriptor open_files allows is a resource violation; it goes on" *
          doctest::test_suite(unprivileged_suite)) {
  // Under ASan+UBSan the worker's sanitizer runtime needs spare descriptors
  // (UBSan's vptr check tests memory through a pipe): with none left it
  // reports a false error and the worker dies. The release suite runs this.
  if (isolate_test::under_asan) return;
  constexpr int cap = 32;
  auto options = options_with(isolate::limits::strict().open_files(cap));
  violations_heard heard(options);
  auto p = load_hostile(options);
  const int held = p->hold_open_files(true);
  CHECK(held > 0);
  CHECK(held < cap);  // the worker's own descriptors count too
  check_one_resource_violation(heard, "all 32 descriptors of its open_files limit in use", "EMFILE");
  CHECK(p->hold_open_files(false) == held);
  CHECK(p->add(1, 2) == 3);
  // Recorded once for the time it stayed full, not once a second.
  CHECK(p.transport().violations().size() == 1);
}

TEST_CASE("violations: a plugin whose threads fill its processes limit is a resource violation; it goes on" *
          doctest::test_suite(unprivileged_suite)) {
  // RLIMIT_NPROC counts the processes and threads of the worker's user
  // namespace: isolate-init, the worker's own threads and the plugin's.
  constexpr int cap = 16;
  auto options = options_with(isolate::limits::standard().processes(cap));
  violations_heard heard(options);
  auto p = load_hostile(options);
  const auto report = p.transport().limits_in_force();
  const auto processes =
      std::find_if(report.begin(), report.end(), [](const auto& e) { return e.limit == "processes"; });
  REQUIRE(processes != report.end());
  REQUIRE_MESSAGE(processes->in_force, processes->mechanism);
  const int held = p->hold_threads(true);
  CHECK(held > 0);
  CHECK(held < cap);  // the worker's own threads and isolate-init count too
  check_one_resource_violation(heard, "all 16 tasks of its processes limit in use", "EAGAIN");
  CHECK(p->hold_threads(false) == held);
  CHECK(p->add(1, 2) == 3);
  // Recorded once for the time it stayed full, not once a second.
  CHECK(p.transport().violations().size() == 1);
}

TEST_CASE("violations: a plugin that catches bad_alloc at its memory limit is a resource violation; it goes on" *
          doctest::test_suite(unprivileged_suite)) {
  // Under a sanitizer its runtime owns operator new: at the cap it reports
  // and the worker dies (resource_limits_test covers that path).
  if (isolate_test::under_asan || isolate_test::under_tsan) return;
  constexpr std::uint64_t cap = 64;
  for (const isolate::limits::policy& limits : {isolate::limits::policy(isolate::limits::standard().memory_mb(cap)),
                                                isolate::limits::policy(isolate::limits::minimal().memory_mb(cap))}) {
    for (const bool aligned : {false, true}) {
      CAPTURE(limits.protect_host);
      CAPTURE(aligned);  // plain new, or new of an over-aligned type (its own operator new)
      auto options = options_with(limits);
      violations_heard heard(options);
      auto p = load_hostile(options);
      // Its own new_handler throws bad_alloc, which it catches: the worker's
      // handler (which ends the worker at the cap) never runs.
      const std::uint64_t got = p->allocate_until_refused(4 * cap, aligned);
      CHECK(got > 0);
      CHECK(got < cap);
      check_one_resource_violation(heard, "memory: 1 allocation failed at its memory limit of 64 MiB",
                                   "caught std::bad_alloc");
      // Still the same worker, with its whole cap again.
      CHECK(p->add(1, 2) == 3);
      CHECK(p->allocate_mib(16) == 16);
      CHECK(p.transport().violations().size() == 1);
    }
  }
}

TEST_CASE("violations: a refused chmod is a filesystem violation naming the path; the plugin goes on" *
          doctest::test_suite(unprivileged_suite)) {
  auto options = options_with(isolate::limits::strict());
  violations_heard heard(options);
  auto p = load_hostile(options);
  REQUIRE(refusals_reported(p));
  CHECK(p->change_metadata("/tmp") == std::vector<int>{EPERM, EPERM, EPERM});
  const auto v = heard.wait_for(3);
  REQUIRE(v.size() == 3);
  CHECK(v[0].kind == isolate::violation_kind::filesystem);
  CHECK_MESSAGE(v[0].details == "chmod(/tmp)", v[0].details);
  CHECK(v[0].action == "refused (EPERM)");
  CHECK_MESSAGE(contains(v[1].details, "utimensat("), v[1].details);
  CHECK_MESSAGE(v[2].details == "chown(/tmp)", v[2].details);
  CHECK(p->add(1, 2) == 3);
}

TEST_CASE("violations: a refused ptrace and a refused fork are permission violations" *
          doctest::test_suite(unprivileged_suite)) {
  auto options = options_with(isolate::limits::strict());
  violations_heard heard(options);
  auto p = load_hostile(options);
  REQUIRE(refusals_reported(p));
  CHECK(p->trace(1) == EPERM);  // its PID 1
  const auto forks = p->fork_bomb(3);
  REQUIRE(forks.size() == 2);
  CHECK(forks[0] == 0);
  CHECK(forks[1] == EAGAIN);
  const auto v = heard.wait_for(2);
  REQUIRE(v.size() >= 2);
  CHECK(v[0].kind == isolate::violation_kind::permission);
  CHECK_MESSAGE(v[0].details == "ptrace(PTRACE_ATTACH pid 1)", v[0].details);
  CHECK(v[0].action == "refused (EPERM)");
  CHECK(v[1].kind == isolate::violation_kind::permission);
  CHECK_MESSAGE(v[1].details.starts_with("clone"), v[1].details);
  CHECK(v[1].action == "refused (EAGAIN)");
  CHECK(p->add(1, 2) == 3);
}

TEST_CASE("violations: with observe_files, an open outside the plugin's paths is a filesystem violation naming the "
          "path; one inside is not" * doctest::test_suite(unprivileged_suite)) {
  temp_dir allowed;
  write_text(allowed / "data.txt", "data");
  auto options = options_with(isolate::limits::strict().observe_files(true).read_only(allowed.path()));
  violations_heard heard(options);
  auto p = load_hostile(options);
  REQUIRE(refusals_reported(p));
  CHECK(p->open_path((allowed / "data.txt").string(), O_RDONLY) == 0);
  CHECK(p->open_path("/etc/shadow", O_RDONLY) == EACCES);
  const auto v = heard.wait_for(1);
  REQUIRE(v.size() == 1);
  CHECK(v[0].kind == isolate::violation_kind::filesystem);
  CHECK_MESSAGE(contains(v[0].details, "/etc/shadow"), v[0].details);
  CHECK(v[0].action == "refused (EACCES)");
  CHECK(p->add(1, 2) == 3);
}

TEST_CASE("unprivileged host: the cases above hold with the host as nobody") { run_unprivileged_suite(); }
