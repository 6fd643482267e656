// How a ring endpoint waits for its peer: spin while that pays, then sleep in
// a futex without losing wake-ups.
//
// Across two cores a spinning round trip costs ~0.1 us while waking a sleeper
// costs ~30 us, so spinning pays while the peer is running on another CPU and
// answers soon. When the peer shares our CPU, or sleeps itself, spinning only
// delays it; we sleep at once. The spin budget is measured in time (one pause
// is 25 ns on some CPUs and 1 ns on others) and adapts to how fast data came.
//
// Synchronisation (SYNC POINT labels, the same at both ends):
//   "no lost wake-up": a sleeper stores its bell (1), then a full fence, then
//     looks at the peer's index (ready()); the publisher stores its index, then
//     a full fence (notify), then looks at the bell. One of the two sees the
//     other, so the sleeper never sleeps through a record or a free room.
//   "endpoint closed": interrupt() stores `closed` (seq_cst), a full fence,
//     then changes the bell; wait() loads `closed` (acquire) before and after
//     announcing its sleep, and the futex sees the changed bell.
// The side_state words (cpu, sleeping) steer a heuristic only: relaxed.
#ifndef ISOLATE_SHM_WAITER_HPP
#define ISOLATE_SHM_WAITER_HPP

#include "isolate/detail/config.hpp"
#include "isolate/shm/futex.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

#include <sched.h>

namespace isolate::shm {

// What one side publishes about itself for the other side's spin decision.
// Written by its side, read by the peer, on its own cache line so it is only
// invalidated when the side moves or sleeps, not on every record. A hostile
// peer can scribble here: these words steer a heuristic, never correctness.
struct alignas(ISOLATE_CACHE_LINE) side_state {
  static constexpr std::uint32_t unknown_cpu = 0xffff'ffff;

  // CPU the side last ran on: a peer on our CPU cannot run while we spin.
  std::atomic<std::uint32_t> cpu{unknown_cpu};
  // Non-zero while the side is blocked in a futex. Whoever wakes it clears it,
  // so the waker counts the woken side as running and may spin for its answer.
  std::atomic<std::uint32_t> sleeping{0};
};
static_assert(sizeof(side_state) == ISOLATE_CACHE_LINE);

struct wait_policy {
  // Longest spin before sleeping. Around one wake-up's cost (LIMITS.md: ~30 us
  // one way): a spin that long loses at most 2x against an oracle.
  std::chrono::nanoseconds max_spin{std::chrono::microseconds{50}};
  // Shrink the spin when spins keep failing, grow it back when data comes soon
  // after we gave up. Off: always spin max_spin (when the peer runs elsewhere).
  bool adaptive = true;
};

enum class wait_result { ready, timed_out, closed };

namespace detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Store-load barrier for the sleep/wake handshake (Dekker): the sleeper stores
// "I sleep" then loads the index; the publisher stores the index then loads
// "sleeps?". Without it both could miss each other and a wake-up is lost.
inline void full_fence() noexcept {
#if defined(__SANITIZE_THREAD__)
  // TSan does not model fences (GCC warns about them); a seq_cst
  // read-modify-write is a full barrier as well.
  static std::atomic<std::uint32_t> word{0};
  word.fetch_add(0, std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

inline std::uint32_t current_cpu() noexcept {
  int const cpu = ::sched_getcpu();  // glibc reads it from rseq: nanoseconds
  return cpu < 0 ? side_state::unknown_cpu : static_cast<std::uint32_t>(cpu);
}

inline std::uint32_t publish_cpu(side_state& self) noexcept {
  std::uint32_t const cpu = current_cpu();
  // Write only on change, so the peer's cached copy of the line stays valid.
  if (self.cpu.load(std::memory_order_relaxed) != cpu) self.cpu.store(cpu, std::memory_order_relaxed);
  return cpu;
}

// Sleeps for `d` on a word nobody wakes: a futex, which every sandbox
// allows, rather than nanosleep, which maximum's allow-list may not.
inline void pause_for(std::chrono::nanoseconds d) noexcept {
  std::atomic<std::uint32_t> quiet{0};
  futex_wait(quiet, 0, d);
}

// Paces the looks that fruitless wake-ups cause, so that a peer which wakes
// us without pause (or keeps resetting the bell we sleep on) cannot keep a
// waiting thread busy: `burst` such wake-ups go unpaced, then one per
// `period` (a generic cell rate: `due_` runs ahead by `period` a wake-up).
// An honest peer wakes us only after it published, so it is never paced; a
// storm costs the waiting thread at most one look every `period`, and its
// wait still ends at its deadline.
class wake_pacer {
 public:
  using clock = std::chrono::steady_clock;
  static constexpr std::chrono::nanoseconds period{std::chrono::milliseconds{1}};
  static constexpr int burst = 64;

  // After a wake-up that found nothing, at `now`: how long to pause before
  // looking again (zero: look at once).
  std::chrono::nanoseconds fruitless(clock::time_point now) noexcept {
    due_ = std::max(due_, now) + period;
    auto const ahead = due_ - now - burst * period;
    return ahead.count() > 0 ? std::chrono::duration_cast<std::chrono::nanoseconds>(ahead)
                             : std::chrono::nanoseconds::zero();
  }

 private:
  clock::time_point due_{};
};

}  // namespace detail

// The waiting state of one endpoint. The words it waits on live in shared
// memory; its spin budget and wake-up pace are private.
//
// Thread safety: one thread at a time may wait() on a waiter (its spin budget
// is unsynchronised); notify() and interrupt() are static and may be called
// from any thread (interrupt() from another thread than the waiting one is
// its purpose). A peer that scribbles over the shared words can make a wait
// spin longer than needed (at most max_spin a wait) or look more often than
// needed (at most once a wake_pacer::period past a burst), never return
// early with wrong data: ready() decides.
class waiter {
 public:
  using clock = std::chrono::steady_clock;

  explicit waiter(wait_policy policy = {}) noexcept : policy_(policy), budget_(policy.max_spin) {}

  wait_policy const& policy() const noexcept { return policy_; }
  // Current spin budget (adapts between zero and policy().max_spin).
  std::chrono::nanoseconds spin_budget() const noexcept { return budget_; }

  // Waits until `ready()` returns true, `closed` is set or `deadline` passes.
  // `bell` is the futex word this endpoint sleeps on (1 while it sleeps); the
  // peer rings it with notify() after publishing. `ready` must be cheap (it
  // is polled while spinning) and return true on a terminal error too.
  template <class Ready>
  wait_result wait(Ready&& ready, std::atomic<std::uint32_t>& bell, side_state& self,
                   side_state const& peer, std::atomic<bool> const& closed, clock::time_point deadline) {
    if (ready()) return wait_result::ready;
    if (closed.load(std::memory_order_acquire)) return wait_result::closed;  // SYNC POINT "endpoint closed"
    std::uint32_t my_cpu = detail::publish_cpu(self);
    auto const start = clock::now();
    if (start >= deadline) return wait_result::timed_out;

    bool spun_out = false;  // spun the whole budget in vain
    if (budget_.count() > 0 && peer_runs_elsewhere(peer, my_cpu)) {
      auto const spin_end = deadline - start > budget_ ? start + budget_ : deadline;
      auto last_read = start;  // the clock is read every ~16 pauses, never after the data came
      for (unsigned i = 1;; ++i) {
        detail::cpu_relax();
        if (ready()) {
          spin_paid(last_read - start);  // short by at most 16 pauses
          return wait_result::ready;
        }
        if (i % 16 != 0) continue;
        if (closed.load(std::memory_order_acquire)) return wait_result::closed;  // SYNC POINT "endpoint closed"
        my_cpu = detail::publish_cpu(self);
        if (!peer_runs_elsewhere(peer, my_cpu)) break;
        last_read = clock::now();
        if (last_read >= spin_end) {
          spun_out = true;
          break;
        }
      }
    }

    auto const sleep_start = clock::now();
    wait_result result = wait_result::timed_out;
    for (bool woke = false;;) {
      self.sleeping.store(1, std::memory_order_relaxed);
      bell.store(1, std::memory_order_relaxed);
      detail::full_fence();  // SYNC POINT "no lost wake-up" (and "endpoint closed"): the bell before the looks
      if (ready()) {
        result = wait_result::ready;
        break;
      }
      if (closed.load(std::memory_order_acquire)) {  // SYNC POINT "endpoint closed"
        result = wait_result::closed;
        break;
      }
      auto const now = clock::now();
      if (now >= deadline) break;
      if (woke) {
        // A wake-up that found nothing: rare from an honest peer, a storm
        // from a hostile one (G6). Past a burst, look again only at a pace.
        woke = false;
        if (auto const pause = wakes_.fruitless(now); pause.count() > 0) {
          detail::pause_for(std::min<clock::duration>(pause, deadline - now));
          continue;
        }
      }
      // Every outcome (wake, EAGAIN, EINTR, timeout) loops back to recheck.
      if (deadline == clock::time_point::max()) {
        futex_wait(bell, 1);
      } else {
        futex_wait(bell, 1, deadline - now);
      }
      woke = true;
    }
    bell.store(0, std::memory_order_relaxed);
    self.sleeping.store(0, std::memory_order_relaxed);
    detail::publish_cpu(self);
    if (result != wait_result::closed) slept(clock::now() - sleep_start, spun_out, result == wait_result::ready);
    return result;
  }

  // Called by the publishing side after it published (index stored): wakes the
  // peer if it sleeps on `bell`. No syscall unless the peer sleeps.
  static void notify(std::atomic<std::uint32_t>& bell, side_state& peer) noexcept {
    detail::full_fence();  // SYNC POINT "no lost wake-up": the index stored before, the bell read after
    if (bell.load(std::memory_order_relaxed) != 0 && bell.exchange(0, std::memory_order_relaxed) != 0) {
      peer.sleeping.store(0, std::memory_order_relaxed);
      futex_wake(bell);
    }
  }

  // Sets `closed` and wakes a thread of this process sleeping on `bell`.
  // Callable from any thread.
  static void interrupt(std::atomic<bool>& closed, std::atomic<std::uint32_t>& bell) noexcept {
    closed.store(true, std::memory_order_seq_cst);  // SYNC POINT "endpoint closed"
    detail::full_fence();  // SYNC POINT "endpoint closed": the flag before the bell
    // Changing the word makes a waiter that is just about to sleep return at once.
    bell.store(0, std::memory_order_seq_cst);
    futex_wake(bell);
  }

 private:
  static bool peer_runs_elsewhere(side_state const& peer, std::uint32_t my_cpu) noexcept {
    if (peer.sleeping.load(std::memory_order_relaxed) != 0) return false;
    return my_cpu == side_state::unknown_cpu || peer.cpu.load(std::memory_order_relaxed) != my_cpu;
  }

  void spin_paid(std::chrono::nanoseconds waited) noexcept {
    if (!policy_.adaptive) return;
    // Grow back quickly: one preempted peer should not cost the fast path for long.
    budget_ = std::min(policy_.max_spin, std::max(2 * budget_, 2 * waited));
  }

  void slept(std::chrono::nanoseconds slept_for, bool spun_out, bool got_data) noexcept {
    if (!policy_.adaptive) return;
    if (got_data && slept_for < policy_.max_spin) {
      // Data came soon after we gave up: a longer spin would have caught it.
      budget_ = std::min(policy_.max_spin, std::max(2 * budget_, 2 * slept_for));
    } else if (spun_out) {
      budget_ /= 2;
      if (budget_ < min_spin) budget_ = std::chrono::nanoseconds::zero();
    }
  }

  // Below this a spin costs more in clock reads than it can save.
  static constexpr std::chrono::nanoseconds min_spin{500};

  wait_policy policy_;
  std::chrono::nanoseconds budget_;
  detail::wake_pacer wakes_;
};

}  // namespace isolate::shm

#endif
