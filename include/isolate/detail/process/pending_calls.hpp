// The calls of one worker session that wait for a reply: their states (a
// synchronous caller sleeps on a futex word; an asynchronous call holds its
// completion and its timer) and the table that finds them by call id.
#ifndef ISOLATE_DETAIL_PROCESS_PENDING_CALLS_HPP
#define ISOLATE_DETAIL_PROCESS_PENDING_CALLS_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/link.hpp"
#include "isolate/detail/spin_wait.hpp"
#include "isolate/shm/futex.hpp"
#include "isolate/wire/buffer.hpp"

#include <asio/steady_timer.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <unordered_map>
#include <utility>

namespace isolate::detail {

// A call waiting for its reply. A synchronous caller sleeps on `state`;
// the reader sets it to `done`, or `poked` to hand the reading over.
//
// SYNC POINT "call done": the reader (or the death of the worker) writes
// `reply` or `failure`, then set_done() stores `done` with release; the
// caller's is_done()/wait() loads it with acquire before reading them.
struct pending_call {
  using clock = std::chrono::steady_clock;
  static constexpr std::uint32_t waiting = 0, sleeping = 1, done = 2, poked = 3;
  std::atomic<std::uint32_t> state{waiting};
  wire::buffer* reply = nullptr;            // synchronous: the caller's buffer
  std::unique_ptr<completion> done_async;   // asynchronous calls complete this
  std::exception_ptr failure;
  std::shared_ptr<asio::steady_timer> timer;

  bool is_done() const noexcept { return state.load(std::memory_order_acquire) == done; }  // SYNC POINT "call done"
  void set_done() noexcept {  // SYNC POINT "call done"
    if (state.exchange(done, std::memory_order_acq_rel) == sleeping) shm::futex_wake(state);
  }
  void poke() noexcept {
    std::uint32_t s = state.load(std::memory_order_acquire);
    while (s == waiting || s == sleeping) {
      if (state.compare_exchange_weak(s, poked, std::memory_order_acq_rel)) {
        if (s == sleeping) shm::futex_wake(state);
        return;
      }
    }
  }
  // Waits until done or poked (then back to waiting); false at the deadline.
  bool wait(std::chrono::nanoseconds spin, clock::time_point deadline) noexcept {
    auto settled = [&] {
      std::uint32_t s = state.load(std::memory_order_acquire);
      if (s == poked) state.compare_exchange_strong(s, waiting, std::memory_order_acq_rel);
      return s == done || s == poked;
    };
    if (spin_for(spin, settled)) return true;
    for (;;) {
      std::uint32_t expected = waiting;
      if (!state.compare_exchange_strong(expected, sleeping, std::memory_order_acq_rel) && expected != sleeping) {
        if (settled()) return true;
        continue;
      }
      if (deadline == clock::time_point::max()) {
        shm::futex_wait(state, sleeping);
      } else {
        const auto left = deadline - clock::now();
        if (left <= clock::duration::zero()) {
          expected = sleeping;
          state.compare_exchange_strong(expected, waiting, std::memory_order_acq_rel);
          return settled();
        }
        shm::futex_wait(state, sleeping, std::chrono::duration_cast<std::chrono::nanoseconds>(left));
      }
      if (settled()) return true;
    }
  }
};

// A call whose caller reads the channel from before sending it (call_leading).
struct led_call {
  std::uint64_t id = 0;
  wire::buffer* reply = nullptr;
  // Decodes a large reply straight from the ring, when the caller gave one.
  reply_decoder* decoder = nullptr;
  bool done = false;
  std::exception_ptr undecodable;  // what the decoder threw
};


// The calls waiting for a reply, by call id. Ids are consecutive, so a call
// usually gets the slot `id % slots` of a fixed table: no allocation per call.
// A call whose slot is still taken by an older one goes to a map.
template <class Call>
class pending_table {
 public:
  void insert(std::uint64_t id, Call* call) {
    auto& slot = slots_[id % slots_.size()];
    if (slot.call == nullptr) {
      slot = {id, call};
    } else {
      overflow_.emplace(id, call);
    }
    ++size_;
  }
  Call* find(std::uint64_t id) const {
    const auto& slot = slots_[id % slots_.size()];
    if (slot.call != nullptr && slot.id == id) return slot.call;
    auto found = overflow_.find(id);
    return found == overflow_.end() ? nullptr : found->second;
  }
  // Removes and returns the call, or nullptr if it is not there.
  Call* erase(std::uint64_t id) {
    auto& slot = slots_[id % slots_.size()];
    if (slot.call != nullptr && slot.id == id) {
      --size_;
      return std::exchange(slot.call, nullptr);
    }
    auto found = overflow_.find(id);
    if (found == overflow_.end()) return nullptr;
    Call* call = found->second;
    overflow_.erase(found);
    --size_;
    return call;
  }
  template <class F>
  void for_each(F&& f) const {
    if (size_ == 0) return;
    for (const auto& slot : slots_) {
      if (slot.call != nullptr) f(slot.id, slot.call);
    }
    for (const auto& [id, call] : overflow_) f(id, call);
  }
  void clear() {
    for (auto& slot : slots_) slot.call = nullptr;
    overflow_.clear();
    size_ = 0;
  }

 private:
  struct entry {
    std::uint64_t id = 0;
    Call* call = nullptr;
  };
  std::array<entry, 64> slots_{};
  std::unordered_map<std::uint64_t, Call*> overflow_;
  std::size_t size_ = 0;
};

}  // namespace isolate::detail

#endif
