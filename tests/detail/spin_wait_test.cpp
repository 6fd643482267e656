#include "isolate/detail/spin_wait.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using isolate::detail::adaptive_spin;
using isolate::detail::signal_flag;
using isolate::detail::spin_for;
using clock_type = std::chrono::steady_clock;

TEST_CASE("spin_for: true as soon as ready, false once the budget is spent") {
  int polls = 0;
  CHECK(spin_for(1s, [&] { return ++polls == 3; }));
  CHECK(polls == 3);
  const auto started = clock_type::now();
  CHECK_FALSE(spin_for(2ms, [] { return false; }));
  CHECK(clock_type::now() - started >= 2ms);
  polls = 0;
  CHECK_FALSE(spin_for(0ns, [&] { return ++polls > 100; }));  // no budget: one look at most
  CHECK(polls <= 1);
}

TEST_CASE("a signal_flag set before the wait, or while it spins or sleeps") {
  signal_flag early;
  early.set();
  CHECK(early.is_set());
  early.wait(0ns);

  for (int round = 0; round < 100; ++round) {
    signal_flag flag;
    std::string written;
    std::thread setter([&] {
      written = "published";  // seen by the waiter once the flag is
      flag.set();
    });
    flag.wait(round % 2 == 0 ? 0ns : 20us);
    CHECK(flag.is_set());
    CHECK(written == "published");
    setter.join();
  }
}

TEST_CASE("signal_flag::wait_until gives up at its deadline") {
  signal_flag flag;
  const auto started = clock_type::now();
  CHECK_FALSE(flag.wait_until(0ns, started + 20ms));
  CHECK(clock_type::now() - started >= 20ms);
  flag.set();
  CHECK(flag.wait_until(0ns, clock_type::now()));
}

TEST_CASE("adaptive_spin spins fully after a quick wait and less after long ones") {
  adaptive_spin spin(std::chrono::microseconds(50));
  CHECK(spin.budget() == 50us);
  for (int i = 0; i < 20; ++i) spin.waited(1ms);
  CHECK(spin.budget() < 50us);
  spin.waited(0ns);
  CHECK(spin.budget() == 50us);
}
