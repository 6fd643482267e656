// One run of a process plugin's worker, from spawn to death, seen from the
// host: the handshake, the calls in flight, and what happens when the worker
// dies. isolate::process (transport/process.hpp) restarts sessions.
//
// Who reads the worker's replies: a thread waiting for a synchronous call
// reads them itself when no one else is (it leads), delivering other calls'
// replies on the way; so a lone caller's round trip is one hop each way with
// no thread in between; a caller that leads from before it sends needs no
// entry in the pending table (call_leading). A receiver thread reads while
// only asynchronous calls are outstanding. A leader that got its reply hands
// the reading on.
#ifndef ISOLATE_DETAIL_PROCESS_WORKER_SESSION_HPP
#define ISOLATE_DETAIL_PROCESS_WORKER_SESSION_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/spin_wait.hpp"
#include "isolate/error.hpp"
#include "isolate/detail/process/buffer_sharing.hpp"
#include "isolate/detail/process/child.hpp"
#include "isolate/detail/process/control_channel.hpp"
#include "isolate/detail/process/fd_passing.hpp"
#include "isolate/detail/process/frame_channel.hpp"
#include "isolate/detail/process/handshake.hpp"
#include "isolate/services.hpp"
#include "isolate/transport/process.hpp"
#include "isolate/shm/futex.hpp"
#include "isolate/shm/region.hpp"
#include "isolate/shm/ring.hpp"
#include "isolate/detail/link.hpp"
#include "isolate/wire/frame.hpp"

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace isolate {

namespace detail {

struct launch_spec {
  std::filesystem::path plugin;
  std::string interface_name;
  std::uint64_t fingerprint = 0;
  process::options options;
  host_services services;  // what the plugin may call back
  // The shared buffers lent to the plugin, kept across restarts (copies of the spec share it).
  std::shared_ptr<lent_buffers> lent = std::make_shared<lent_buffers>();
};

inline std::filesystem::path find_worker(const launch_spec& spec) {
  namespace fs = std::filesystem;
  if (!spec.options.worker.empty()) return spec.options.worker;
  std::vector<fs::path> tried;
  tried.push_back(fs::absolute(spec.plugin).parent_path() / "isolate-worker");
  if (const char* env = std::getenv("ISOLATE_WORKER"); env != nullptr && *env != '\0') tried.emplace_back(env);
  std::error_code ec;
  const auto self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) tried.push_back(self.parent_path() / "isolate-worker");
  for (const auto& candidate : tried) {
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  std::string list;
  for (const auto& candidate : tried) list += "\n  " + candidate.string();
  throw error(errc::load_failed, "cannot find the isolate-worker program; looked for:" + list +
                                     "\nbuild it with isolate_add_plugin() or set process::options::worker");
}

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

// One run of the worker process.
class worker_session : public std::enable_shared_from_this<worker_session> {
 public:
  using clock = std::chrono::steady_clock;
  using death_handler = std::function<void(const std::shared_ptr<worker_session>&)>;

  worker_session(const launch_spec& spec, asio::io_context& io) : spec_(spec), io_(io) {}
  worker_session(const worker_session&) = delete;
  worker_session& operator=(const worker_session&) = delete;

  ~worker_session() {
    {
      std::lock_guard lock(pending_mutex_);
      stopping_ = true;
    }
    receiver_cv_.notify_all();
    channel_.close();
    if (receiver_.joinable()) receiver_.join();
  }

  // Spawns the worker, hands it the plugin and the rings, and waits until it
  // has loaded the plugin. Throws load_failed, fingerprint_mismatch or timeout.
  void start(death_handler on_death) {
    on_death_ = std::move(on_death);
    const auto& o = spec_.options;
    const auto deadline = clock::now() + o.load_timeout;

    std::error_code ec;
    auto [control, worker_end] = make_socket_pair(ec);
    if (ec) throw error(errc::load_failed, "cannot create the control socket: " + ec.message());
    unique_fd data, worker_data;
    shm::region region;
    if (o.shared_memory) {
      const std::size_t size = shm::duplex_layout::bytes_needed(o.ring_capacity);
      region = shm::region::create(size, "isolate-rings", ec);
      if (ec) throw error(errc::load_failed, "cannot create the shared memory for the rings: " + ec.message());
      shm::duplex_layout::format(region.bytes(), o.ring_capacity, ec);
      if (ec) throw error(errc::load_failed, fmt::format("ring capacity {} is not usable: {}", o.ring_capacity, ec.message()));
    } else {
      std::tie(data, worker_data) = make_socket_pair(ec);
      if (ec) throw error(errc::load_failed, "cannot create the data socket: " + ec.message());
    }

    spawn_options spawn;
    spawn.program = find_worker(spec_).string();
    spawn.args = {"--isolate-control-fd=3", fmt::format("--isolate-parent={}", ::getpid())};
    spawn.inherit_fds = {{worker_end.get(), 3}};
    child_ = child_process::spawn(spawn, ec);
    if (ec) throw error(errc::load_failed, fmt::format("cannot start the worker '{}': {}", spawn.program, ec.message()));
    worker_end.reset();
    control_ = std::move(control);

    hello_message hello;
    hello.plugin_path = std::filesystem::absolute(spec_.plugin).string();
    hello.interface_name = spec_.interface_name;
    hello.fingerprint = spec_.fingerprint;
    hello.shared_memory = o.shared_memory;
    hello.ring_capacity = o.ring_capacity;
    hello.max_message_size = o.max_message_size;
    hello.concurrency = static_cast<std::uint32_t>(o.concurrency);
    hello.max_spin_ns = o.wait.max_spin.count();
    for (const auto& service : spec_.services.entries()) {
      hello.services.push_back({std::string(service.name), service.fingerprint});
    }
    write_message(control_.get(), static_cast<std::uint32_t>(control_type::hello), encode_message(hello),
                  time_left(deadline), ec);
    if (ec) fail_start(fmt::format("cannot send the plugin to the worker: {}", ec.message()));
    const int passed = o.shared_memory ? region.fd() : worker_data.get();
    const std::byte mark{1};
    send_with_fds(control_.get(), std::span<const std::byte>(&mark, 1), std::span<const int>(&passed, 1),
                  time_left(deadline), ec);
    if (ec) fail_start(fmt::format("cannot send the channel to the worker: {}", ec.message()));
    worker_data.reset();

    auto answer = read_message(control_.get(), 64 * 1024, time_left(deadline), ec);
    if (ec == std::errc::timed_out) {
      child_.kill(SIGKILL, ec);
      child_.wait_exit(std::chrono::seconds(5), ec);
      throw error(errc::timeout, fmt::format("the plugin '{}' did not finish loading within {} ms",
                                             spec_.plugin.string(), o.load_timeout.count()));
    }
    if (ec) fail_start("the worker did not answer");
    if (answer.type == static_cast<std::uint32_t>(control_type::failed)) {
      const auto failure = decode_message<failed_message>(answer.body);
      child_.wait_exit(std::chrono::seconds(5), ec);
      const bool known = failure.code >= static_cast<std::int32_t>(errc::protocol_error) &&
                         failure.code <= static_cast<std::int32_t>(errc::quarantined);
      throw error(known ? static_cast<errc>(failure.code) : errc::load_failed, failure.message);
    }
    if (answer.type != static_cast<std::uint32_t>(control_type::ready)) {
      child_.kill(SIGKILL, ec);
      throw error(errc::protocol_error, "the worker answered the handshake with an unknown message");
    }

    channel_ = o.shared_memory
                   ? frame_channel::over_rings(std::move(region), o.ring_capacity, shm::duplex_side::host, o.wait,
                                               o.max_message_size)
                   : frame_channel::over_socket(std::move(data), o.max_message_size);
    receiver_ = std::thread([this] { receive_loop(); });
    // Asio owns the socket on the io thread; shutdown writes through a duplicate.
    control_writer_ = std::make_shared<worker_control>(duplicate_fd(control_.get(), ec));
    control_socket_.emplace(io_, asio::local::stream_protocol(), control_.release());
    watch_control();
    child_.async_wait_exit(io_.get_executor(),
                           [self = shared_from_this()](std::error_code wait_error, exit_status status) {
                             self->on_exit(wait_error, status);
                           });
  }

  pid_t pid() const noexcept { return child_.pid(); }
  bool alive() const noexcept { return !dead_.load(std::memory_order_acquire); }
  // Killed (or asked to stop) and about to die: new calls should wait for what comes next.
  bool doomed() const noexcept { return doomed_.load(std::memory_order_acquire); }
  // Why the worker died: the code and message its pending calls failed with.
  std::pair<errc, std::string> death() const {
    std::lock_guard lock(pending_mutex_);
    return {death_code_, death_message_};
  }

  // Sends the worker the memfds of `buffers` it does not have yet, before a
  // call (or, `answer`, an answer to the plugin) naming them; records them as
  // lent to the plugin.
  void share_buffers(std::span<const shared_buffer> buffers, clock::time_point deadline, bool answer = false) {
    if (const auto ec = control_writer_->share(buffers, *spec_.lent, deadline, answer)) {
      fail_control(ec, "cannot share a buffer with the worker");
    }
  }

  // Returns once the worker has handled every control message sent before
  // (buffers released by then are unmapped, unless the plugin holds them).
  void sync_control(clock::time_point deadline) {
    const std::uint64_t token = sync_sent_.fetch_add(1, std::memory_order_relaxed) + 1;
    const auto body = encode_message(sync_message{token});
    if (const auto ec = control_writer_->send(control_type::sync, body, deadline)) {
      fail_control(ec, "cannot reach the worker's control socket");
    }
    std::unique_lock lock(pending_mutex_);
    if (!synced_cv_.wait_until(lock, deadline, [&] { return synced_ >= token || exited_; })) {
      throw error(errc::timeout, "the worker did not answer on its control socket in time");
    }
    if (synced_ < token) throw error(death_code_, death_message_);
  }

  // How many buffers were sent to this worker.
  std::size_t buffers_shared() const noexcept { return control_writer_ ? control_writer_->buffers_shared() : 0; }

  void call(wire::buffer& request, wire::buffer& reply, clock::time_point deadline, std::chrono::milliseconds timeout) {
    call_sending(
        [&](std::uint64_t id, std::exception_ptr&) {
          wire::set_call_id(request, id);
          return channel_.send(request.bytes(), deadline);
        },
        reply, deadline, timeout);
  }

  // A call with a large payload, written straight into the channel.
  void call(const streamed_call& request, wire::buffer& reply, clock::time_point deadline,
            std::chrono::milliseconds timeout) {
    call_sending([&](std::uint64_t id, std::exception_ptr& thrown) { return channel_.send(request, id, deadline, thrown); },
                 reply, deadline, timeout);
  }

  void call_async(wire::buffer request, std::unique_ptr<completion> done, clock::time_point deadline,
                  std::chrono::milliseconds timeout) {
    auto owned = std::make_unique<pending_call>();
    owned->done_async = std::move(done);
    auto* call = owned.get();
    const std::uint64_t id = enroll(*call, std::move(owned));
    wire::set_call_id(request, id);
    if (deadline != clock::time_point::max()) {
      auto timer = std::make_shared<asio::steady_timer>(io_, deadline);
      timer->async_wait([weak = weak_from_this(), id, ms = timeout](std::error_code ec) {
        auto self = weak.lock();
        if (ec || !self) return;
        if (auto expired = self->take(id)) self->finish(*expired, std::make_exception_ptr(self->call_expired(ms)));
      });
      call->timer = std::move(timer);
    }
    try {
      settle_send(id, channel_.send(request.bytes(), deadline));
    } catch (...) {
      // settle_send has already failed the call through its completion.
      return;
    }
    receiver_cv_.notify_one();
  }

  // Kills the worker; pending calls fail with `reason` (the first reason given wins).
  void kill(errc reason, std::string why) {
    {
      std::lock_guard lock(pending_mutex_);
      if (!kill_reason_) {
        kill_reason_ = reason;
        kill_message_ = std::move(why);
      }
    }
    doomed_.store(true, std::memory_order_release);
    std::error_code ec;
    child_.kill(SIGKILL, ec);
  }

  // Asks the worker to exit, then makes sure it has.
  void stop() {
    {
      std::lock_guard lock(pending_mutex_);
      if (!kill_reason_) {
        kill_reason_ = errc::plugin_closed;
        kill_message_ = "the plugin was unloaded";
      }
    }
    doomed_.store(true, std::memory_order_release);
    std::error_code ec;
    if (control_writer_) control_writer_->send(control_type::shutdown, {}, clock::now() + std::chrono::milliseconds(100));
    std::unique_lock lock(pending_mutex_);
    if (!exited_cv_.wait_for(lock, std::chrono::seconds(2), [&] { return exited_; })) {
      lock.unlock();
      child_.kill(SIGKILL, ec);
      lock.lock();
      exited_cv_.wait_for(lock, std::chrono::seconds(5), [&] { return exited_; });
    }
  }

 private:
  // A call waiting for its reply. A synchronous caller sleeps on `state`;
  // the reader sets it to `done`, or `poked` to hand the reading over.
  struct pending_call {
    static constexpr std::uint32_t waiting = 0, sleeping = 1, done = 2, poked = 3;
    std::atomic<std::uint32_t> state{waiting};
    wire::buffer* reply = nullptr;            // synchronous: the caller's buffer
    std::unique_ptr<completion> done_async;   // asynchronous calls complete this
    std::exception_ptr failure;
    std::shared_ptr<asio::steady_timer> timer;

    bool is_done() const noexcept { return state.load(std::memory_order_acquire) == done; }
    void set_done() noexcept {
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
    bool done = false;
  };

  void on_synced(std::span<const std::byte> body) {
    sync_message answer;
    try {
      answer = decode_message<sync_message>(body);
    } catch (const error&) {
      return;  // a garbled answer: its sync times out
    }
    {
      std::lock_guard lock(pending_mutex_);
      synced_ = std::max(synced_, std::min(answer.token, sync_sent_.load(std::memory_order_relaxed)));
    }
    synced_cv_.notify_all();
  }

  // A control message could not be sent: the worker died or stopped reading.
  [[noreturn]] void fail_control(std::error_code ec, const char* what) {
    if (ec == std::errc::timed_out) {
      kill(errc::timeout, "the plugin was killed because its worker stopped reading its control socket");
      throw error(errc::timeout, fmt::format("{}: the worker stopped reading its control socket", what));
    }
    std::lock_guard lock(pending_mutex_);
    if (exited_) throw error(death_code_, death_message_);
    if (kill_reason_) throw error(*kill_reason_, kill_message_);
    throw error(errc::plugin_crashed, fmt::format("{}: {}", what, ec.message()));
  }

  // A synchronous call: `send(id, thrown)` puts it in the channel (setting
  // `thrown` if the arguments' serialisation threw meanwhile).
  template <class Send>
  void call_sending(Send&& send, wire::buffer& reply, clock::time_point deadline, std::chrono::milliseconds timeout) {
    if (leader_thread_.load(std::memory_order_acquire) != std::this_thread::get_id() && reader_mutex_.try_lock()) {
      call_leading(send, reply, deadline, timeout);
      return;
    }
    pending_call call;
    call.reply = &reply;
    const std::uint64_t id = enroll(call);
    std::exception_ptr thrown;
    settle_send(id, send(id, thrown));
    await(call, id, deadline, timeout);
    if (thrown) std::rethrow_exception(thrown);  // rather than the plugin's complaint about the zeros
    if (call.failure) std::rethrow_exception(call.failure);
  }

  // A synchronous call whose caller reads the channel from before sending it
  // until its reply (the usual case: one caller at a time). No one else can
  // read the reply, so the call needs no entry in `pending_` and no lock on
  // the way back; on_exit does not know it, so the caller finds out about a
  // death itself (the channel closes). Called holding reader_mutex_.
  template <class Send>
  void call_leading(Send& send, wire::buffer& reply, clock::time_point deadline, std::chrono::milliseconds timeout) {
    led_call own{last_call_id_.fetch_add(1, std::memory_order_relaxed) + 1, &reply};
    std::exception_ptr thrown;
    channel_status sent = channel_status::closed;
    channel_status status = channel_status::closed;
    {
      const reading held(*this, &own);
      if (!dead_.load(std::memory_order_acquire)) sent = status = send(own.id, thrown);
      if (sent == channel_status::ok) status = pump([&] { return own.done; }, deadline);
    }
    if (!own.done) fail_led(sent, status, timeout);
    if (thrown) std::rethrow_exception(thrown);  // rather than the plugin's complaint about the zeros
  }

  // A led call got no reply: the channel timed out, closed or broke.
  [[noreturn]] void fail_led(channel_status sent, channel_status status, std::chrono::milliseconds timeout) {
    if (sent == channel_status::timed_out) throw calls_unread();
    if (status == channel_status::timed_out) throw call_expired(timeout);
    // Closed or corrupted: the worker is dead or being killed; fail with what on_exit records.
    std::unique_lock lock(pending_mutex_);
    if (!exited_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return exited_; })) {
      lock.unlock();
      kill(errc::protocol_error, "the plugin was killed because it closed its channel");
      lock.lock();
      exited_cv_.wait(lock, [&] { return exited_; });
    }
    throw error(death_code_, death_message_);
  }

  [[noreturn]] void fail_start(const std::string& what) {
    std::error_code ec;
    auto status = child_.wait_exit(std::chrono::seconds(2), ec);
    if (!status) {
      child_.kill(SIGKILL, ec);
      status = child_.wait_exit(std::chrono::seconds(5), ec);
    }
    throw error(errc::load_failed, fmt::format("{}: the worker {} while loading '{}'", what,
                                               status ? status->describe() : std::string("did not exit"),
                                               spec_.plugin.string()));
  }

  std::uint64_t enroll(pending_call& call, std::unique_ptr<pending_call> owned = nullptr) {
    std::lock_guard lock(pending_mutex_);
    if (dead_.load(std::memory_order_relaxed)) throw error(death_code_, death_message_);
    const std::uint64_t id = last_call_id_.fetch_add(1, std::memory_order_relaxed) + 1;
    pending_.insert(id, &call);
    if (owned) {
      owned_.emplace(id, std::move(owned));
      ++async_pending_;
    }
    return id;
  }

  // Removes a synchronous call that has not been answered; false if it already was.
  bool withdraw(std::uint64_t id) {
    std::lock_guard lock(pending_mutex_);
    return pending_.erase(id) != nullptr;
  }

  // Removes an asynchronous call that has not been answered, handing it to the caller.
  std::unique_ptr<pending_call> take(std::uint64_t id) {
    std::lock_guard lock(pending_mutex_);
    auto found = owned_.find(id);
    if (found == owned_.end()) return nullptr;
    pending_.erase(id);
    auto call = std::move(found->second);
    owned_.erase(found);
    --async_pending_;
    return call;
  }

  // After sending call `id`: if the send failed, fails the call (and throws).
  void settle_send(std::uint64_t id, channel_status status) {
    if (status == channel_status::ok) return;
    std::exception_ptr failure;
    if (status == channel_status::timed_out) {
      failure = std::make_exception_ptr(calls_unread());
    } else {
      std::lock_guard lock(pending_mutex_);
      failure = std::make_exception_ptr(error(kill_reason_.value_or(errc::plugin_crashed),
                                              kill_reason_ ? kill_message_ : "the plugin's channel is closed"));
    }
    if (auto owned = take(id)) {
      finish(*owned, failure);
      std::rethrow_exception(failure);
    }
    if (withdraw(id)) std::rethrow_exception(failure);
    // Otherwise the call was failed by on_exit meanwhile; its caller sees that.
  }

  void finish(pending_call& call, std::exception_ptr failure) {
    if (call.done_async) {
      wire::buffer none;
      if (call.timer) asio::post(io_, [timer = call.timer] { timer->cancel(); });
      call.done_async->complete(failure, none);
    } else {
      call.failure = failure;
      call.set_done();
    }
  }

  // Waits for a synchronous call's reply, reading the channel whenever no one else is.
  void await(pending_call& call, std::uint64_t id, clock::time_point deadline, std::chrono::milliseconds timeout) {
    if (leader_thread_.load(std::memory_order_acquire) == std::this_thread::get_id()) {
      // A call from a host service that this thread runs for the plugin: keep reading here.
      const auto status = pump([&] { return call.is_done(); }, deadline);
      if (!call.is_done() && status == channel_status::timed_out) expire(call, id, timeout);
      while (!call.is_done()) call.wait(std::chrono::nanoseconds::zero(), clock::time_point::max());
      return;
    }
    while (!call.is_done()) {
      if (reader_mutex_.try_lock()) {
        const auto status = lead([&] { return call.is_done(); }, deadline);
        if (status == channel_status::ok || call.is_done()) continue;
        if (status == channel_status::timed_out) {
          expire(call, id, timeout);
          return;
        }
        // Closed or corrupted: the worker dies and on_exit fails the call.
        call.wait(std::chrono::nanoseconds::zero(), clock::time_point::max());
        continue;
      }
      // Another thread reads: the answer comes through it, or it pokes us to
      // read once it is done. Announce first, then look again: a reader that
      // let go just before the announcement is seen by the second try_lock
      // (hand_over checks the announcements after letting go).
      wanting_lead_.fetch_add(1, std::memory_order_seq_cst);
      if (reader_mutex_.try_lock()) {
        wanting_lead_.fetch_sub(1, std::memory_order_seq_cst);
        reader_mutex_.unlock();
        continue;
      }
      // No spinning here: the reader and the worker already hold a CPU each on a small machine.
      const bool settled = call.wait(std::chrono::nanoseconds::zero(), deadline);
      wanting_lead_.fetch_sub(1, std::memory_order_seq_cst);
      if (!settled) {
        expire(call, id, timeout);
        return;
      }
    }
  }

  void expire(pending_call& call, std::uint64_t id, std::chrono::milliseconds timeout) {
    if (!withdraw(id)) {
      // Answered or failed at the last moment: take that outcome.
      while (!call.is_done()) call.wait(std::chrono::nanoseconds::zero(), clock::time_point::max());
      return;
    }
    throw call_expired(timeout);
  }

  // A call ran past its time: kills the worker; the error the call fails with.
  error call_expired(std::chrono::milliseconds timeout) {
    kill(errc::timeout, fmt::format("the plugin was killed because a call did not return within {} ms", timeout.count()));
    return error(errc::timeout, fmt::format("the call did not return within {} ms", timeout.count()));
  }

  // A call could not be sent in time: kills the worker; the error the call fails with.
  error calls_unread() {
    kill(errc::timeout, "the plugin was killed because it stopped reading calls");
    return error(errc::timeout, "the call could not be sent in time: the plugin is not reading");
  }

  // Reads and delivers frames (holding reader_mutex_, which it releases)
  // until `enough()`, the deadline, or the channel fails.
  template <class Enough>
  channel_status lead(Enough&& enough, clock::time_point deadline) {
    const reading held(*this);
    return pump(enough, deadline);
  }

  // The lead of a thread that holds reader_mutex_, from construction to
  // destruction, when it hands the reading on (even if reading threw).
  class reading {
   public:
    explicit reading(worker_session& session, led_call* own = nullptr) noexcept : session_(session) {
      session_.leader_active_.store(true, std::memory_order_seq_cst);
      session_.leader_thread_.store(std::this_thread::get_id(), std::memory_order_release);
      session_.led_ = own;
    }
    ~reading() {
      session_.led_ = nullptr;
      session_.leader_thread_.store(std::thread::id(), std::memory_order_release);
      session_.hand_over();
    }
    reading(const reading&) = delete;
    reading& operator=(const reading&) = delete;

   private:
    worker_session& session_;
  };

  // The reading itself, by the thread that holds reader_mutex_.
  template <class Enough>
  channel_status pump(Enough&& enough, clock::time_point deadline) {
    channel_status status = channel_status::ok;
    wire::buffer frame;
    while (!enough()) {
      status = channel_.receive(frame, deadline);
      if (status != channel_status::ok) break;
      if (!dispatch(frame)) {
        status = channel_status::corrupted;
        break;
      }
    }
    if (status == channel_status::corrupted) {
      kill(errc::protocol_error, protocol_violation_.empty()
                                     ? "the plugin broke the protocol: the shared-memory ring holds invalid data"
                                     : protocol_violation_);
    }
    return status;
  }

  // The leader is done: wake one synchronous caller still waiting to read its
  // own reply, or the receiver if only asynchronous calls remain.
  // The common case, a lone caller, takes no lock: the fence orders letting
  // go before reading the counters, against their writers' read-modify-writes.
  void hand_over() {
    leader_active_.store(false, std::memory_order_seq_cst);
    reader_mutex_.unlock();
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (wanting_lead_.load(std::memory_order_seq_cst) == 0 && async_pending_.load(std::memory_order_seq_cst) == 0 &&
        !drain_requested_.load(std::memory_order_seq_cst)) {
      return;
    }
    std::lock_guard lock(pending_mutex_);
    pending_call* waiting = nullptr;
    pending_.for_each([&](std::uint64_t, pending_call* call) {
      if (waiting == nullptr && call->reply != nullptr && !call->is_done()) waiting = call;
    });
    if (waiting != nullptr) {
      waiting->poke();
      return;
    }
    if (async_pending_ > 0 || drain_requested_) receiver_cv_.notify_one();
  }

  // Reads while only asynchronous calls are outstanding, and drains frames
  // the worker rang the doorbell for (events, service calls) when no one reads.
  void receive_loop() {
    for (;;) {
      {
        std::unique_lock lock(pending_mutex_);
        receiver_cv_.wait(lock, [&] { return stopping_ || ((async_pending_ > 0 || drain_requested_) && !leader_active_); });
        if (stopping_) return;
      }
      if (!reader_mutex_.try_lock()) continue;
      bool asynchronous = false;
      {
        std::lock_guard lock(pending_mutex_);
        drain_requested_.store(false);
        asynchronous = async_pending_ > 0;
      }
      const auto status = lead(
          [&] {
            std::lock_guard lock(pending_mutex_);
            return stopping_ || wanting_lead_.load(std::memory_order_acquire) > 0 ||
                   (asynchronous && async_pending_ == 0);
          },
          // Short slices while calls are outstanding, so a synchronous caller
          // that wants to read is not kept waiting; a drain stops when the ring is empty.
          asynchronous ? clock::now() + std::chrono::milliseconds(2) : clock::now());
      if (status == channel_status::closed || status == channel_status::corrupted) return;
    }
  }

  void watch_control() {
    async_read_message(*control_socket_, 1024,
                       [weak = weak_from_this()](std::error_code ec, control_message message) {
                         auto self = weak.lock();
                         if (ec || !self) return;  // the worker is gone: its exit is handled by on_exit
                         if (message.type == static_cast<std::uint32_t>(control_type::doorbell)) {
                           {
                             std::lock_guard lock(self->pending_mutex_);
                             self->drain_requested_ = true;
                           }
                           self->receiver_cv_.notify_one();
                         } else if (message.type == static_cast<std::uint32_t>(control_type::synced)) {
                           self->on_synced(message.body);
                         }
                         self->watch_control();
                       });
  }

  // Delivers one frame read from the worker; false if it breaks the protocol.
  bool dispatch(wire::buffer& frame) {
    wire::frame_view view;
    try {
      view = wire::parse(frame.bytes(), spec_.options.max_message_size);
    } catch (const error& e) {
      protocol_violation_ = std::string("the plugin broke the protocol: ") + e.what();
      return false;
    }
    if (view.header.kind == wire::frame_kind::call || view.header.kind == wire::frame_kind::event) {
      return serve(std::move(frame));
    }
    if (view.header.service != 0) {
      protocol_violation_ = fmt::format("the plugin broke the protocol: a reply frame for service {}",
                                        static_cast<unsigned>(view.header.service));
      return false;
    }
    if (led_ != nullptr && view.header.call_id == led_->id) {
      std::swap(*led_->reply, frame);
      led_->done = true;
      return true;
    }
    std::unique_ptr<pending_call> owned;
    {
      std::lock_guard lock(pending_mutex_);
      pending_call* call = pending_.erase(view.header.call_id);
      if (call == nullptr) {
        protocol_violation_ = fmt::format("the plugin broke the protocol: a reply to call {}, which is not pending",
                                          view.header.call_id);
        return false;
      }
      if (call->reply != nullptr) {
        std::swap(*call->reply, frame);
        call->set_done();
        return true;
      }
      auto node = owned_.extract(view.header.call_id);
      owned = std::move(node.mapped());
      --async_pending_;
    }
    if (owned->timer) asio::post(io_, [timer = owned->timer] { timer->cancel(); });
    owned->done_async->complete(nullptr, frame);
    return true;
  }

  // Runs a call (or event) from the plugin on the host's object, on this
  // thread, and sends the answer. The object may call the plugin again.
  bool serve(wire::buffer frame) {
    const auto view = wire::parse(frame.bytes(), spec_.options.max_message_size);
    const auto& services = spec_.services.entries();
    if (view.header.service == 0 || view.header.service > services.size()) {
      protocol_violation_ = fmt::format("the plugin broke the protocol: a call to service {}, which the host does "
                                        "not provide", static_cast<unsigned>(view.header.service));
      return false;
    }
    const auto& service = services[view.header.service - 1u];
    wire::buffer reply;
    attachment_scope attached;  // shared buffers in the answer, sent to the worker before it
    {
      resolution_scope from(spec_.lent.get());  // the plugin may only name buffers lent to it
      service.handle(service.object, view, reply, spec_.options.max_message_size);
    }
    if (view.header.kind == wire::frame_kind::event) return true;
    if (!attached.buffers().empty()) {
      try {
        share_buffers(attached.buffers(), clock::now() + spec_.options.call_timeout, true);
      } catch (const error&) {
        // The worker is going away; the plugin's call fails with it.
      }
    }
    const auto status = channel_.send(reply.bytes(), clock::now() + spec_.options.call_timeout);
    if (status == channel_status::timed_out) {
      kill(errc::timeout, "the plugin was killed because it stopped reading the host's answers");
    }
    return true;
  }

  void on_exit(std::error_code wait_error, exit_status status) {
    std::vector<std::unique_ptr<pending_call>> orphans;
    std::vector<pending_call*> waiting;
    {
      std::lock_guard lock(pending_mutex_);
      death_code_ = kill_reason_.value_or(errc::plugin_crashed);
      const std::string how = wait_error ? "was lost (" + wait_error.message() + ")" : status.describe();
      death_message_ = kill_reason_ ? fmt::format("{} (worker {} {})", kill_message_, child_.pid(), how)
                                    : fmt::format("worker {} {}", child_.pid(), how);
      dead_.store(true, std::memory_order_release);
      doomed_.store(true, std::memory_order_release);
      pending_.for_each([&](std::uint64_t id, pending_call* call) {
        if (auto found = owned_.find(id); found != owned_.end()) {
          orphans.push_back(std::move(found->second));
        } else {
          waiting.push_back(call);
        }
      });
      pending_.clear();
      owned_.clear();
      async_pending_ = 0;
      exited_ = true;
      stopping_ = true;
    }
    channel_.close();
    if (control_socket_) {
      std::error_code ignored;
      control_socket_->close(ignored);  // on the io thread, where Asio uses it
    }
    if (control_writer_) control_writer_->close();
    receiver_cv_.notify_all();
    synced_cv_.notify_all();
    const auto failure = std::make_exception_ptr(error(death_code_, death_message_));
    for (auto* call : waiting) finish(*call, failure);
    for (auto& call : orphans) finish(*call, failure);
    exited_cv_.notify_all();
    if (on_death_) on_death_(shared_from_this());
  }

  launch_spec spec_;
  asio::io_context& io_;
  death_handler on_death_;
  child_process child_;
  unique_fd control_;
  std::optional<asio::local::stream_protocol::socket> control_socket_;  // after the handshake: doorbells
  // After the handshake, every message to the worker: buffers, sync, shutdown.
  std::shared_ptr<worker_control> control_writer_;
  std::atomic<std::uint64_t> sync_sent_{0};
  std::uint64_t synced_ = 0;  // the last sync the worker answered, guarded by pending_mutex_
  std::condition_variable synced_cv_;
  frame_channel channel_;
  std::thread receiver_;

  std::mutex reader_mutex_;          // held by whoever reads the channel (a leader or the receiver)
  std::atomic<std::thread::id> leader_thread_;  // who holds reader_mutex_, so it can read again when nested
  std::string protocol_violation_;   // why the reader gave up, guarded by reader_mutex_
  std::atomic<int> wanting_lead_{0};  // synchronous callers waiting while the receiver reads
  led_call* led_ = nullptr;  // the call of a thread that leads since before sending it, guarded by reader_mutex_

  mutable std::mutex pending_mutex_;
  std::condition_variable receiver_cv_;
  pending_table<pending_call> pending_;
  std::unordered_map<std::uint64_t, std::unique_ptr<pending_call>> owned_;  // asynchronous calls
  // Written under pending_mutex_, read without it by hand_over.
  std::atomic<std::size_t> async_pending_{0};
  std::atomic<bool> leader_active_{false};
  std::atomic<bool> drain_requested_{false};  // a doorbell rang: read what is in the ring even with no call pending
  bool stopping_ = false;
  std::atomic<std::uint64_t> last_call_id_{0};
  std::optional<errc> kill_reason_;
  std::string kill_message_;
  std::atomic<bool> dead_{false};
  std::atomic<bool> doomed_{false};  // killed, stopping or dead: new calls should wait for a restart
  errc death_code_ = errc::plugin_crashed;
  std::string death_message_;
  bool exited_ = false;
  std::condition_variable exited_cv_;
};

}  // namespace detail
}  // namespace isolate

#endif
