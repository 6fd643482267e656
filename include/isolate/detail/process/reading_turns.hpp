// Leader/follower for a worker that runs several calls at once over the
// rings: the threads of its call pool take turns reading the inbound ring.
// The turn's holder reads until a call arrives, gives the turn up and runs
// that call itself; when it is done it takes the turn back if it is still
// free. So a lone caller's call crosses no thread inside the worker (handing
// each call to a pool thread through a condition variable cost ~12 us a call
// on a 2-vCPU guest: a cross-CPU wake-up every time).
//
// The threads without the turn sleep on the ring's data bell. Giving the turn
// up arms the bell as a sleeping reader would, and wakes nobody: the host
// rings it only if a second call arrives while the first runs, and then the
// followers wake and one of them takes the turn. They also wait on `epoch_`,
// which changes whenever the turn is freed or the serving stops, so a
// follower that looked at a held turn just before it was freed never sleeps
// through the change (futex_waitv: both words are compared as it goes to sleep).
//
// Synchronisation (SYNC POINT "turn freed"): a follower loads epoch_, then
// `held_`, `stopped_`, the ring's closed flag and the bell, then sleeps on
// (bell, epoch); a giver stores held_ = false, then bumps epoch_, then arms
// the bell and looks at the writer's index (SYNC POINT "no lost wake-up" of
// shm/waiter.hpp), ringing the bell itself for a record already there. All
// seq_cst: if the follower saw the turn held, its epoch is stale by the time
// the bell is armed, so it either returns at once or is asleep on the bell
// when the host rings it.
#ifndef ISOLATE_DETAIL_PROCESS_READING_TURNS_HPP
#define ISOLATE_DETAIL_PROCESS_READING_TURNS_HPP

#include "isolate/shm/futex.hpp"
#include "isolate/shm/ring.hpp"

#include <atomic>
#include <cstdint>

namespace isolate::detail {

class reading_turns {
 public:
  // Whether this kernel can take turns this way (futex_waitv, Linux 5.16).
  static bool supported() noexcept { return shm::futex_wait_either_supported(); }

  explicit reading_turns(shm::ring_reader& reader) noexcept : reader_(reader) {}
  reading_turns(const reading_turns&) = delete;
  reading_turns& operator=(const reading_turns&) = delete;

  // Takes the turn if nobody holds it. Only the holder reads.
  bool try_take() noexcept {
    bool held = false;
    if (!held_.compare_exchange_strong(held, true, std::memory_order_seq_cst)) return false;
    reader_.disarm_bell();  // the holder reads or spins: the host need not ring
    return true;
  }

  // The holder gives the turn up (to run the call it read): the next record
  // wakes the followers.
  void give_up() noexcept {
    const std::uint64_t position = reader_.position();  // still ours to read
    held_.store(false, std::memory_order_seq_cst);  // SYNC POINT "turn freed"
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    if (reader_.arm_bell(position)) shm::futex_wake(reader_.data_bell());
  }

  // A thread without the turn sleeps until the turn may be free (or a record
  // came, or the serving stopped); then it tries to take the turn again.
  void wait() noexcept {
    const std::uint32_t epoch = epoch_.load(std::memory_order_seq_cst);  // SYNC POINT "turn freed"
    if (!held_.load(std::memory_order_seq_cst) || stopping()) return;
    auto& bell = reader_.data_bell();
    shm::futex_wait_either(bell, bell.load(std::memory_order_seq_cst), epoch_, epoch);
  }

  // Ends the turns: every follower returns from wait() and sees stopping().
  void stop() noexcept {
    stopped_.store(true, std::memory_order_seq_cst);
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    shm::futex_wake(epoch_);
    shm::futex_wake(reader_.data_bell());
  }
  bool stopping() const noexcept { return stopped_.load(std::memory_order_seq_cst) || reader_.is_closed(); }

 private:
  shm::ring_reader& reader_;
  std::atomic<bool> held_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<std::uint32_t> epoch_{0};
};

}  // namespace isolate::detail

#endif
