// Shared buffers across the process boundary. Host side: the buffers lent to
// a plugin (the only ones it may name in what it sends back), and the writing
// end of a worker's control socket, through which each buffer's memfd goes to
// that worker once and its release follows. Worker side: the buffers
// received, mapped once each, found by id when a call names them.
#ifndef ISOLATE_DETAIL_PROCESS_BUFFER_SHARING_HPP
#define ISOLATE_DETAIL_PROCESS_BUFFER_SHARING_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/deadline.hpp"
#include "isolate/detail/fork_guard.hpp"
#include "isolate/error.hpp"
#include "isolate/detail/process/control_channel.hpp"
#include "isolate/detail/process/handshake.hpp"
#include "isolate/detail/process/unique_fd.hpp"
#include "isolate/shared_buffer.hpp"
#include "isolate/shm/region.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <system_error>
#include <unordered_map>
#include <vector>

#include <fcntl.h>

namespace isolate::detail {

// The buffers a process plugin has been given, by id, across its restarts:
// what the host accepts back from it. Holds none alive: a buffer the host has
// released stops resolving, even if the plugin still maps it.
class lent_buffers final : public buffer_resolver {
 public:
  void add(const shared_buffer& buffer) {
    const auto& state = shared_buffer_access::state(buffer);
    if (!state->made_here()) return;  // see shared_buffer_state::made_here: never accepted back
    std::lock_guard lock(mutex_);
    if (lent_.size() >= prune_at_) {
      std::erase_if(lent_, [](const auto& entry) { return entry.second.expired(); });
      prune_at_ = std::max<std::size_t>(64, 2 * lent_.size());
    }
    lent_.try_emplace(state->id(), state);
  }

  shared_buffer find(std::uint64_t id, std::uint64_t size) override {
    std::shared_ptr<shared_buffer_state> state;
    {
      std::lock_guard lock(mutex_);
      if (auto found = lent_.find(id); found != lent_.end()) state = found->second.lock();
    }
    if (!state) {
      throw error(errc::protocol_error,
                  fmt::format("the plugin sent shared buffer {:#x}, which the host never shared with it or has "
                              "released since: a plugin may only send back buffers the host gave it and still holds",
                              id));
    }
    if (state->region().size() != size) {
      throw error(errc::protocol_error, fmt::format("the plugin sent shared buffer {:#x} with a size of {} bytes, "
                                                    "but it has {}",
                                                    id, size, state->region().size()));
    }
    return shared_buffer_access::from(std::move(state));
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::weak_ptr<shared_buffer_state>> lent_;
  std::size_t prune_at_ = 64;
};

// The host's writing end of one worker's control socket. Every message the
// host sends after the handshake goes through it, so none interleave; it
// shares buffers (each memfd once) and tells the worker which to forget.
class worker_control final : public buffer_peer, public std::enable_shared_from_this<worker_control> {
 public:
  using clock = std::chrono::steady_clock;

  // How long a buffer's release waits for the socket: a worker that stopped
  // reading it must not hold up the host thread dropping its last handle.
  static constexpr std::chrono::milliseconds forget_timeout{100};

  // `on_failure` is told of a message that could not be sent (the stream is
  // out of step after it): the session kills the worker rather than leave it
  // running without control. Called once, on the thread that failed.
  explicit worker_control(unique_fd socket, std::function<void(std::error_code)> on_failure = {}) noexcept
      : socket_(std::move(socket)), on_failure_(std::move(on_failure)) {}

  std::error_code send(control_type type, std::span<const std::byte> body, clock::time_point deadline) {
    std::unique_lock lock(mutex_, std::defer_lock);
    if (!lock_until(lock, deadline)) return std::make_error_code(std::errc::timed_out);
    return send_locked(type, body, {}, deadline);
  }

  // Sends the worker every buffer of `buffers` it does not have yet, each
  // with its memfd, before the frame that names them: a call, or (`answer`)
  // the host's answer to a call of the plugin's, each occurrence counted.
  // Each buffer sent is entered in `lent`.
  std::error_code share(std::span<const shared_buffer> buffers, lent_buffers& lent, clock::time_point deadline,
                        bool answer = false) {
    std::unique_lock lock(mutex_, std::defer_lock);
    if (!lock_until(lock, deadline)) return std::make_error_code(std::errc::timed_out);
    for (auto it = buffers.begin(); it != buffers.end(); ++it) {
      const auto& state = shared_buffer_access::state(*it);
      if (!state) continue;
      const bool known = state->has_peer(this);
      // A lend for one call goes again with each call (the worker unmapped it
      // after the last), once: the worker counts the calls it is lent for.
      const bool again = (state->lending() & lent_for_one_call) != 0 &&
                         std::none_of(buffers.begin(), it, [&](const shared_buffer& earlier) {
                           return shared_buffer_access::state(earlier) == state;
                         });
      if (!known || again) {
        const auto& buffer = *it;
        lent.add(buffer);
        int fd = state->region().fd();
        unique_fd read_only;
        if ((state->lending() & lent_read_only) != 0) {
          // The same memfd through a read-only open file: the worker cannot map it writable.
          read_only.reset(::open(fmt::format("/proc/self/fd/{}", fd).c_str(), O_RDONLY | O_CLOEXEC));
          if (!read_only) {
            throw error(std::error_code(errno, std::system_category()),
                        fmt::format("cannot lend shared buffer {:#x} read-only: reopening its memfd through "
                                    "/proc/self/fd failed",
                                    state->id()));
          }
          fd = read_only.get();
        }
        const auto body = encode_message(buffer_message{state->id(), state->region().size(), state->lending()});
        if (auto ec = send_locked(control_type::share_buffer, body, std::span<const int>(&fd, 1), deadline)) return ec;
        if (!known) state->add_peer(shared_from_this());
        shared_.fetch_add(1, std::memory_order_relaxed);
      }
      if (answer) state->count_answer(this);
    }
    return {};
  }

  void forget(std::uint64_t id, std::uint64_t answers) noexcept override {
    if (made_in_.forked()) return;  // the socket is the parent's: a message from here would garble its stream
    try {
      std::unique_lock lock(mutex_, std::defer_lock);
      if (!lock_until(lock, clock::now() + forget_timeout)) return;  // the worker keeps the mapping: its memory
      const auto body = encode_message(forget_message{id, answers});
      send_locked(control_type::forget_buffer, body, {}, clock::now() + forget_timeout);
    } catch (...) {
      // Out of memory while encoding the message: the worker keeps the mapping.
    }
  }

  // The worker is gone: nothing more is sent.
  void close() noexcept { closed_.store(true, std::memory_order_relaxed); }

  // In a child of fork(): closes this process's copy of the socket, nothing else.
  void close_descriptor_after_fork() noexcept {
    closed_.store(true, std::memory_order_relaxed);
    socket_.reset();
  }
  int descriptor() const noexcept { return socket_.get(); }

  // How many buffers were sent to this worker (each at most once).
  std::size_t buffers_shared() const noexcept { return shared_.load(std::memory_order_relaxed); }

 private:
  std::error_code send_locked(control_type type, std::span<const std::byte> body, std::span<const int> fds,
                              clock::time_point deadline) {
    if (closed_.load(std::memory_order_relaxed) || made_in_.forked()) {
      return std::make_error_code(std::errc::not_connected);
    }
    std::error_code ec;
    if (fds.empty()) {
      write_message(socket_.get(), static_cast<std::uint32_t>(type), body, time_left(deadline), ec);
    } else {
      write_message_with_fds(socket_.get(), static_cast<std::uint32_t>(type), body, fds, time_left(deadline), ec);
    }
    // A message cut short by a timeout leaves the stream out of step: stop there.
    if (ec && !closed_.exchange(true, std::memory_order_relaxed) && on_failure_) on_failure_(ec);
    return ec;
  }

  std::timed_mutex mutex_;  // one message at a time
  unique_fd socket_;
  std::function<void(std::error_code)> on_failure_;
  fork_guard made_in_;
  std::atomic<bool> closed_{false};
  std::atomic<std::size_t> shared_{0};
};

// In the worker: the buffers the host shared, each mapped once, by id. The
// host's `forget` drops this registry's handle (once the answers it names
// have been decoded); the mapping goes once the plugin's handles are gone too.
class received_buffers final : public buffer_resolver {
 public:
  // The host sends a buffer's memfd before the first frame naming it, but on
  // another channel: a frame may be decoded first and waits this long for it.
  static constexpr std::chrono::seconds arrival_timeout{5};

  // A buffer the host shares, as received on the control socket. The host is
  // trusted, but a descriptor that is not a sealed memfd of the announced size
  // is refused all the same: frames naming it then fail with protocol_error.
  // `lending`: detail::lending bits. A lend for one call is added again for
  // each call naming it (counted), and revoked after the last of them.
  void add(std::uint64_t id, std::uint64_t size, unique_fd fd, std::uint8_t lending = lent_shared) {
    std::error_code ec;
    shm::region region;
    const bool one_call = (lending & lent_for_one_call) != 0;
    if (!fd) {
      ec = std::make_error_code(std::errc::bad_file_descriptor);
    } else {
      region = shm::region::attach(fd.get(), static_cast<std::size_t>(size), ec, (lending & lent_read_only) != 0);
      // Once mapped, no descriptor of it stays in this process for the plugin to map again.
      if (!ec && one_call) region.close_descriptor();
    }
    {
      std::lock_guard lock(mutex_);
      if (ec) {
        refused_.insert_or_assign(id, fmt::format("the host shared buffer {:#x} of {} bytes as a descriptor that "
                                                  "cannot be mapped as such: {}",
                                                  id, size, ec.message()));
      } else if (auto found = buffers_.find(id); found != buffers_.end()) {
        if (found->second.one_call) ++found->second.lends;
      } else {
        buffers_.try_emplace(id, entry{shared_buffer_access::adopt(id, std::move(region)), 0, 0, false, one_call});
      }
    }
    changed_.notify_all();
  }

  // After a call from the host: revokes the buffers lent for one call that
  // this thread's call took (the worker runs it before sending the reply).
  // False if the kernel refused to take one away: the worker must not go on.
  bool revoke_taken() {
    if (taken_for_one_call_.empty()) return true;
    bool revoked = true;
    std::vector<shared_buffer> dropped;  // unmapped once the lock is released
    {
      std::lock_guard lock(mutex_);
      for (const std::uint64_t id : taken_for_one_call_) {
        auto found = buffers_.find(id);
        if (found == buffers_.end() || --found->second.lends > 0) continue;
        revoked = shared_buffer_access::state(found->second.buffer)->revoke() && revoked;
        dropped.push_back(std::move(found->second.buffer));
        buffers_.erase(found);
      }
    }
    taken_for_one_call_.clear();
    return revoked;
  }

  // The host let go of buffer `id` after `answers` of its answers named it.
  void forget(std::uint64_t id, std::uint64_t answers) {
    shared_buffer dropped;  // unmapped (if the plugin holds no handle) once the lock is released
    std::lock_guard lock(mutex_);
    refused_.erase(id);
    auto found = buffers_.find(id);
    if (found == buffers_.end()) return;
    found->second.forgotten = true;
    found->second.answers_expected = answers;
    if (found->second.answers_decoded >= answers) {
      dropped = std::move(found->second.buffer);
      buffers_.erase(found);
    }
  }

  // The host is gone: frames waiting for a buffer fail now.
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    changed_.notify_all();
  }

  // Buffers held for the host (not counting those only the plugin still holds).
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return buffers_.size();
  }

  // For the calls and events the host sends.
  shared_buffer find(std::uint64_t id, std::uint64_t size) override { return take(id, size, false); }

  // For the host's answers to the plugin's calls (host_link), which the host
  // counts: see buffer_peer::forget.
  buffer_resolver& answers() noexcept { return answers_; }

 private:
  struct entry {
    shared_buffer buffer;
    std::uint64_t answers_decoded = 0;
    std::uint64_t answers_expected = 0;
    bool forgotten = false;
    bool one_call = false;   // lent for one call: revoked after it (revoke_taken)
    std::uint64_t lends = 1;  // one_call: calls under way or announced that name it
  };

  class answer_resolver final : public buffer_resolver {
   public:
    explicit answer_resolver(received_buffers& owner) noexcept : owner_(owner) {}
    shared_buffer find(std::uint64_t id, std::uint64_t size) override { return owner_.take(id, size, true); }

   private:
    received_buffers& owner_;
  };

  shared_buffer take(std::uint64_t id, std::uint64_t size, bool answer) {
    std::unique_lock lock(mutex_);
    auto settled = [&] { return closed_ || buffers_.contains(id) || refused_.contains(id); };
    if (!settled()) (void)changed_.wait_for(lock, arrival_timeout, settled);
    if (auto found = buffers_.find(id); found != buffers_.end()) {
      auto& known = found->second;
      if (known.buffer.size() != size) {
        throw error(errc::protocol_error, fmt::format("a frame gives shared buffer {:#x} a size of {} bytes, but "
                                                      "the host shared {}",
                                                      id, size, known.buffer.size()));
      }
      shared_buffer result = known.buffer;
      if (answer) ++known.answers_decoded;
      const bool lent_for_this_call = known.one_call && !answer;
      if (lent_for_this_call) taken_for_one_call_.push_back(id);
      // A lend taken for this call stays until revoke_taken() unmaps it.
      if (known.forgotten && known.answers_decoded >= known.answers_expected && !lent_for_this_call) {
        buffers_.erase(found);
      }
      return result;
    }
    if (auto refused = refused_.find(id); refused != refused_.end()) throw error(errc::protocol_error, refused->second);
    if (closed_) throw error(errc::plugin_closed, "the host is gone");
    throw error(errc::protocol_error,
                fmt::format("a frame names shared buffer {:#x}, which the host did not share within {} s", id,
                            arrival_timeout.count()));
  }

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::unordered_map<std::uint64_t, entry> buffers_;
  std::unordered_map<std::uint64_t, std::string> refused_;
  bool closed_ = false;
  answer_resolver answers_{*this};
  // The one-call lends the call running on this thread decoded.
  static inline thread_local std::vector<std::uint64_t> taken_for_one_call_;
};

}  // namespace isolate::detail

#endif
