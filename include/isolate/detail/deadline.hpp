// Deadlines: a timeout becomes a time point once, at the start of an
// operation, and every wait inside it is bounded by that time point.
// time_point::max() means "no deadline" throughout.
#ifndef ISOLATE_DETAIL_DEADLINE_HPP
#define ISOLATE_DETAIL_DEADLINE_HPP

#include "isolate/detail/config.hpp"

#include <algorithm>
#include <chrono>
#include <mutex>

namespace isolate::detail {

using deadline_clock = std::chrono::steady_clock;

// now + timeout, saturating: milliseconds::max() gives no deadline.
inline deadline_clock::time_point deadline_after(std::chrono::milliseconds timeout) noexcept {
  auto const now = deadline_clock::now();
  if (timeout >= std::chrono::duration_cast<std::chrono::milliseconds>(deadline_clock::time_point::max() - now))
    return deadline_clock::time_point::max();
  return now + timeout;
}

// As deadline_after, for the options' timeouts, where zero or less means none.
inline deadline_clock::time_point deadline_for(std::chrono::milliseconds timeout) noexcept {
  return timeout <= std::chrono::milliseconds::zero() ? deadline_clock::time_point::max() : deadline_after(timeout);
}

// The inverse of deadline_after: what is left before `deadline`, rounded up,
// never negative; time_point::max() ("no deadline") gives milliseconds::max().
inline std::chrono::milliseconds time_left(deadline_clock::time_point deadline) noexcept {
  if (deadline == deadline_clock::time_point::max()) return std::chrono::milliseconds::max();
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - deadline_clock::now());
  return std::max(left, std::chrono::milliseconds(0));
}

// Locks `lock` (over a timed mutex) unless `deadline` passes first.
template <class TimedMutex>
bool lock_until(std::unique_lock<TimedMutex>& lock, deadline_clock::time_point deadline) {
  if (deadline == deadline_clock::time_point::max()) {
    lock.lock();
    return true;
  }
  if (lock.try_lock()) return true;
  // On the system clock (pthread_mutex_timedlock): GCC 12's TSan does not
  // see a lock taken on the steady clock (pthread_mutex_clocklock).
  return lock.try_lock_until(std::chrono::system_clock::now() + (deadline - deadline_clock::now()));
}

}  // namespace isolate::detail

#endif
