// isolate::thread: the plugin lives on its own thread(s). Calls are marshalled
// through the same wire format as the process transport, so a plugin that
// works here sees exactly the bytes it will see out of process.
#ifndef ISOLATE_TRANSPORT_THREAD_HPP
#define ISOLATE_TRANSPORT_THREAD_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/capability_table.hpp"
#include "isolate/detail/codec.hpp"
#include "isolate/detail/plugin_object.hpp"
#include "isolate/detail/call_mailbox.hpp"
#include "isolate/detail/scattered_payload.hpp"
#include "isolate/detail/spin_wait.hpp"
#include "isolate/error.hpp"
#include "isolate/interface.hpp"
#include "isolate/shm/futex.hpp"
#include "isolate/detail/link.hpp"
#include "isolate/detail/remote.hpp"

#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace isolate {

struct thread {
  static constexpr bool calls_can_time_out = false;
  struct options {
    // Worker threads serving calls. With more than one, the implementation runs
    // concurrently with itself and must be thread-safe.
    std::size_t concurrency = 1;
    // Longest a waiting thread spins before sleeping in the kernel. Spinning is
    // skipped when the other thread runs on the same CPU (it would only starve it).
    std::chrono::nanoseconds max_spin = std::chrono::microseconds(50);
    std::size_t max_message_size = ISOLATE_DEFAULT_MAX_MESSAGE_SIZE;
  };

  template <interface Interface>
  class connection;
};

namespace detail {

// The link of a thread plugin: its worker threads, the mailbox through which
// one synchronous call at a time reaches them without a mutex, and the queue
// (under mutex_) for asynchronous calls and synchronous ones that find the
// mailbox claimed.
//
// Synchronisation (SYNC POINT labels, the same at both ends; the mailbox's
// own are in detail/call_mailbox.hpp):
//   "work queued": a caller queues a job under mutex_, then bumps work_seq_
//     (seq_cst); a worker reads work_seq_ before it looks at the queue, and
//     sleeps on it only while it has not moved.
//   "worker asleep": a worker counts itself in sleepers_, then looks for work
//     once more (has_call, work_seq_); a caller posts (or bumps work_seq_),
//     then reads sleepers_ (all seq_cst): one of the two sees the other.
//   "job finished": a worker writes a synchronous job's reply or failure,
//     then sets its flag (release); the caller waits for it (acquire) first.
//
// Thread safety: call() and call_async() may be made from any number of
// threads at once, including the plugin's own workers (a call from one of
// them runs inline, since queueing it would wait for that very thread).
// max_message_size() is constant. The link must not be destroyed while a
// thread may still call it (its connection owns it); calls still queued then
// fail with plugin_closed.
template <interface Interface>
class thread_link final : public link {
 public:
  thread_link(detail::plugin_factory<Interface> make, const thread::options& options) : options_(options) {
    if (options_.concurrency == 0) throw error(errc::unsupported, "isolate::thread needs at least one worker thread");
    // The implementation is made on the first worker, so that thread-affine
    // plugins see one thread from construction on.
    std::promise<void> started;
    auto ready = started.get_future();
    workers_.emplace_back([this, make = std::move(make), &started]() mutable {
      try {
        impl_ = make();
        if (!impl_) throw error(errc::load_failed, "the plugin factory returned no object");
        // Objects handed over in calls cross as themselves; those the host
        // receives keep the plugin's library mapped.
        capabilities_ = std::make_shared<capability_table>(capability_table::local_tag{}, impl_.get_deleter().library());
        impl_.get_deleter().start(impl_.get());  // its on_load
        started.set_value();
      } catch (...) {
        started.set_exception(std::current_exception());
        return;
      }
      serve();
      // The plugin's on_stop, on the thread that made it, once no other
      // worker runs a call.
      for (auto n = others_serving_.load(); n != 0; n = others_serving_.load()) others_serving_.wait(n);
      impl_.get_deleter().stop(impl_.get());
    });
    try {
      ready.get();
    } catch (const std::exception& e) {
      workers_.front().join();
      throw start_failure(e);
    }
    for (std::size_t i = 1; i < options_.concurrency; ++i) {
      others_serving_.fetch_add(1);
      try {
        workers_.emplace_back([this] {
          serve();
          others_serving_.fetch_sub(1);
          others_serving_.notify_all();
        });
      } catch (...) {
        others_serving_.fetch_sub(1);
        throw;
      }
    }
  }

  ~thread_link() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_workers();
    for (auto& worker : workers_) worker.join();
    // Calls still waiting never ran: fail them rather than leave them hanging.
    const auto closed =
        std::make_exception_ptr(error(errc::plugin_closed, "the plugin was unloaded before the call ran"));
    mailbox_.close(closed);
    for (job* pending : queue_) fail(*pending, closed);
  }

  void call(wire::buffer& request, wire::buffer& reply) override {
    if (on_worker_thread()) {
      // The plugin's own thread calls it again (a host service it called is
      // calling back): queueing would wait for this very thread, so run it here.
      const auto call = wire::parse(request.bytes(), options_.max_message_size);
      stub<Interface>::handle(*impl_, call, reply, options_.max_message_size);
      return;
    }
    const int cpu = ::sched_getcpu();
    const auto spin = spin_toward_worker(cpu);
    if (mailbox_.try_claim()) {
      const auto ticket = mailbox_.post(request, reply, cpu);
      if (!ticket) {
        mailbox_.release();
        throw error(errc::plugin_closed, "the plugin is unloaded");
      }
      if (sleepers_.load(std::memory_order_seq_cst) > 0) wake_a_worker();  // SYNC POINT "worker asleep"
      mailbox_.wait_for_answer(*ticket, spin);
      mailbox_.take_reply(reply);
      return;
    }
    job sync;
    sync.request = &request;
    sync.reply = &reply;
    submit(sync);
    sync.finished.wait(spin);  // SYNC POINT "job finished"
    if (sync.failure) std::rethrow_exception(sync.failure);
  }

  // A large payload is not gathered: the worker reads it piece by piece
  // straight from the caller's arguments (detail/scattered_payload.hpp),
  // which stay valid while this call waits for its reply.
  void call_streamed(const streamed_call& request, wire::buffer& reply) override {
    scattered_payload payload(request);
    if (on_worker_thread()) {
      stub<Interface>::handle(*impl_, payload.header(), payload.payload(), reply, options_.max_message_size);
      return;
    }
    job sync;
    sync.scattered = &payload;
    sync.reply = &reply;
    submit(sync);
    sync.finished.wait(spin_toward_worker());  // SYNC POINT "job finished"
    if (sync.failure) std::rethrow_exception(sync.failure);
  }

  void call_async(wire::buffer request, std::unique_ptr<completion> done) override {
    auto owned = std::make_unique<job>();
    owned->owned_request = std::move(request);
    owned->request = &owned->owned_request;
    owned->reply = &owned->owned_reply;
    owned->done = std::move(done);
    submit(*owned.release());
  }

  std::size_t max_message_size() const noexcept override { return options_.max_message_size; }
  capability_table* capabilities() noexcept override { return capabilities_.get(); }

 private:
  // A queued call: asynchronous, or synchronous while the mailbox is claimed.
  struct job {
    wire::buffer* request = nullptr;
    scattered_payload* scattered = nullptr;  // instead of request: a synchronous call's large payload
    wire::buffer* reply = nullptr;
    std::unique_ptr<completion> done;  // set for asynchronous calls, which own their job
    wire::buffer owned_request, owned_reply;
    signal_flag finished;              // for synchronous calls
    std::exception_ptr failure;
  };

  void submit(job& j) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) {
        fail(j, std::make_exception_ptr(error(errc::plugin_closed, "the plugin is unloaded")));
        return;
      }
      queue_.push_back(&j);
    }
    // SYNC POINT "work queued" (workers look at the queue when it has moved) and "worker asleep"
    work_seq_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) shm::futex_wake(work_seq_, 1);  // SYNC POINT "worker asleep"
  }

  // One call needs one worker: the one woken serves until it finds no work.
  // The bump makes a worker about to sleep on the old value look again instead.
  void wake_a_worker() {
    work_seq_.fetch_add(1, std::memory_order_seq_cst);  // SYNC POINT "work queued"
    shm::futex_wake(work_seq_, 1);
  }

  void wake_workers() {
    work_seq_.fetch_add(1, std::memory_order_seq_cst);  // SYNC POINT "work queued"
    shm::futex_wake(work_seq_);
  }

  // How long a caller on `cpu` spins for its answer: not at all when the
  // worker last ran there (spinning would only keep it from running).
  std::chrono::nanoseconds spin_toward_worker(int cpu = ::sched_getcpu()) const noexcept {
    return worker_cpu_.load(std::memory_order_relaxed) == cpu ? std::chrono::nanoseconds::zero() : options_.max_spin;
  }

  bool on_worker_thread() const noexcept {
    const auto self = std::this_thread::get_id();
    for (const auto& worker : workers_) {
      if (worker.get_id() == self) return true;
    }
    return false;
  }

  static void finish(job& j) {
    if (j.done) {
      j.done->complete(j.failure, *j.reply);
      delete &j;
    } else {
      j.finished.set();  // SYNC POINT "job finished"
    }
  }

  static void fail(job& j, std::exception_ptr failure) {
    j.failure = failure;
    finish(j);
  }

  void serve() {
    capability_scope objects(capabilities_.get());  // for the calls this thread decodes and answers
    adaptive_spin spin(options_.max_spin);
    wire::buffer reply;  // the mailbox's reply frames are made here, then copied into it
    // The last call came from a caller on this worker's CPU: spinning for its
    // next call would only keep it from running.
    bool caller_here = false;
    // The queue is looked at (under the mutex) only when work_seq_ has moved
    // since it was last found empty.
    std::uint32_t queue_empty_at = work_seq_.load(std::memory_order_relaxed) - 1;  // not looked at yet
    for (;;) {
      // Read before looking for work, so that work arriving after the look
      // changes it and the wait below returns.
      const std::uint32_t seen = work_seq_.load(std::memory_order_seq_cst);  // SYNC POINT "work queued"
      bool worked = false;
      // One call from each source per round: neither starves the other.
      if (const auto ticket = mailbox_.try_take()) {
        caller_here = note_cpu() == mailbox_.caller_cpu();
        try {
          const auto call = wire::parse(mailbox_.request(), options_.max_message_size);
          stub<Interface>::handle(*impl_, call, reply, options_.max_message_size);
          mailbox_.answer(*ticket, reply);
        } catch (...) {
          mailbox_.fail(*ticket, std::current_exception());
        }
        worked = true;
      }
      if (seen != queue_empty_at) {
        job* j = nullptr;
        {
          std::lock_guard lock(mutex_);
          if (stopping_) return;
          if (queue_.empty()) {
            queue_empty_at = seen;
          } else {
            j = queue_.front();
            queue_.pop_front();
          }
        }
        if (j) {
          caller_here = false;  // not known
          note_cpu();
          run(*j);
          worked = true;
        }
      }
      if (!worked) wait_for_work(caller_here ? std::chrono::nanoseconds::zero() : spin.budget(), spin, seen);
    }
  }

  void run(job& j) {
    try {
      if (j.scattered != nullptr) {
        stub<Interface>::handle(*impl_, j.scattered->header(), j.scattered->payload(), *j.reply,
                                options_.max_message_size);
      } else {
        const auto call = wire::parse(j.request->bytes(), options_.max_message_size);
        stub<Interface>::handle(*impl_, call, *j.reply, options_.max_message_size);
      }
    } catch (...) {
      j.failure = std::current_exception();
    }
    finish(j);
  }

  // Spins up to `budget`, then sleeps on work_seq_ until a call is posted or
  // queued; tells `spin` how long that took.
  void wait_for_work(std::chrono::nanoseconds budget, adaptive_spin& spin, std::uint32_t seen) {
    // SYNC POINT "work queued"
    const auto work_arrived = [&] { return mailbox_.has_call() || work_seq_.load(std::memory_order_acquire) != seen; };
    if (spin_for(budget, work_arrived)) {
      spin.waited(std::chrono::nanoseconds::zero());  // no clock read on the way to the call
      return;
    }
    const auto slept_at = std::chrono::steady_clock::now();
    // Announce the sleep, then look again: a caller posts, then reads sleepers_
    // (all sequentially consistent), so one of the two sees the other.
    sleepers_.fetch_add(1, std::memory_order_seq_cst);  // SYNC POINT "worker asleep"
    // SYNC POINT "worker asleep" (has_call and work_seq_), "work queued"
    if (!mailbox_.has_call() && work_seq_.load(std::memory_order_seq_cst) == seen) shm::futex_wait(work_seq_, seen);
    sleepers_.fetch_sub(1, std::memory_order_seq_cst);
    spin.waited(budget + (std::chrono::steady_clock::now() - slept_at));
  }

  // Where a worker last ran, for callers to decide whether spinning pays;
  // written only when it changes, so the callers' copy of the line stays valid.
  int note_cpu() noexcept {
    const int cpu = ::sched_getcpu();
    if (worker_cpu_.load(std::memory_order_relaxed) != cpu) worker_cpu_.store(cpu, std::memory_order_relaxed);
    return cpu;
  }

  thread::options options_;
  plugin_object<Interface> impl_;  // destroyed after the workers are joined
  std::shared_ptr<capability_table> capabilities_;  // local: objects cross as themselves
  std::mutex mutex_;
  std::deque<job*> queue_;
  bool stopping_ = false;
  std::vector<std::jthread> workers_;
  std::atomic<std::size_t> others_serving_{0};  // workers but the first still serving

  call_mailbox mailbox_;
  // Bumped for each queued call (and to wake sleeping workers), which sleep on
  // it; on a line of its own so that queued calls leave the mailbox's alone.
  alignas(ISOLATE_CACHE_LINE) std::atomic<std::uint32_t> work_seq_{0};
  // Read by every call; written only when a worker sleeps, wakes or moves.
  alignas(ISOLATE_CACHE_LINE) std::atomic<std::uint32_t> sleepers_{0};  // so posting can skip the wake syscall
  std::atomic<int> worker_cpu_{-1};
};

}  // namespace detail

// A thread plugin's connection: owns its link (detail::thread_link).
//
// Thread safety: as its link: calls may be made from any number of threads at
// once; the connection must not be destroyed while a thread may still call it.
template <interface Interface>
class thread::connection : public detail::remote_connection<Interface> {
 public:
  connection(detail::plugin_factory<Interface> make, const options& opts)
      : detail::remote_connection<Interface>(std::make_unique<detail::thread_link<Interface>>(std::move(make), opts)) {}
};

}  // namespace isolate

#endif
