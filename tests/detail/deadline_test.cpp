#include "isolate/detail/deadline.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <chrono>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;
using isolate::detail::deadline_after;
using isolate::detail::deadline_clock;
using isolate::detail::deadline_for;
using isolate::detail::lock_until;
using isolate::detail::time_left;

TEST_CASE("deadline_after adds the timeout to now, saturating at no deadline") {
  const auto before = deadline_clock::now();
  const auto deadline = deadline_after(250ms);
  CHECK(deadline >= before + 250ms);
  CHECK(deadline <= deadline_clock::now() + 250ms);
  CHECK(deadline_after(std::chrono::milliseconds::max()) == deadline_clock::time_point::max());
  // The steady clock's range is some 292 years from its epoch: a century fits, a millennium does not.
  CHECK(deadline_after(std::chrono::hours(24 * 365 * 100)) < deadline_clock::time_point::max());
  CHECK(deadline_after(std::chrono::hours(24 * 365 * 1000)) == deadline_clock::time_point::max());
  const auto now = deadline_after(0ms);
  CHECK(now <= deadline_clock::now());
}

TEST_CASE("deadline_for: zero or less is no deadline") {
  CHECK(deadline_for(0ms) == deadline_clock::time_point::max());
  CHECK(deadline_for(-5ms) == deadline_clock::time_point::max());
  CHECK(deadline_for(std::chrono::milliseconds::max()) == deadline_clock::time_point::max());
  const auto deadline = deadline_for(1s);
  CHECK(deadline > deadline_clock::now());
  CHECK(deadline <= deadline_clock::now() + 1s);
}

TEST_CASE("time_left is rounded up, never negative, and unbounded for no deadline") {
  CHECK(time_left(deadline_clock::time_point::max()) == std::chrono::milliseconds::max());
  CHECK(time_left(deadline_clock::now() - 1s) == 0ms);
  const auto left = time_left(deadline_clock::now() + 1500us);
  CHECK(left >= 1ms);  // 1.5 ms or a little less: rounded up, never to zero
  CHECK(left <= 2ms);
  CHECK(time_left(deadline_after(10s)) > 9s);
}

TEST_CASE("lock_until locks a free mutex, and gives up on a held one at the deadline") {
  std::timed_mutex mutex;
  {
    std::unique_lock lock(mutex, std::defer_lock);
    CHECK(lock_until(lock, deadline_clock::time_point::max()));
    CHECK(lock.owns_lock());
  }
  {
    std::unique_lock lock(mutex, std::defer_lock);
    CHECK(lock_until(lock, deadline_clock::now()));  // free: no wait needed, even at a passed deadline
  }
  std::unique_lock held(mutex);
  bool got = true;
  std::chrono::steady_clock::duration waited{};
  std::thread other([&] {
    std::unique_lock lock(mutex, std::defer_lock);
    const auto started = deadline_clock::now();
    got = lock_until(lock, deadline_after(50ms));
    waited = deadline_clock::now() - started;
  });
  other.join();
  CHECK_FALSE(got);
  CHECK(waited >= 40ms);  // the system clock may be a little off the steady one
  CHECK(waited < 20s);
}

TEST_CASE("lock_until gets the mutex once its holder lets go before the deadline") {
  std::timed_mutex mutex;
  std::unique_lock held(mutex);
  std::atomic<bool> trying{false};
  bool got = false;
  std::thread other([&] {
    std::unique_lock lock(mutex, std::defer_lock);
    trying = true;
    got = lock_until(lock, deadline_after(20s));
  });
  while (!trying) std::this_thread::yield();
  held.unlock();
  other.join();
  CHECK(got);
}
