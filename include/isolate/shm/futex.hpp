// Futex wait/wake on a 32-bit atomic that may live in memory shared between
// processes (so never FUTEX_PRIVATE_FLAG).
#ifndef ISOLATE_SHM_FUTEX_HPP
#define ISOLATE_SHM_FUTEX_HPP

#include "isolate/detail/config.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace isolate::shm {

// The kernel reads and compares the word as a plain uint32_t in shared memory.
static_assert(std::atomic<std::uint32_t>::is_always_lock_free, "futex words must be lock-free atomics");
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  alignof(std::atomic<std::uint32_t>) == alignof(std::uint32_t),
              "std::atomic<std::uint32_t> must be layout-compatible with the kernel's futex word");

enum class futex_status {
  woken,          // a wake-up, possibly spurious: recheck the condition
  value_changed,  // the word did not hold `expected` (EAGAIN)
  timed_out,      // the timeout elapsed
  interrupted,    // a signal handler ran (EINTR)
  failed,         // any other error (EFAULT, a seccomp filter...)
};

namespace detail {

inline long futex_call(std::atomic<std::uint32_t>& word, int op, std::uint32_t value,
                       timespec const* timeout) noexcept {
  // Layout compatibility is asserted above; the kernel wants the raw address.
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), op, value, timeout, nullptr, 0);
}

inline futex_status futex_wait_impl(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                                    timespec const* timeout) noexcept {
  if (futex_call(word, FUTEX_WAIT, expected, timeout) == 0) return futex_status::woken;
  switch (errno) {
    case EAGAIN: return futex_status::value_changed;
    case ETIMEDOUT: return futex_status::timed_out;
    case EINTR: return futex_status::interrupted;
    default: return futex_status::failed;
  }
}

}  // namespace detail

// Sleeps while `word` holds `expected`.
inline futex_status futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected) noexcept {
  return detail::futex_wait_impl(word, expected, nullptr);
}

// Sleeps while `word` holds `expected`, at most `timeout` (relative, CLOCK_MONOTONIC).
inline futex_status futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                               std::chrono::nanoseconds timeout) noexcept {
  if (timeout <= std::chrono::nanoseconds::zero()) {
    return word.load(std::memory_order_acquire) == expected ? futex_status::timed_out
                                                            : futex_status::value_changed;
  }
  auto const ns = timeout.count();
  timespec const ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  return detail::futex_wait_impl(word, expected, &ts);
}

// Sleeps while `first` holds `first_expected` and `second` holds
// `second_expected`, until a wake-up on either word (futex_waitv, Linux 5.16).
// `failed` where the kernel lacks it: see futex_wait_either_supported().
inline futex_status futex_wait_either(std::atomic<std::uint32_t>& first, std::uint32_t first_expected,
                                      std::atomic<std::uint32_t>& second, std::uint32_t second_expected) noexcept {
#if defined(SYS_futex_waitv) && defined(FUTEX_32)
  futex_waitv words[2]{};
  words[0] = {first_expected, reinterpret_cast<std::uintptr_t>(&first), FUTEX_32, 0};
  words[1] = {second_expected, reinterpret_cast<std::uintptr_t>(&second), FUTEX_32, 0};
  if (::syscall(SYS_futex_waitv, words, 2U, 0U, nullptr, 0) >= 0) return futex_status::woken;
  switch (errno) {
    case EAGAIN: return futex_status::value_changed;
    case EINTR: return futex_status::interrupted;
    default: return futex_status::failed;
  }
#else
  (void)first, (void)first_expected, (void)second, (void)second_expected;
  return futex_status::failed;
#endif
}

// Whether this kernel has futex_waitv (an empty list is EINVAL there, ENOSYS before 5.16).
inline bool futex_wait_either_supported() noexcept {
#if defined(SYS_futex_waitv) && defined(FUTEX_32)
  return ::syscall(SYS_futex_waitv, nullptr, 0U, 0U, nullptr, 0) == -1 && errno == EINVAL;
#else
  return false;
#endif
}

// Wakes up to `count` waiters sleeping on `word`; returns how many woke (or -1).
inline int futex_wake(std::atomic<std::uint32_t>& word, int count = INT_MAX) noexcept {
  return static_cast<int>(detail::futex_call(word, FUTEX_WAKE, static_cast<std::uint32_t>(count), nullptr));
}

}  // namespace isolate::shm

#endif
