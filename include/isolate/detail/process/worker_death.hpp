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

#include <fmt/format.h>
#include <sys/types.h>

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
  bool record_kill(errc reason, std::string_view why) noexcept {
    if (kill_reason_) return false;
    kill_reason_ = reason;
    try {
      kill_message_ = why;
    } catch (...) {
      kill_message_.clear();  // out of memory: the code alone says why
    }
    return true;
  }
  std::optional<errc> kill_reason() const noexcept { return kill_reason_; }
  const std::string& kill_message() const noexcept { return kill_message_; }

  // The error of the calls that fail because worker `pid` ended so.
  std::pair<errc, std::string> describe(pid_t pid, std::error_code wait_error, const exit_status& status) const {
    const std::string how = wait_error ? "was lost (" + wait_error.message() + ")" : status.describe();
    if (kill_reason_) return {*kill_reason_, fmt::format("{} (worker {} {})", kill_message_, pid, how)};
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
  std::optional<errc> kill_reason_;
  std::string kill_message_;
};

}  // namespace isolate::detail

#endif
