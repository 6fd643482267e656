// Waiting for a descriptor to become ready, bounded by a deadline.
#ifndef ISOLATE_DETAIL_PROCESS_READINESS_HPP
#define ISOLATE_DETAIL_PROCESS_READINESS_HPP

#include "isolate/detail/config.hpp"

#include <algorithm>
#include <chrono>
#include <system_error>

#include <poll.h>
#include <cerrno>

namespace isolate::detail {

using deadline_clock = std::chrono::steady_clock;

inline deadline_clock::time_point deadline_after(std::chrono::milliseconds timeout) noexcept {
  auto const now = deadline_clock::now();
  // Saturate, so milliseconds::max() means "no deadline" instead of overflowing.
  if (timeout >= std::chrono::duration_cast<std::chrono::milliseconds>(deadline_clock::time_point::max() - now))
    return deadline_clock::time_point::max();
  return now + timeout;
}

// The inverse of deadline_after: what is left before `deadline`, rounded up,
// never negative; time_point::max() ("no deadline") gives milliseconds::max().
inline std::chrono::milliseconds time_left(deadline_clock::time_point deadline) noexcept {
  if (deadline == deadline_clock::time_point::max()) return std::chrono::milliseconds::max();
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - deadline_clock::now());
  return std::max(left, std::chrono::milliseconds(0));
}

// Waits until `fd` reports one of `events` (or an error/hangup, which the next
// read or write will report properly). Fails with timed_out at the deadline.
inline bool wait_ready(int fd, short events, deadline_clock::time_point deadline, std::error_code& ec) noexcept {
  for (;;) {
    int timeout_ms = -1;
    if (deadline != deadline_clock::time_point::max()) {
      auto const left = std::chrono::ceil<std::chrono::milliseconds>(deadline - deadline_clock::now()).count();
      if (left <= 0) {
        ec = std::make_error_code(std::errc::timed_out);
        return false;
      }
      timeout_ms = static_cast<int>(std::min<decltype(left)>(left, 1 << 30));
    }
    pollfd p{fd, events, 0};
    int const rc = ::poll(&p, 1, timeout_ms);
    if (rc > 0) {
      if (p.revents & POLLNVAL) {
        ec.assign(EBADF, std::system_category());
        return false;
      }
      ec.clear();
      return true;
    }
    if (rc < 0 && errno != EINTR) {
      ec.assign(errno, std::system_category());
      return false;
    }
  }
}

}  // namespace isolate::detail

#endif
