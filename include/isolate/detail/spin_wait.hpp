// Waiting between threads of one process: spin while it pays, then sleep in
// the kernel (std::atomic::wait, a futex on Linux). The sleeping side
// announces itself, so the waking side makes a syscall only when needed.
#ifndef ISOLATE_DETAIL_SPIN_WAIT_HPP
#define ISOLATE_DETAIL_SPIN_WAIT_HPP

#include "isolate/detail/config.hpp"
#include "isolate/shm/futex.hpp"
#include "isolate/shm/waiter.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>


namespace isolate::detail {

// Spins until ready() or until `budget` has passed (sized in time: a pause costs
// 25 ns on one machine and 140 on another). Returns ready().
template <class Ready>
bool spin_for(std::chrono::nanoseconds budget, Ready&& ready) {
  if (ready()) return true;
  if (budget <= std::chrono::nanoseconds::zero()) return false;
  const auto deadline = std::chrono::steady_clock::now() + budget;
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      if (ready()) return true;
      shm::detail::cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return ready();
  }
}

// A flag one thread sets once and another waits for, spinning first.
class signal_flag {
 public:
  void set() noexcept {
    if (state_.exchange(set_, std::memory_order_acq_rel) == sleeping_) shm::futex_wake(state_);
  }
  bool is_set() const noexcept { return state_.load(std::memory_order_acquire) == set_; }
  void wait(std::chrono::nanoseconds spin) noexcept {
    wait_until(spin, std::chrono::steady_clock::time_point::max());
  }
  // Returns whether the flag was set before `deadline`.
  bool wait_until(std::chrono::nanoseconds spin, std::chrono::steady_clock::time_point deadline) noexcept {
    if (spin_for(spin, [this] { return is_set(); })) return true;
    std::uint32_t expected = clear_;
    state_.compare_exchange_strong(expected, sleeping_, std::memory_order_acq_rel);
    while (!is_set()) {
      if (deadline == std::chrono::steady_clock::time_point::max()) {
        shm::futex_wait(state_, sleeping_);
      } else {
        const auto left = deadline - std::chrono::steady_clock::now();
        if (left <= std::chrono::nanoseconds::zero()) return is_set();
        shm::futex_wait(state_, sleeping_, std::chrono::duration_cast<std::chrono::nanoseconds>(left));
      }
    }
    return true;
  }

 private:
  static constexpr std::uint32_t clear_ = 0, set_ = 1, sleeping_ = 2;
  std::atomic<std::uint32_t> state_{clear_};
};

// How long a waiter spins before sleeping, adapted to what happened last time:
// if the last wait ended within the spin budget, spinning pays, so spin fully;
// if it did not, halve the spin, down to nothing for an idle peer.
class adaptive_spin {
 public:
  explicit adaptive_spin(std::chrono::nanoseconds max) noexcept : max_(max), budget_(max) {}
  std::chrono::nanoseconds budget() const noexcept { return budget_; }
  void waited(std::chrono::nanoseconds how_long) noexcept {
    budget_ = how_long <= max_ ? max_ : budget_ / 2;
    if (budget_ < max_ / 64) budget_ = std::chrono::nanoseconds::zero();
  }

 private:
  std::chrono::nanoseconds max_;
  std::chrono::nanoseconds budget_;
};

}  // namespace isolate::detail

#endif
