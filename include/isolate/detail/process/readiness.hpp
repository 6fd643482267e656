// Waiting for a descriptor to become ready, bounded by a deadline.
#ifndef ISOLATE_DETAIL_PROCESS_READINESS_HPP
#define ISOLATE_DETAIL_PROCESS_READINESS_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/deadline.hpp"
#include "isolate/detail/system_call.hpp"

#include <algorithm>
#include <chrono>
#include <system_error>

#include <poll.h>
#include <cerrno>

namespace isolate::detail {

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
    int const rc = ::poll(&p, 1, timeout_ms);  // not retried here: the loop recomputes the time left
    if (rc > 0) {
      if (p.revents & POLLNVAL) {
        ec.assign(EBADF, std::system_category());
        return false;
      }
      ec.clear();
      return true;
    }
    if (rc < 0 && errno != EINTR) {
      ec = last_system_error();
      return false;
    }
  }
}

}  // namespace isolate::detail

#endif
