#include "isolate/detail/process/worker_death.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <csignal>
#include <string>
#include <system_error>

using isolate::errc;
using isolate::detail::death_record;
using isolate::detail::exit_status;

namespace {

constexpr pid_t pid = 4321;

exit_status exited(int code) { return {false, code, false}; }
exit_status killed(int signal) { return {true, signal, false}; }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("the host's own reason for a kill wins over what the status shows") {
  death_record record;
  CHECK_FALSE(record.kill_reason());
  CHECK(record.record_kill(errc::timeout, "the call timed out"));
  CHECK_FALSE(record.record_kill(errc::quarantined, "a later reason"));
  REQUIRE(record.kill_reason());
  CHECK(*record.kill_reason() == errc::timeout);
  CHECK(record.kill_message() == "the call timed out");

  isolate::limits::policy limits;
  limits.memory_mb = 64;
  for (const auto& status : {killed(SIGKILL), exited(0), exited(isolate::detail::worker_exit_memory_limit)}) {
    const auto [code, text] = record.describe(pid, {}, status, limits);
    CHECK(code == errc::timeout);
    CHECK(contains(text, "the call timed out"));
    CHECK(contains(text, "worker 4321"));
  }
}

TEST_CASE("a presumed reason (a worker that closed its channel, not seen to exit) yields to an ending of its own") {
  isolate::limits::policy limits;
  limits.memory_mb = 64;
  limits.cpu_seconds = 1;
  const auto presumed = [] {
    death_record record;
    record.record_kill(errc::protocol_error, "the plugin was killed because it closed its channel", true);
    return record;
  };
  SUBCASE("a limit: the CPU time limit's signal, the memory cgroup's OOM kill") {
    CHECK(presumed().describe(pid, {}, killed(SIGXCPU), limits).first == errc::limit_exceeded);
    const auto [code, text] = presumed().describe(pid, {}, killed(SIGKILL), limits, {{}, std::string("cgroup v2")});
    CHECK(code == errc::limit_exceeded);
    CHECK(contains(text, "memory limit of 64 MiB (cgroup v2)"));
  }
  SUBCASE("a crash of its own") {
    const auto [code, text] = presumed().describe(pid, {}, killed(SIGSEGV), limits);
    CHECK(code == errc::plugin_crashed);
    CHECK(contains(text, "SIGSEGV"));
  }
  SUBCASE("the host's own kill, or an exit that explains nothing: the reason stands") {
    for (const auto& status : {killed(SIGKILL), exited(0), exited(3)}) {
      const auto [code, text] = presumed().describe(pid, {}, status, limits);
      CHECK(code == errc::protocol_error);
      CHECK(contains(text, "closed its channel"));
    }
  }
  SUBCASE("a reason the host knows (not presumed) stands even then") {
    death_record record;
    record.record_kill(errc::timeout, "the call timed out");
    CHECK(record.describe(pid, {}, killed(SIGXCPU), limits).first == errc::timeout);
  }
}

TEST_CASE("an exit the host did not ask for") {
  const death_record record;
  const isolate::limits::policy no_limits;

  SUBCASE("status 0 is a broken protocol, not a crash") {
    const auto [code, text] = record.describe(pid, {}, exited(0), no_limits);
    CHECK(code == errc::protocol_error);
    CHECK(contains(text, "without being asked to stop"));
  }
  SUBCASE("worker_exit_channel_broken is a broken protocol") {
    const auto [code, text] = record.describe(pid, {}, exited(isolate::detail::worker_exit_channel_broken), no_limits);
    CHECK(code == errc::protocol_error);
    CHECK(contains(text, "channel"));
  }
  SUBCASE("any other status is a crash") {
    const auto [code, text] = record.describe(pid, {}, exited(3), no_limits);
    CHECK(code == errc::plugin_crashed);
    CHECK(contains(text, "worker 4321 exited with status 3"));
  }
  SUBCASE("a signal is a crash") {
    const auto [code, text] = record.describe(pid, {}, killed(SIGSEGV), no_limits);
    CHECK(code == errc::plugin_crashed);
    CHECK(contains(text, "SIGSEGV"));
  }
  SUBCASE("a lost wait is a crash, saying why it was lost") {
    const auto [code, text] =
        record.describe(pid, std::make_error_code(std::errc::no_child_process), exited(0), no_limits);
    CHECK(code == errc::plugin_crashed);
    CHECK(contains(text, "was lost"));
  }
}

TEST_CASE("an ending that shows a limit was reached names the limit") {
  const death_record record;
  isolate::limits::policy limits;

  SUBCASE("memory") {
    limits.memory_mb = 64;
    const auto [code, text] = record.describe(pid, {}, exited(isolate::detail::worker_exit_memory_limit), limits);
    CHECK(code == errc::limit_exceeded);
    CHECK(contains(text, "memory limit of 64 MiB"));
  }
  SUBCASE("the memory status without a memory limit is the plugin's own exit") {
    const auto [code, text] = record.describe(pid, {}, exited(isolate::detail::worker_exit_memory_limit), limits);
    CHECK(code == errc::plugin_crashed);
  }
  SUBCASE("memory: SIGKILL from the memory cgroup's OOM killer") {
    limits.memory_mb = 64;
    const auto [code, text] =
        record.describe(pid, {}, killed(SIGKILL), limits, {{}, std::string("cgroup v1 memory.limit_in_bytes")});
    CHECK(code == errc::limit_exceeded);
    CHECK(contains(text, "memory limit of 64 MiB (cgroup v1 memory.limit_in_bytes)"));
  }
  SUBCASE("memory: a SIGKILL the cgroup did not send is not the limit") {
    limits.memory_mb = 64;
    const auto [code, text] = record.describe(pid, {}, killed(SIGKILL), limits);
    CHECK(code == errc::plugin_crashed);
  }
  SUBCASE("CPU time: SIGXCPU") {
    limits.cpu_seconds = 2;
    const auto [code, text] = record.describe(pid, {}, killed(SIGXCPU), limits);
    CHECK(code == errc::limit_exceeded);
    CHECK(contains(text, "CPU time limit of 2 s"));
  }
  SUBCASE("CPU time: SIGKILL once the time is spent") {
    limits.cpu_seconds = 2;
    const auto [code, text] = record.describe(pid, {}, killed(SIGKILL), limits, {std::int64_t{2'000'000}, {}});
    CHECK(code == errc::limit_exceeded);
    CHECK(contains(text, "CPU time limit"));
  }
  SUBCASE("CPU time: SIGKILL before the time is spent is not the limit") {
    limits.cpu_seconds = 2;
    const auto [code, text] = record.describe(pid, {}, killed(SIGKILL), limits, {std::int64_t{1'000}, {}});
    CHECK(code == errc::plugin_crashed);
  }
  SUBCASE("SIGXCPU without a CPU limit is a crash") {
    const auto [code, text] = record.describe(pid, {}, killed(SIGXCPU), limits);
    CHECK(code == errc::plugin_crashed);
  }
  SUBCASE("file size") {
    limits.file_size_mb = 5;
    const auto [code, text] = record.describe(pid, {}, killed(SIGXFSZ), limits);
    CHECK(code == errc::limit_exceeded);
    CHECK(contains(text, "file size limit of 5 MiB"));
  }
  SUBCASE("a lost wait shows no limit") {
    limits.cpu_seconds = 2;
    const auto [code, text] = record.describe(pid, std::make_error_code(std::errc::no_child_process), killed(SIGXCPU), limits);
    CHECK(code == errc::plugin_crashed);
  }
}
