// Why a worker died, in the words its failed calls carry. The host's own
// observations decide the code: a reason it gave when it killed the worker
// (the first one wins), else the exit status. The worker exits with status 0
// only when asked to, and with worker_exit_channel_broken when it found its
// channel corrupted: both are broken protocols when unasked, not crashes.
#ifndef ISOLATE_DETAIL_PROCESS_WORKER_DEATH_HPP
#define ISOLATE_DETAIL_PROCESS_WORKER_DEATH_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/process/child.hpp"
#include "isolate/detail/process/handshake.hpp"
#include "isolate/error.hpp"
#include "isolate/limits.hpp"

#include <fmt/format.h>
#include <sys/types.h>

#include <csignal>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace isolate::detail {

// Not thread-safe: the session guards it with its own mutex.
class death_record {
 public:
  // The host is killing the worker (or asking it to stop) for this reason.
  // The first reason recorded wins; false if there was one already.
  // A presumed reason is an inference about a worker that may already be
  // dying (it closed its channel or control socket and was not seen to exit
  // within a grace): its exit status, if it proves a limit or a crash of its
  // own, says better what happened.
  bool record_kill(errc reason, std::string_view why, bool presumed = false) noexcept {
    if (kill_reason_) return false;
    kill_reason_ = reason;
    kill_presumed_ = presumed;
    try {
      kill_message_ = why;
    } catch (...) {
      kill_message_.clear();  // out of memory: the code alone says why
    }
    return true;
  }
  std::optional<errc> kill_reason() const noexcept { return kill_reason_; }
  const std::string& kill_message() const noexcept { return kill_message_; }

  // What the host saw of the worker's resources as it ended.
  struct resources_seen {
    std::optional<std::int64_t> cpu_us;          // CPU time it used, when known
    std::optional<std::string> memory_cgroup;    // its memory cgroup's mechanism, if the group's OOM killer struck
  };

  // The error of the calls that fail because worker `pid` ended so, under `limits`.
  std::pair<errc, std::string> describe(pid_t pid, std::error_code wait_error, const exit_status& status,
                                        const limits::policy& limits, const resources_seen& seen = {}) const {
    const std::string how = wait_error ? "was lost (" + wait_error.message() + ")" : status.describe();
    const bool own_end = !wait_error && (limit_exceeded(status, limits, seen) ||
                                         (status.signaled && !status.killed_by(SIGKILL)));
    if (kill_reason_ && !(kill_presumed_ && own_end)) {
      return {*kill_reason_, fmt::format("{} (worker {} {})", kill_message_, pid, how)};
    }
    if (!wait_error) {
      if (auto exceeded = limit_exceeded(status, limits, seen)) {
        // The signal says how it was stopped; the memory limit's exit status says nothing more.
        return {errc::limit_exceeded, status.signaled ? fmt::format("the plugin reached its {} and was stopped "
                                                                    "(worker {} {})",
                                                                    *exceeded, pid, how)
                                                      : fmt::format("the plugin reached its {} and was stopped "
                                                                    "(worker {})",
                                                                    *exceeded, pid)};
      }
    }
    if (!wait_error && status.exited_with(worker_exit_channel_broken)) {
      return {errc::protocol_error,
              fmt::format("worker {} found its channel from the host broken (the plugin wrote over it?) and {}", pid,
                          how)};
    }
    if (!wait_error && status.exited_with(0)) {
      return {errc::protocol_error,
              fmt::format("worker {} {} without being asked to stop (the plugin called exit?)", pid, how)};
    }
    return {errc::plugin_crashed, fmt::format("worker {} {}", pid, how)};
  }

 private:
  // Which limit an ending shows was reached, if any. The worker's exit
  // status could be the plugin's own exit(): a plugin can only lie about itself.
  static std::optional<std::string> limit_exceeded(const exit_status& status, const limits::policy& limits,
                                                   const resources_seen& seen) {
    if (limits.memory_mb != 0 && status.exited_with(worker_exit_memory_limit)) {
      return fmt::format("memory limit of {} MiB (RLIMIT_DATA)", limits.memory_mb);
    }
    // The group's OOM killer sends SIGKILL, to the worker or to its PID 1.
    if (limits.memory_mb != 0 && seen.memory_cgroup && status.killed_by(SIGKILL)) {
      return fmt::format("memory limit of {} MiB ({})", limits.memory_mb, *seen.memory_cgroup);
    }
    const auto& cpu_us = seen.cpu_us;
    const bool cpu_spent = cpu_us && limits.cpu_seconds != 0 &&
                           *cpu_us >= static_cast<std::int64_t>(limits.cpu_seconds) * 1'000'000;
    if (limits.cpu_seconds != 0 && (status.killed_by(SIGXCPU) || (status.killed_by(SIGKILL) && cpu_spent))) {
      return fmt::format("CPU time limit of {} s (RLIMIT_CPU)", limits.cpu_seconds);
    }
    if (limits.file_size_mb != 0 && status.killed_by(SIGXFSZ)) {
      return fmt::format("file size limit of {} MiB (RLIMIT_FSIZE)", limits.file_size_mb);
    }
    return std::nullopt;
  }

  std::optional<errc> kill_reason_;
  std::string kill_message_;
  bool kill_presumed_ = false;
};

}  // namespace isolate::detail

#endif
