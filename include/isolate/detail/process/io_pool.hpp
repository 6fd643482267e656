// The host's io threads, shared by every process plugin: they watch the
// workers' control sockets, exits and seccomp listeners, and run the call
// timers. One pool serves all plugins, so a host with a thousand plugins runs
// a handful of io threads, not a thousand. Each plugin gets a strand, so its
// handlers still run one at a time, in order, as on a thread of its own.
//
// The pool lives while a plugin holds it: the last one to go stops and joins
// its threads, so a host that unloaded its plugins has no thread of ours
// left (the fork server of sandbox.hpp needs a host with one thread).
//
// Nothing that runs on the pool may block for long: a worker's start (a
// restart) runs on a thread of its own (process_link.hpp).
#ifndef ISOLATE_DETAIL_PROCESS_IO_POOL_HPP
#define ISOLATE_DETAIL_PROCESS_IO_POOL_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/fork_guard.hpp"
#include "isolate/error.hpp"

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>

#include <pthread.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace isolate::detail {

class io_pool {
 public:
  using strand = asio::strand<asio::io_context::executor_type>;
  // Enough that one plugin's slow handler (a flood of refused system calls
  // answered a few at a time) does not hold up the others' exits and timers.
  static constexpr unsigned max_threads = 4;

  // The process's pool, made (with its threads) when first needed.
  static std::shared_ptr<io_pool> shared() {
    static std::mutex mutex;
    static std::weak_ptr<io_pool> current;
    std::lock_guard lock(mutex);
    if (auto pool = current.lock(); pool && !pool->made_in_.forked()) return pool;
    // In a child of fork() the parent's pool has no threads here: a new one
    // (the old one is the parent's and is leaked with the links that hold it).
    auto pool = std::shared_ptr<io_pool>(new io_pool(), [](io_pool* p) {
      // Let go inside one of its own handlers: a pool cannot join the
      // thread it runs on, so another thread ends it.
      if (p->runs_this_thread()) {
        std::thread([p] { delete p; }).detach();
      } else {
        delete p;
      }
    });
    current = pool;
    return pool;
  }

  io_pool(const io_pool&) = delete;
  io_pool& operator=(const io_pool&) = delete;

  ~io_pool() {
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }

  // A strand for one plugin: its handlers run one at a time.
  strand make_strand() { return asio::make_strand(io_); }
  std::size_t threads() const noexcept { return threads_.size(); }
  bool runs_this_thread() const noexcept {
    return std::any_of(threads_.begin(), threads_.end(),
                       [](const std::thread& t) { return t.get_id() == std::this_thread::get_id(); });
  }

 private:
  io_pool() {
    const unsigned count = std::clamp(std::thread::hardware_concurrency(), 2u, max_threads);
    try {
      for (unsigned i = 0; i < count; ++i) {
        threads_.emplace_back([this] {
          ::pthread_setname_np(::pthread_self(), "isolate-io");
          io_.run();
        });
      }
    } catch (const std::system_error& e) {
      work_.reset();
      io_.stop();
      for (auto& t : threads_) t.join();
      throw error(errc::load_failed, std::string("cannot start the host's io threads: ") + e.what());
    }
  }

  fork_guard made_in_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{asio::make_work_guard(io_)};
  std::vector<std::thread> threads_;
};

}  // namespace isolate::detail

#endif
