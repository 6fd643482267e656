// The calling thread's CPU time, for tests that check a wait stays asleep.
#ifndef ISOLATE_TESTS_SUPPORT_THREAD_CPU_TIME_HPP
#define ISOLATE_TESTS_SUPPORT_THREAD_CPU_TIME_HPP

#include <time.h>

#include <chrono>

namespace isolate_test {

inline std::chrono::nanoseconds thread_cpu_time() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec};
}

}  // namespace isolate_test

#endif
