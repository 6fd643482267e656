// The one-slot mailbox through which isolate::thread passes a synchronous
// call to its workers without a mutex (transport/thread.hpp).
#ifndef ISOLATE_DETAIL_CALL_MAILBOX_HPP
#define ISOLATE_DETAIL_CALL_MAILBOX_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/spin_wait.hpp"
#include "isolate/error.hpp"
#include "isolate/shm/futex.hpp"
#include "isolate/wire/buffer.hpp"
#include "isolate/wire/frame.hpp"

#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <span>
#include <thread>
#include <utility>

namespace isolate::detail {

// The way one synchronous call at a time reaches the workers without the
// queue's mutex. A small call travels inside it: the caller writes the request
// line and a worker reads it; the worker writes the reply line and the caller
// reads it. That moves as few cache lines as a bare ping-pong between two
// threads, where following pointers into the caller's buffers would add a miss
// per hop. Calls that find the mailbox claimed by another caller are queued.
//
// Calls are numbered by tickets: `posted` is the last ticket a caller posted,
// `taken` the last one a worker took, `answered` the last one answered. The
// claim allows one call in flight, so posted is always taken or taken + 1.
//
// A ticket is published with a plain store after the data, never with a
// locked read-modify-write: the peer polls that very line, and its read,
// queued behind the writer's request for the line, would take the line away
// between the data stores and a locked instruction, which must then fetch it
// again (one more trip between the cores; measured ~1.4x a raw ping-pong on
// an Intel guest). The store-load fences that follow the stores order them
// against the sleep flags (Dekker), as in shm::waiter.
//
// Synchronisation (SYNC POINT labels, the same at both ends):
//   "claim released": a caller's release() (release) after its last use of
//     the mailbox; the next try_claim() (acquire), and close() waiting for it.
//   "call posted": post() stores `posted` (release) after the request line;
//     a worker loads it (acquire, or seq_cst in has_call) before reading it.
//   "call taken": whoever moves `taken` (acq_rel) owns the call: a worker
//     (try_take), the caller taking it back, or close() failing it.
//   "call answered": publish() stores `answered` (release) after the reply
//     line (and *reply); the caller loads it (acquire) before take_reply().
//   "caller asleep": publish() stores `answered`, full fence, then reads
//     caller_asleep; the caller stores caller_asleep, full fence, then reads
//     `answered`: one sees the other, so no wake-up is lost.
//   "closing seen": post() stores `posted`, full fence, then reads closed_;
//     close() stores closed_, full fence, then reads `posted`: either the
//     caller sees the closing or close() sees (and fails) the call.
//   "worker asleep" (transport/thread.hpp): post's fence and has_call's
//     seq_cst load, against the workers' count of sleepers.
//
// Thread safety: any number of callers may call try_claim() at once; only
// the claim's holder may post, wait_for_answer and take_reply (which ends
// the claim), or release() a claim it holds without a call in flight. Any
// number of workers may call has_call() and try_take() at once; only the
// worker whose try_take() returned the ticket may read request() and
// caller_cpu() and then answer() or fail() it, once. close() is for the owner,
// after its workers have stopped, once.
class call_mailbox {
 public:
  // Callers: claim, post, wait_for_answer, take_reply (which releases the claim).

  // Whether this caller now owns the mailbox; false if another caller does.
  bool try_claim() noexcept {
    // Read first: callers that find it busy leave the line shared, not bouncing.
    // SYNC POINT "claim released" (the exchange)
    return !claimed_.load(std::memory_order_relaxed) && !claimed_.exchange(true, std::memory_order_acquire);
  }
  void release() noexcept { claimed_.store(false, std::memory_order_release); }  // SYNC POINT "claim released"

  // Posts the call in `request`; `reply` receives a reply too big for the
  // mailbox. Returns the call's ticket, or nothing if the mailbox is closed.
  // The fence after the ticket makes the caller's next look (at closed_ here,
  // at the sleeping workers in thread.hpp) sequentially consistent with it:
  // either the caller sees a worker going to sleep or that worker sees the
  // call (call_mailbox::has_call).
  std::optional<std::uint32_t> post(wire::buffer& request, wire::buffer& reply, int caller_cpu) noexcept {
    const auto frame = request.bytes();
    if (frame.size() <= sizeof in_.frame) {
      std::memcpy(in_.frame, frame.data(), frame.size());
      in_.size = static_cast<std::uint32_t>(frame.size());
    } else {
      in_.size = 0;
    }
    in_.request = &request;
    in_.reply = &reply;
    in_.caller_cpu = caller_cpu;
    // Only the claim's holder writes `posted`.
    const std::uint32_t ticket = in_.posted.load(std::memory_order_relaxed) + 1;
    in_.posted.store(ticket, std::memory_order_release);  // SYNC POINT "call posted"
    // SYNC POINT "closing seen" and "worker asleep": the post before the look
    // at closed_ (and the caller's at sleepers).
    shm::detail::full_fence();
    if (closed_.load(std::memory_order_relaxed)) {
      // Closing: take the call back unless close() (or a worker) took it first.
      std::uint32_t last = ticket - 1;
      // SYNC POINT "call taken"
      if (taken_.compare_exchange_strong(last, ticket, std::memory_order_acq_rel)) return std::nullopt;
    }
    return ticket;
  }

  // Spins up to `spin`, then sleeps, until `ticket` is answered.
  void wait_for_answer(std::uint32_t ticket, std::chrono::nanoseconds spin) noexcept {
    auto& word = out_.answered;
    // SYNC POINT "call answered"
    if (spin_for(spin, [&] { return word.load(std::memory_order_acquire) == ticket; })) return;
    // Announce the sleep, then look again: the worker stores the answer, then
    // looks at the announcement, so one of the two sees the other.
    for (;;) {
      in_.caller_asleep.store(1, std::memory_order_relaxed);
      shm::detail::full_fence();                                        // SYNC POINT "caller asleep"
      const std::uint32_t seen = word.load(std::memory_order_acquire);  // SYNC POINT "call answered"
      if (seen == ticket) break;
      shm::futex_wait(word, seen);
    }
    in_.caller_asleep.store(0, std::memory_order_relaxed);
  }

  // The answer to the caller's call: its reply frame, put in `reply`, or the
  // failure rethrown. Releases the claim either way.
  void take_reply(wire::buffer& reply) {
    if (out_.failure) {
      const auto failure = std::exchange(out_.failure, nullptr);
      release();
      std::rethrow_exception(failure);
    }
    if (out_.size != 0) reply.assign({out_.frame, out_.size});  // else the worker wrote it to `reply`
    release();
  }

  // Workers.

  // Whether a posted call waits for a worker (sequentially consistent: see post).
  bool has_call() const noexcept {
    // SYNC POINT "call posted" and "worker asleep"
    return in_.posted.load(std::memory_order_seq_cst) != taken_.load(std::memory_order_relaxed);
  }

  // Takes the posted call for this worker: returns its ticket, or nothing if
  // there is none or another worker took it first.
  std::optional<std::uint32_t> try_take() noexcept {
    // `taken` is read first: a later ticket than the one read here can only be
    // posted after `taken` moves on, and then the exchange fails.
    std::uint32_t last = taken_.load(std::memory_order_acquire);               // SYNC POINT "call taken"
    const std::uint32_t posted = in_.posted.load(std::memory_order_acquire);  // SYNC POINT "call posted"
    if (posted == last) return std::nullopt;
    // SYNC POINT "call taken"
    if (!taken_.compare_exchange_strong(last, posted, std::memory_order_acq_rel, std::memory_order_relaxed)) {
      return std::nullopt;
    }
    return posted;
  }

  // Where the caller of the taken call ran when it posted it.
  int caller_cpu() const noexcept { return in_.caller_cpu; }

  // The frame of the taken call (valid until it is answered).
  std::span<const std::byte> request() const noexcept {
    return in_.size != 0 ? std::span<const std::byte>(in_.frame, in_.size) : in_.request->bytes();
  }

  // Answers the taken call `ticket` with the reply frame in `frame` (which may be moved from).
  void answer(std::uint32_t ticket, wire::buffer& frame) noexcept {
    if (frame.size() <= sizeof out_.frame) {
      std::memcpy(out_.frame, frame.data(), frame.size());
      out_.size = static_cast<std::uint32_t>(frame.size());
    } else {
      *in_.reply = std::move(frame);  // moves the heap block, or copies at most the inline bytes
      out_.size = 0;
    }
    publish(ticket);
  }

  void fail(std::uint32_t ticket, std::exception_ptr failure) noexcept {
    out_.failure = std::move(failure);
    publish(ticket);
  }

  // After the workers have stopped: fails a call posted but never taken, makes
  // later posts fail, and waits until a caller still using the mailbox is done.
  void close(std::exception_ptr failure) noexcept {
    closed_.store(true, std::memory_order_relaxed);
    shm::detail::full_fence();  // SYNC POINT "closing seen": post sees closed_, or this sees its ticket
    const std::uint32_t posted = in_.posted.load(std::memory_order_acquire);  // SYNC POINT "call posted"
    std::uint32_t last = taken_.load(std::memory_order_acquire);               // SYNC POINT "call taken"
    // The caller may be taking its call back at the same moment: whoever moves `taken` owns it.
    // SYNC POINT "call taken"
    if (posted != last && taken_.compare_exchange_strong(last, posted, std::memory_order_acq_rel)) {
      fail(posted, std::move(failure));
    }
    // That caller was answered or will see closed_: it releases soon.
    while (claimed_.load(std::memory_order_acquire)) std::this_thread::yield();  // SYNC POINT "claim released"
  }

 private:
  void publish(std::uint32_t ticket) noexcept {
    out_.answered.store(ticket, std::memory_order_release);  // SYNC POINT "call answered"
    shm::detail::full_fence();  // SYNC POINT "caller asleep": the answer before the look at the announcement
    if (in_.caller_asleep.load(std::memory_order_relaxed) != 0) shm::futex_wake(out_.answered);
  }

  // Written by the caller, read by workers.
  struct alignas(ISOLATE_CACHE_LINE) request_line {
    std::atomic<std::uint32_t> posted{0};
    std::uint32_t size = 0;  // of the frame in `frame`; 0: it is in *request
    wire::buffer* request = nullptr;
    wire::buffer* reply = nullptr;  // where a reply too big for the reply line goes
    int caller_cpu = -1;            // a worker on the same CPU must not spin for the next call
    std::atomic<std::uint32_t> caller_asleep{0};  // the caller waits in the kernel for `answered`
    std::byte frame[ISOLATE_CACHE_LINE - 32];
  };
  // Written by the worker, read by the caller.
  struct alignas(ISOLATE_CACHE_LINE) reply_line {
    std::atomic<std::uint32_t> answered{0};
    std::uint32_t size = 0;  // of the frame in `frame`; 0: it is in *request_line::reply
    std::exception_ptr failure;
    std::byte frame[ISOLATE_CACHE_LINE - 16];
  };
  static_assert(ISOLATE_CACHE_LINE >= 64 && sizeof(request_line) == ISOLATE_CACHE_LINE &&
                    sizeof(reply_line) == ISOLATE_CACHE_LINE,
                "each half of the mailbox is meant to fill one cache line");

  request_line in_;
  reply_line out_;
  // Each on its own line: the claim is touched by callers only, `taken` by
  // workers only, so with one caller and one worker neither line moves.
  alignas(ISOLATE_CACHE_LINE) std::atomic<bool> claimed_{false};
  std::atomic<bool> closed_{false};  // the link is unloading; read by callers, written once
  alignas(ISOLATE_CACHE_LINE) std::atomic<std::uint32_t> taken_{0};
};

}  // namespace isolate::detail

#endif
