// isolate::thread: the plugin lives on its own thread(s). Calls are marshalled
// through the same wire format as the process transport, so a plugin that
// works here sees exactly the bytes it will see out of process.
#ifndef ISOLATE_TRANSPORT_THREAD_HPP
#define ISOLATE_TRANSPORT_THREAD_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/codec.hpp"
#include "isolate/detail/plugin_object.hpp"
#include "isolate/detail/spin_wait.hpp"
#include "isolate/error.hpp"
#include "isolate/interface.hpp"
#include "isolate/transport/link.hpp"
#include "isolate/transport/remote.hpp"

#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
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

template <interface Interface>
class thread_link final : public link {
 public:
  thread_link(detail::plugin_factory<Interface> make, const thread::options& options)
      : options_(options) {
    if (options_.concurrency == 0) throw error(errc::unsupported, "isolate::thread needs at least one worker thread");
    // The implementation is made on the first worker, so that thread-affine
    // plugins see one thread from construction on.
    std::promise<void> started;
    auto ready = started.get_future();
    workers_.emplace_back([this, make = std::move(make), &started]() mutable {
      try {
        impl_ = make();
        if (!impl_) throw error(errc::load_failed, "the plugin factory returned no object");
        started.set_value();
      } catch (...) {
        started.set_exception(std::current_exception());
        return;
      }
      serve();
    });
    try {
      ready.get();
    } catch (const std::exception& e) {
      workers_.front().join();
      throw error(errc::load_failed, std::string("the plugin failed to start: ") + e.what());
    }
    for (std::size_t i = 1; i < options_.concurrency; ++i) workers_.emplace_back([this] { serve(); });
  }

  ~thread_link() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_workers();
    for (auto& worker : workers_) worker.join();
    // Calls still queued never ran: fail them rather than leave them hanging.
    for (job* pending : queue_) fail(*pending, std::make_exception_ptr(error(errc::plugin_closed, "the plugin was unloaded before the call ran")));
  }

  void call(wire::buffer& request, wire::buffer& reply) override {
    if (on_worker_thread()) {
      // The plugin's own thread calls it again (a host service it called is
      // calling back): queueing would wait for this very thread, so run it here.
      const auto call = wire::parse(request.bytes(), options_.max_message_size);
      stub<Interface>::handle(*impl_, call, reply, options_.max_message_size);
      return;
    }
    job sync;
    sync.request = &request;
    sync.reply = &reply;
    submit(sync);
    const int worker_cpu = worker_cpu_.load(std::memory_order_relaxed);
    sync.finished.wait(worker_cpu == ::sched_getcpu() ? std::chrono::nanoseconds::zero() : options_.max_spin);
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

 private:
  struct job {
    wire::buffer* request = nullptr;
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
    work_seq_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) work_seq_.notify_all();
  }

  void wake_workers() {
    work_seq_.fetch_add(1, std::memory_order_seq_cst);
    work_seq_.notify_all();
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
      j.finished.set();
    }
  }

  static void fail(job& j, std::exception_ptr failure) {
    j.failure = failure;
    finish(j);
  }

  job* next_job(adaptive_spin& spin) {
    for (;;) {
      const std::uint32_t seen = work_seq_.load(std::memory_order_seq_cst);
      {
        std::lock_guard lock(mutex_);
        if (stopping_) return nullptr;
        if (!queue_.empty()) {
          job* j = queue_.front();
          queue_.pop_front();
          return j;
        }
      }
      const auto began = std::chrono::steady_clock::now();
      if (!spin_for(spin.budget(), [&] { return work_seq_.load(std::memory_order_acquire) != seen; })) {
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        if (work_seq_.load(std::memory_order_seq_cst) == seen) work_seq_.wait(seen, std::memory_order_acquire);
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      }
      spin.waited(std::chrono::steady_clock::now() - began);
    }
  }

  void serve() {
    adaptive_spin spin(options_.max_spin);
    while (job* j = next_job(spin)) {
      // Written only when it changes, so the callers' copy of the line stays valid.
      if (const int cpu = ::sched_getcpu(); worker_cpu_.load(std::memory_order_relaxed) != cpu) {
        worker_cpu_.store(cpu, std::memory_order_relaxed);
      }
      try {
        const auto call = wire::parse(j->request->bytes(), options_.max_message_size);
        stub<Interface>::handle(*impl_, call, *j->reply, options_.max_message_size);
      } catch (...) {
        j->failure = std::current_exception();
      }
      finish(*j);
    }
  }

  thread::options options_;
  plugin_object<Interface> impl_;  // destroyed after the workers are joined
  std::mutex mutex_;
  std::deque<job*> queue_;
  bool stopping_ = false;
  std::atomic<std::uint32_t> work_seq_{0};  // bumped for each submitted job; workers sleep on it
  std::atomic<std::uint32_t> sleepers_{0};  // workers asleep on work_seq_, so submit() can skip the wake syscall
  std::atomic<int> worker_cpu_{-1};         // where a worker last ran, to decide whether spinning pays
  std::vector<std::jthread> workers_;
};

}  // namespace detail

template <interface Interface>
class thread::connection : public detail::remote_connection<Interface> {
 public:
  connection(detail::plugin_factory<Interface> make, const options& opts)
      : detail::remote_connection<Interface>(std::make_unique<detail::thread_link<Interface>>(std::move(make), opts)) {}
};

}  // namespace isolate

#endif
