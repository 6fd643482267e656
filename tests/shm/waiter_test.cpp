#include "isolate/shm/waiter.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include "../support/thread_cpu_time.hpp"

#include <atomic>
#include <chrono>
#include <thread>

#include <sched.h>

using namespace std::chrono_literals;
using isolate::shm::side_state;
using isolate::shm::wait_policy;
using isolate::shm::wait_result;
using isolate::shm::waiter;
using clock_type = std::chrono::steady_clock;
using isolate_test::thread_cpu_time;

namespace {

// The shared words one waiting endpoint uses, as a ring would hold them.
struct words {
  std::atomic<std::uint32_t> bell{0};
  side_state self;
  side_state peer;
  std::atomic<bool> closed{false};
  std::atomic<bool> flag{false};
};

// A peer that looks awake on another CPU, so waiting spins.
void peer_runs_elsewhere(words& w) {
  w.peer.sleeping.store(0);
  w.peer.cpu.store(side_state::unknown_cpu - 1);
}

// A peer on our own CPU: spinning would only keep it from running.
void peer_shares_cpu(words& w) {
  w.peer.sleeping.store(0);
  w.peer.cpu.store(static_cast<std::uint32_t>(::sched_getcpu()));
}

// Keeps the calling thread on the CPU it runs on, so "the peer shares our
// CPU" stays true for the whole test.
class pin_to_current_cpu {
 public:
  pin_to_current_cpu() {
    REQUIRE(::sched_getaffinity(0, sizeof saved_, &saved_) == 0);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(::sched_getcpu(), &one);
    REQUIRE(::sched_setaffinity(0, sizeof one, &one) == 0);
  }
  ~pin_to_current_cpu() { ::sched_setaffinity(0, sizeof saved_, &saved_); }
  pin_to_current_cpu(pin_to_current_cpu const&) = delete;
  pin_to_current_cpu& operator=(pin_to_current_cpu const&) = delete;

 private:
  cpu_set_t saved_{};
};

}  // namespace

TEST_CASE("wait returns ready at once when the condition already holds") {
  words w;
  waiter wt;
  CHECK(wt.wait([] { return true; }, w.bell, w.self, w.peer, w.closed, clock_type::now()) == wait_result::ready);
  w.closed.store(true);
  CHECK(wt.wait([] { return false; }, w.bell, w.self, w.peer, w.closed, clock_type::time_point::max()) ==
        wait_result::closed);
}

TEST_CASE("wait times out at the deadline and leaves no sleep marks") {
  words w;
  waiter wt;
  auto const start = clock_type::now();
  CHECK(wt.wait([] { return false; }, w.bell, w.self, w.peer, w.closed, start + 20ms) == wait_result::timed_out);
  CHECK(clock_type::now() - start >= 20ms);
  CHECK(w.bell.load() == 0);
  CHECK(w.self.sleeping.load() == 0);
  // The waiter published its CPU for the peer's spin decision.
  CHECK(w.self.cpu.load() != side_state::unknown_cpu);
}

TEST_CASE("waiting skips the spin when the peer shares our CPU or sleeps") {
  // A spin budget far longer than the wait: if it spun, it would burn the whole wait.
  waiter wt(wait_policy{.max_spin = 10s, .adaptive = false});
  words w;
  pin_to_current_cpu pin;
  SUBCASE("peer on our CPU") { peer_shares_cpu(w); }
  SUBCASE("peer asleep") {
    peer_runs_elsewhere(w);
    w.peer.sleeping.store(1);
  }
  // ready() is polled on every pause while spinning, a few times while sleeping.
  int polls = 0;
  CHECK(wt.wait([&] { return ++polls < 0; }, w.bell, w.self, w.peer, w.closed, clock_type::now() + 100ms) ==
        wait_result::timed_out);
  CHECK(polls < 50);
}

TEST_CASE("waiting spins when the peer runs on another CPU") {
  waiter wt(wait_policy{.max_spin = 10s, .adaptive = false});
  words w;
  peer_runs_elsewhere(w);
  int polls = 0;
  CHECK(wt.wait([&] { return ++polls < 0; }, w.bell, w.self, w.peer, w.closed, clock_type::now() + 60ms) ==
        wait_result::timed_out);
  // Polled on every pause for 60 ms: thousands of times even on a busy machine.
  CHECK(polls > 1000);
}

TEST_CASE("notify wakes a sleeping waiter and marks it running") {
  words w;
  peer_shares_cpu(w);  // go straight to the futex
  std::atomic<wait_result> result{wait_result::timed_out};
  std::thread sleeper([&] {
    waiter wt;
    result = wt.wait([&] { return w.flag.load(std::memory_order_acquire); }, w.bell, w.self, w.peer, w.closed,
                     clock_type::now() + 30s);
  });
  while (w.bell.load() != 1) std::this_thread::yield();  // it announced its sleep
  CHECK(w.self.sleeping.load() == 1);
  w.flag.store(true, std::memory_order_release);
  waiter::notify(w.bell, w.self);
  sleeper.join();
  CHECK(result.load() == wait_result::ready);
  CHECK(w.self.sleeping.load() == 0);
  CHECK(w.bell.load() == 0);
}

TEST_CASE("notify makes no wake-up when nobody sleeps") {
  words w;
  waiter::notify(w.bell, w.peer);
  CHECK(w.bell.load() == 0);
}

TEST_CASE("interrupt wakes a waiter sleeping with no deadline") {
  words w;
  peer_shares_cpu(w);
  std::atomic<wait_result> result{wait_result::ready};
  std::thread sleeper([&] {
    waiter wt;
    result = wt.wait([] { return false; }, w.bell, w.self, w.peer, w.closed, clock_type::time_point::max());
  });
  while (w.self.sleeping.load() != 1) std::this_thread::yield();
  auto const start = clock_type::now();
  waiter::interrupt(w.closed, w.bell);
  sleeper.join();
  CHECK(clock_type::now() - start < 1s);
  CHECK(result.load() == wait_result::closed);
}

TEST_CASE("the spin budget shrinks when spins fail and grows back when data comes soon") {
  waiter wt(wait_policy{.max_spin = 200us, .adaptive = true});
  words w;
  peer_runs_elsewhere(w);
  CHECK(wt.spin_budget() == 200us);

  for (int i = 0; i < 40 && wt.spin_budget() > 0ns; ++i) {
    CHECK(wt.wait([] { return false; }, w.bell, w.self, w.peer, w.closed, clock_type::now() + 1ms) ==
          wait_result::timed_out);
  }
  CHECK(wt.spin_budget() == 0ns);

  // Now the peer answers as soon as we sleep: a spin would have caught it.
  waiter::clock::duration slept_for{};
  for (int i = 0; i < 20 && wt.spin_budget() == 0ns; ++i) {
    w.flag.store(false);
    std::thread answer([&] {
      while (w.bell.load() != 1) std::this_thread::yield();
      w.flag.store(true, std::memory_order_release);
      waiter::notify(w.bell, w.self);
    });
    auto const start = clock_type::now();
    CHECK(wt.wait([&] { return w.flag.load(std::memory_order_acquire); }, w.bell, w.self, w.peer, w.closed,
                  clock_type::now() + 10s) == wait_result::ready);
    slept_for = clock_type::now() - start;
    answer.join();
    peer_runs_elsewhere(w);  // notify marked us running; keep the peer looking awake
  }
  // Grows unless this loaded machine woke us later than max_spin every time.
  if (slept_for < 200us) CHECK(wt.spin_budget() > 0ns);
}

TEST_CASE("without adaptation the budget stays at max_spin") {
  waiter wt(wait_policy{.max_spin = 100us, .adaptive = false});
  words w;
  peer_runs_elsewhere(w);
  for (int i = 0; i < 5; ++i) {
    wt.wait([] { return false; }, w.bell, w.self, w.peer, w.closed, clock_type::now() + 1ms);
  }
  CHECK(wt.spin_budget() == 100us);
}

TEST_CASE("fruitless wake-ups are paced past a burst, and the pace refills with time") {
  using isolate::shm::detail::wake_pacer;
  wake_pacer pacer;
  auto const t0 = clock_type::now();
  for (int i = 0; i < wake_pacer::burst; ++i) CHECK(pacer.fruitless(t0) == 0ns);
  CHECK(pacer.fruitless(t0) == wake_pacer::period);       // the burst is spent: one look a period
  CHECK(pacer.fruitless(t0) == 2 * wake_pacer::period);  // and they queue up
  // After a quiet stretch as long as the whole burst, the burst is back.
  auto const later = t0 + (wake_pacer::burst + 2) * wake_pacer::period;
  for (int i = 0; i < wake_pacer::burst; ++i) CHECK(pacer.fruitless(later) == 0ns);
  CHECK(pacer.fruitless(later) > 0ns);
}

namespace {

// A hostile peer's wake storm (threat model G6): it wakes the sleeper
// without pause and resets its bell between the sleeper's store and its
// futex_wait, and scribbles the side_state words (G12), until `stop`.
std::thread wake_storm(words& w, std::atomic<bool>& stop) {
  return std::thread([&w, &stop] {
    for (std::uint32_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      w.bell.store(i % 2, std::memory_order_relaxed);
      isolate::shm::futex_wake(w.bell);
      w.peer.sleeping.store(i % 3 == 0 ? 1 : 0, std::memory_order_relaxed);
      w.peer.cpu.store(i, std::memory_order_relaxed);
      w.self.sleeping.store(i % 2, std::memory_order_relaxed);
    }
  });
}

}  // namespace

TEST_CASE("a peer's wake storm keeps a waiter neither busy nor past its deadline, nor from its data") {
  words w;
  std::atomic<bool> stop{false};
  auto storm = wake_storm(w, stop);
  waiter wt;
  SUBCASE("nothing comes: the wait ends at its deadline, having used little of the CPU") {
    auto const cpu_before = thread_cpu_time();
    auto const start = clock_type::now();
    CHECK(wt.wait([] { return false; }, w.bell, w.self, w.peer, w.closed, start + 400ms) == wait_result::timed_out);
    auto const wall = clock_type::now() - start;
    auto const cpu = thread_cpu_time() - cpu_before;
    // Unpaced, the waiter looks after every one of the storm's wake-ups:
    // its CPU time is close to the whole wait.
    CHECK_MESSAGE(cpu < wall / 4, "cpu ", cpu.count(), " ns of ", std::chrono::nanoseconds(wall).count(), " ns");
    CHECK(wall < 10s);
  }
  SUBCASE("the data comes during the storm: the wait returns ready") {
    std::thread answer([&] {
      std::this_thread::sleep_for(50ms);  // into the storm's pacing
      w.flag.store(true, std::memory_order_release);
      waiter::notify(w.bell, w.self);
    });
    CHECK(wt.wait([&] { return w.flag.load(std::memory_order_acquire); }, w.bell, w.self, w.peer, w.closed,
                  clock_type::now() + 30s) == wait_result::ready);
    answer.join();
  }
  SUBCASE("close during the storm ends the wait") {
    std::thread closer([&] {
      std::this_thread::sleep_for(50ms);
      waiter::interrupt(w.closed, w.bell);
    });
    CHECK(wt.wait([] { return false; }, w.bell, w.self, w.peer, w.closed, clock_type::time_point::max()) ==
          wait_result::closed);
    closer.join();
  }
  stop.store(true);
  storm.join();
}
