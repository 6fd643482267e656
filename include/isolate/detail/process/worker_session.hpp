// One run of a process plugin's worker, from start to death, seen from the
// host: the calls in flight, who reads the worker's frames, the control
// socket after the handshake, and what happens when the worker dies.
// isolate::process (detail/process/process_link.hpp) restarts sessions.
// The other failure paths have files of their own: starting and the
// handshake (worker_start.hpp), the words of a death (worker_death.hpp),
// the plugin's calls to the host (host_service_calls.hpp).
//
// Who reads the worker's frames: a thread waiting for a synchronous call
// reads them itself when no one else is (it leads), delivering other calls'
// replies on the way; so a lone caller's round trip is one hop each way with
// no thread in between; a caller that leads from before it sends needs no
// entry in the pending table (call_leading). A receiver thread reads while
// only asynchronous calls are outstanding, and drains what the worker rang
// the doorbell for; it exists only while there is such work. A leader that
// got its reply hands the reading on. What the worker says on its control
// socket, its exit and its refused system calls are watched on the host's
// shared io threads (io_pool.hpp), on the plugin's strand.
//
// What the worker sends is never trusted: every read is bounded by the
// reading call's deadline however busy the worker keeps the channel, and
// nothing thrown while reading leaves the reader: the worker is killed with
// a named error instead, and the pending calls fail with it.
//
// Thread safety: every public member may be called from any thread.
#ifndef ISOLATE_DETAIL_PROCESS_WORKER_SESSION_HPP
#define ISOLATE_DETAIL_PROCESS_WORKER_SESSION_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/codec.hpp"
#include "isolate/detail/deadline.hpp"
#include "isolate/detail/link.hpp"
#include "isolate/detail/process/buffer_sharing.hpp"
#include "isolate/detail/process/child.hpp"
#include "isolate/detail/process/control_channel.hpp"
#include "isolate/detail/process/frame_channel.hpp"
#include "isolate/detail/process/handshake.hpp"
#include "isolate/detail/process/io_pool.hpp"
#include "isolate/detail/process/host_service_calls.hpp"
#include "isolate/detail/process/launch_spec.hpp"
#include "isolate/detail/process/output_capture.hpp"
#include "isolate/detail/process/pending_calls.hpp"
#include "isolate/detail/process/process_usage.hpp"
#include "isolate/detail/process/worker_death.hpp"
#include "isolate/detail/process/worker_start.hpp"
#include "isolate/detail/sandbox/init.hpp"
#include "isolate/detail/sandbox/seccomp_notify.hpp"
#include "isolate/detail/system_call.hpp"
#include "isolate/error.hpp"
#include "isolate/wire/frame.hpp"

#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace isolate::detail {

class worker_session : public std::enable_shared_from_this<worker_session> {
 public:
  using clock = std::chrono::steady_clock;
  using death_handler = std::function<void(const std::shared_ptr<worker_session>&)>;
  // A system call of the worker that its sandbox refused (and the host answered).
  using refusal_handler = std::function<void(const sandbox::refused_call&)>;
  // The worker reports the plugin at a limit that refuses without killing
  // (today: every descriptor open_files allows in use), as the violation's details.
  using limit_handler = std::function<void(const std::string&)>;

  // Control messages from the worker are tiny (doorbell, synced); a longer
  // one is a protocol violation, read no further.
  static constexpr std::size_t max_control_message = 1024;
  // A worker that closed its control socket gets this long to exit before it
  // is killed for it (its exit, if it is dying, is the better report).
  static constexpr std::chrono::milliseconds control_close_grace{1000};
  // How long stop() waits for an orderly exit, then for the kill to land.
  static constexpr std::chrono::milliseconds stop_grace{2000};
  static constexpr std::chrono::milliseconds kill_grace{5000};
  // How long a worker whose channel closed may take to be seen exiting
  // before it is taken for one that closed its channel and lives on.
  static constexpr std::chrono::milliseconds close_grace{1000};
  // How long the receiver waits for work before its thread ends.
  static constexpr std::chrono::milliseconds receiver_idle{250};

  worker_session(const launch_spec& spec, io_pool::strand executor) : spec_(spec), executor_(std::move(executor)) {}
  worker_session(const worker_session&) = delete;
  worker_session& operator=(const worker_session&) = delete;

  ~worker_session() {
    std::thread receiver;
    {
      std::lock_guard lock(pending_mutex_);
      stopping_ = true;
      receiver = std::move(receiver_);
    }
    receiver_cv_.notify_all();
    channel_.close();
    if (receiver.joinable()) receiver.join();
  }

  // Before start(): the worker loads the plugin from `plugin` instead (a reload).
  void load_from(const std::filesystem::path& plugin) { spec_.plugin = plugin; }

  // Starts the worker and waits until it has loaded the plugin. Throws
  // load_failed, fingerprint_mismatch, protocol_error or timeout.
  void start(death_handler on_death, refusal_handler on_refusal = {}, limit_handler on_limit = {}) {
    on_death_ = std::move(on_death);
    on_refusal_ = std::move(on_refusal);
    on_limit_ = std::move(on_limit);
    std::error_code ec;
    std::pair<unique_fd, unique_fd> output;  // the write ends of the worker's stdout and stderr, when captured
    if (spec_.output) {
      // A restarted worker's lines come after its predecessor's: let those
      // arrive first (they are in the pipes already, unless a descendant of
      // an unsandboxed predecessor holds them open).
      spec_.output->drain(output_capture::drain_grace);
      output = spec_.output->open(ec);
      if (ec) throw error(errc::load_failed, "cannot create the pipes for the worker's output: " + ec.message());
    }
    started_at_ = clock::now();  // the start itself, not the wait for the predecessor's last lines
    auto started = start_worker(spec_, deadline_for(spec_.options.load_timeout),
                                worker_output_fds{output.first.get(), output.second.get()});
    output = {};  // the worker's alone now, so that the pipes end with it
    child_ = std::move(started.child);
    channel_ = std::move(started.channel);
    init_status_ = std::move(started.init_status);
    limits_ = std::move(started.limits);
    plugin_on_load_ = started.plugin_on_load;
    plugin_on_stop_ = started.plugin_on_stop;
    memory_group_ = std::move(started.memory_group);
    refusals_ = std::move(started.refusals);
    auto writer_end = duplicate_fd(started.control.get(), ec);
    if (ec) throw error(errc::load_failed, "cannot duplicate the control socket: " + ec.message());
    // Every message to the worker goes through this writer; Asio owns the
    // socket itself on the io thread, for what the worker sends.
    control_writer_ = std::make_shared<worker_control>(
        std::move(writer_end), [weak = weak_from_this()](std::error_code failure) {
          if (auto self = weak.lock()) self->control_failed(failure);
        });
    control_socket_.emplace(executor_, asio::local::stream_protocol(), started.control.release());
    watch_control();
    if (refusals_) {
      refusals_watch_.emplace(executor_, duplicate_fd(refusals_->native_handle(), ec).release());
      // On the io thread, as everything the supervisor does from now on.
      asio::post(executor_, [self = shared_from_this()] { self->on_refusals({}); });
    }
    child_.async_wait_exit(executor_,
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
  // Whether a thread is sending to the worker now (and may be waiting for room).
  bool sending() const noexcept { return channel_.sending(); }
  // How each limit holds in this worker, as it reported when ready.
  const limits::report& limits_in_force() const noexcept { return limits_; }

  // Telemetry: calls sent (each has an id), calls that failed (the plugin
  // threw, or the call could not complete), bytes each way, and when the
  // worker started. Readable from any thread.
  std::uint64_t calls() const noexcept { return last_call_id_.load(std::memory_order_relaxed); }
  std::uint64_t errors() const noexcept { return errors_.load(std::memory_order_relaxed); }
  std::uint64_t bytes_sent() const noexcept { return channel_.bytes_sent(); }
  std::uint64_t bytes_received() const noexcept { return channel_.bytes_received(); }
  clock::time_point started_at() const noexcept { return started_at_; }
  // What the worker has used: so far while it runs, all of it once reaped.
  resource_usage usage() const { return alive() ? usage_of_worker(child_.pid()) : child_.usage(); }

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
  // A worker that does not answer in time is killed: it no longer obeys its
  // control socket, and a restart is better than a wedged session.
  void sync_control(clock::time_point deadline) {
    const std::uint64_t token = sync_sent_.fetch_add(1, std::memory_order_relaxed) + 1;
    const auto body = encode_message(sync_message{token});
    if (const auto ec = control_writer_->send(control_type::sync, body, deadline)) {
      fail_control(ec, "cannot reach the worker's control socket");
    }
    std::unique_lock lock(pending_mutex_);
    if (!synced_cv_.wait_until(lock, deadline, [&] { return synced_ >= token || exited_; })) {
      lock.unlock();
      kill(errc::timeout, "the plugin was killed because its worker did not answer on its control socket");
      throw error(errc::timeout, "the worker did not answer on its control socket in time");
    }
    if (synced_ < token) throw error(death_code_, death_message_);
  }

  // How many buffers were sent to this worker.
  std::size_t buffers_shared() const noexcept { return control_writer_ ? control_writer_->buffers_shared() : 0; }

  // With `decoder`, a large reply may be decoded straight from the ring
  // (link::call_decoding) when this thread reads its own reply.
  void call(wire::buffer& request, wire::buffer& reply, clock::time_point deadline, std::chrono::milliseconds timeout,
            reply_decoder* decoder = nullptr) {
    call_sending(
        [&](std::uint64_t id, std::exception_ptr&) {
          wire::set_call_id(request, id);
          return channel_.send(request.bytes(), deadline);
        },
        reply, deadline, timeout, decoder);
  }

  // A call with a large payload, written straight into the channel.
  void call(const streamed_call& request, wire::buffer& reply, clock::time_point deadline,
            std::chrono::milliseconds timeout, reply_decoder* decoder = nullptr) {
    call_sending([&](std::uint64_t id, std::exception_ptr& thrown) { return channel_.send(request, id, deadline, thrown); },
                 reply, deadline, timeout, decoder);
  }

  void call_async(wire::buffer request, std::unique_ptr<completion> done, clock::time_point deadline,
                  std::chrono::milliseconds timeout) {
    auto owned = std::make_unique<pending_call>();
    owned->done_async = std::move(done);
    std::shared_ptr<asio::steady_timer> timer;
    if (deadline != clock::time_point::max()) owned->timer = timer = std::make_shared<asio::steady_timer>(executor_, deadline);
    std::uint64_t id = 0;
    try {
      id = enroll(*owned, &owned);
    } catch (...) {  // not enrolled: still ours
      errors_.fetch_add(1, std::memory_order_relaxed);
      wire::buffer none;
      owned->done_async->complete(std::current_exception(), none);
      return;
    }
    // From here the call is the table's: whoever answers or fails it (the io
    // thread, on the worker's death) may free it at any moment, so it is not
    // touched again. Its timer is armed on the io thread, where it is cancelled.
    wire::set_call_id(request, id);
    if (timer) {
      asio::post(executor_, [timer, weak = weak_from_this(), id, ms = timeout] {
        timer->async_wait([weak, id, ms](std::error_code ec) {
          auto self = weak.lock();
          if (ec || !self) return;
          if (auto expired = self->take(id)) self->finish(*expired, std::make_exception_ptr(self->call_expired(ms)));
        });
      });
    }
    if (const auto status = channel_.send(request.bytes(), deadline); status != channel_status::ok) {
      if (status == channel_status::timed_out) {
        if (auto unsent = take(id)) finish(*unsent, std::make_exception_ptr(calls_unread()));
        return;  // else on_exit failed it meanwhile
      }
      // Closed or broken: the worker is dead or dying, and on_exit fails the
      // call with what its end says. The caller is not kept waiting for it.
      expect_exit();
      return;
    }
    wake_receiver();
  }

  // Kills the worker; pending calls fail with `reason` (the first reason given wins).
  // `presumed`: see death_record::record_kill (the exit status may say better).
  void kill(errc reason, std::string_view why, bool presumed = false) noexcept {
    {
      std::lock_guard lock(pending_mutex_);
      death_.record_kill(reason, why, presumed);
    }
    doomed_.store(true, std::memory_order_release);
    std::error_code ec;
    child_.kill(SIGKILL, ec);
  }

  // Asks the worker to exit, then makes sure it has (each wait bounded).
  // `graceful`: the plugin's on_stop runs first, within options.stop_timeout.
  void stop(std::string_view why = "the plugin was unloaded", bool graceful = true) {
    if (graceful) run_plugin_stop();
    {
      std::lock_guard lock(pending_mutex_);
      death_.record_kill(errc::plugin_closed, why);
    }
    doomed_.store(true, std::memory_order_release);
    if (control_writer_) control_writer_->send(control_type::shutdown, {}, clock::now() + std::chrono::milliseconds(100));
    // Waits until on_exit is over, its calls failed too: their completions
    // may refer to what the caller of stop() destroys next (the link).
    std::unique_lock lock(pending_mutex_);
    if (!exited_cv_.wait_for(lock, stop_grace, [&] { return settled_; })) {
      lock.unlock();
      std::error_code ec;
      child_.kill(SIGKILL, ec);
      lock.lock();
      // Not gone even then (stuck in the kernel): the child's destructor leaves it to the launcher.
      exited_cv_.wait_for(lock, kill_grace, [&] { return settled_; });
    }
  }

  // The plugin's on_load, as a call (a lifecycle frame), within the load's
  // time: the host serves the plugin's calls to it meanwhile. Throws what it
  // threw (load_refused: its reason), or timeout (the worker is killed).
  void run_plugin_load() {
    if (!plugin_on_load_) return;
    wire::buffer reply;
    run_lifecycle(wire::lifecycle_load, spec_.options.load_timeout, reply);
    const auto frame = wire::parse(reply.bytes(), spec_.options.max_message_size);
    if (frame.header.kind == wire::frame_kind::reply) return;
    // Read here, not rethrown: isolate's codes from a plugin are not believed
    // (wire::rethrow), but refusing to start is the plugin's own to say.
    wire::encoded_exception thrown;
    try {
      wire::input_archive archive(frame.payload);
      archive(thrown);
      archive.expect_end();
    } catch (const std::exception&) {
      throw error(errc::protocol_error, "the plugin's answer to on_load does not decode");
    }
    const auto message = wire::bounded(thrown.message, ISOLATE_MAX_REMOTE_MESSAGE);
    if (thrown.type_name == "isolate::error" && thrown.code == static_cast<std::int32_t>(errc::load_refused)) {
      throw error(errc::load_refused, fmt::format("plugin '{}' refused to start: {}", spec_.plugin.string(), message));
    }
    throw error(errc::load_failed, fmt::format("plugin '{}' failed in on_load: {}", spec_.plugin.string(), message));
  }

  // The plugin's on_stop, as a call: the host serves the plugin's calls to it
  // meanwhile; past stop_timeout the worker is killed (errc::timeout).
  // Nothing if it has none or is dying.
  void run_plugin_stop() noexcept {
    if (!plugin_on_stop_ || doomed_.load(std::memory_order_acquire)) return;
    try {
      wire::buffer reply;
      run_lifecycle(wire::lifecycle_stop, spec_.options.stop_timeout, reply);
    } catch (...) {
      // Killed past its deadline, or already dead: it stops all the same.
    }
  }

  void run_lifecycle(std::uint16_t which, std::chrono::milliseconds timeout, wire::buffer& reply) {
    wire::buffer request;
    wire::begin_frame(request);
    wire::finish_frame(request, wire::frame_kind::lifecycle, which, 0);
    call(request, reply, clock::now() + timeout, timeout);
  }

  // In a child of fork(): this process shares the worker, its channel and
  // sockets with its parent, but has none of its threads. Closes this
  // process's descriptors and touches nothing else: the session must then be
  // leaked, not destroyed (its destructor would join threads that are not here).
  void close_descriptors_after_fork() noexcept {
    if (control_socket_) ::close(control_socket_->native_handle());
    if (control_writer_) control_writer_->close_descriptor_after_fork();
    channel_.close_descriptors_after_fork();
    child_.close_descriptor_after_fork();
  }

 private:
  // A synchronous call in the pending table, from enrolment to the end of
  // its caller's wait, however that ends (even by an exception).
  class enrolled_call {
   public:
    enrolled_call(worker_session& session, pending_call& call) : session_(session), call_(call), id_(session.enroll(call)) {}
    ~enrolled_call() {
      if (!withdrawn_ && !call_.is_done()) withdraw();
    }
    enrolled_call(const enrolled_call&) = delete;
    enrolled_call& operator=(const enrolled_call&) = delete;

    std::uint64_t id() const noexcept { return id_; }
    // Takes the call out of the table: true if it was still there. False if
    // the reader or the worker's death took it first: it is done then, and
    // its outcome is in the call.
    bool withdraw() noexcept {
      withdrawn_ = true;
      if (session_.withdraw(id_)) return true;
      while (!call_.is_done()) call_.wait(std::chrono::nanoseconds::zero(), clock::time_point::max());
      return false;
    }

   private:
    worker_session& session_;
    pending_call& call_;
    std::uint64_t id_;
    bool withdrawn_ = false;
  };

  // A synchronous call: `send(id, thrown)` puts it in the channel (setting
  // `thrown` if the arguments' serialisation threw meanwhile).
  template <class Send>
  void call_sending(Send&& send, wire::buffer& reply, clock::time_point deadline, std::chrono::milliseconds timeout,
                    reply_decoder* decoder) {
    if (leader_thread_.load(std::memory_order_acquire) != std::this_thread::get_id() && reader_mutex_.try_lock()) {
      call_leading(send, reply, deadline, timeout, decoder);
      return;
    }
    pending_call call;
    call.reply = &reply;
    enrolled_call enrolled(*this, call);
    std::exception_ptr thrown;
    if (const auto status = send(enrolled.id(), thrown); status != channel_status::ok) {
      if (enrolled.withdraw()) std::rethrow_exception(send_failure(status));
    } else {
      await(call, enrolled, deadline, timeout);
    }
    if (thrown) std::rethrow_exception(thrown);  // rather than the plugin's complaint about the zeros
    if (call.failure) std::rethrow_exception(call.failure);
  }

  // A synchronous call whose caller reads the channel from before sending it
  // until its reply (the usual case: one caller at a time). No one else can
  // read the reply, so the call needs no entry in `pending_` and no lock on
  // the way back; on_exit does not know it, so the caller finds out about a
  // death itself (the channel closes). Called holding reader_mutex_.
  // A large reply goes to `decoder`, when given, straight from the ring.
  template <class Send>
  void call_leading(Send& send, wire::buffer& reply, clock::time_point deadline, std::chrono::milliseconds timeout,
                    reply_decoder* decoder) {
    led_call own;
    own.id = last_call_id_.fetch_add(1, std::memory_order_relaxed) + 1;
    own.reply = &reply;
    own.decoder = decoder;
    ring_payload own_reply(own.id, deadline);
    std::exception_ptr thrown;
    channel_status sent = channel_status::closed;
    channel_status status = channel_status::closed;
    {
      const reading held(*this, &own);
      if (!dead_.load(std::memory_order_acquire)) sent = status = send(own.id, thrown);
      if (sent == channel_status::ok) {
        status = pump([&] { return own.done; }, deadline, deadline, decoder != nullptr ? &own_reply : nullptr);
      }
    }
    if (!own.done) fail_led(sent, status, timeout);
    if (thrown) std::rethrow_exception(thrown);  // rather than the plugin's complaint about the zeros
    if (own.undecodable) std::rethrow_exception(own.undecodable);
  }

  // A led call got no reply: the channel timed out, closed or broke.
  [[noreturn]] void fail_led(channel_status sent, channel_status status, std::chrono::milliseconds timeout) {
    if (sent == channel_status::timed_out) throw calls_unread();
    if (status == channel_status::timed_out) throw call_expired(timeout);
    throw death_error();
  }

  // The channel closed or broke under a call: the worker is dead or dying.
  // Waits (bounded) for on_exit and returns what the worker's end says, so
  // that a call fails with the reason however fast it noticed the close. A
  // worker that closed its channel and lives on is killed for it.
  error death_error() {
    std::unique_lock lock(pending_mutex_);
    if (!exited_cv_.wait_for(lock, close_grace, [&] { return exited_; })) {
      lock.unlock();
      kill(errc::protocol_error, "the plugin was killed because it closed its channel", true);
      lock.lock();
      if (!exited_cv_.wait_for(lock, kill_grace, [&] { return exited_; })) {
        return error(death_.kill_reason().value_or(errc::protocol_error), death_.kill_message());
      }
    }
    return error(death_code_, death_message_);
  }

  // death_error() for a caller that must not wait (an asynchronous call,
  // maybe made on the io thread that runs on_exit): the io thread kills a
  // worker still alive after close_grace.
  void expect_exit() {
    asio::post(executor_, [weak = weak_from_this()] {
      const auto alive = weak.lock();
      if (!alive) return;
      auto timer = std::make_shared<asio::steady_timer>(alive->executor_, close_grace);
      timer->async_wait([timer, weak](std::error_code ec) {
        auto self = weak.lock();
        if (ec || !self) return;
        std::unique_lock lock(self->pending_mutex_);
        if (self->exited_) return;
        lock.unlock();
        self->kill(errc::protocol_error, "the plugin was killed because it closed its channel", true);
      });
    });
  }

  // Waits for a synchronous call's reply, reading the channel whenever no one else is.
  void await(pending_call& call, enrolled_call& enrolled, clock::time_point deadline, std::chrono::milliseconds timeout) {
    if (leader_thread_.load(std::memory_order_acquire) == std::this_thread::get_id()) {
      // A call from a host service that this thread runs for the plugin: keep reading here.
      const auto status = pump([&] { return call.is_done(); }, deadline);
      if (!call.is_done() && status == channel_status::timed_out) expire(enrolled, timeout);
      while (!call.is_done()) call.wait(std::chrono::nanoseconds::zero(), clock::time_point::max());
      return;
    }
    while (!call.is_done()) {
      if (reader_mutex_.try_lock()) {
        const auto status = lead([&] { return call.is_done(); }, deadline);
        if (status == channel_status::ok || call.is_done()) continue;
        if (status == channel_status::timed_out) {
          expire(enrolled, timeout);
          return;
        }
        // Closed or corrupted: the worker dies and on_exit fails the call.
        expect_exit();
        call.wait(std::chrono::nanoseconds::zero(), clock::time_point::max());
        continue;
      }
      // Another thread reads: the answer comes through it, or it pokes us to
      // read once it is done. Announce first, then look again: a reader that
      // let go just before the announcement is seen by the second try_lock
      // (hand_over checks the announcements after letting go).
      wanting_lead_.fetch_add(1, std::memory_order_seq_cst);  // SYNC POINT "lead wanted"
      if (reader_mutex_.try_lock()) {
        wanting_lead_.fetch_sub(1, std::memory_order_seq_cst);
        reader_mutex_.unlock();
        continue;
      }
      // No spinning here: the reader and the worker already hold a CPU each on a small machine.
      const bool settled = call.wait(std::chrono::nanoseconds::zero(), deadline);
      wanting_lead_.fetch_sub(1, std::memory_order_seq_cst);
      if (!settled) {
        expire(enrolled, timeout);
        return;
      }
    }
  }

  // The call's time is up: unless it was answered at the last moment, it
  // fails, and the worker is killed.
  void expire(enrolled_call& enrolled, std::chrono::milliseconds timeout) {
    if (enrolled.withdraw()) throw call_expired(timeout);
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

  // What a call fails with when its frame could not be sent.
  std::exception_ptr send_failure(channel_status status) {
    if (status == channel_status::timed_out) return std::make_exception_ptr(calls_unread());
    return std::make_exception_ptr(death_error());
  }

  // Reads and delivers frames (holding reader_mutex_, which it releases)
  // until `enough()`, the deadline, or the channel fails.
  template <class Enough>
  channel_status lead(Enough&& enough, clock::time_point deadline, clock::time_point stop_at) {
    const reading held(*this);
    return pump(enough, deadline, stop_at);
  }
  template <class Enough>
  channel_status lead(Enough&& enough, clock::time_point deadline) {
    return lead(enough, deadline, deadline);
  }

  // The lead of a thread that holds reader_mutex_, from construction to
  // destruction, when it hands the reading on.
  class reading {
   public:
    explicit reading(worker_session& session, led_call* own = nullptr) noexcept : session_(session) {
      session_.leader_active_.store(true, std::memory_order_seq_cst);  // SYNC POINT "reader lets go"
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

  // The reading itself, by the thread that holds reader_mutex_: waits for
  // frames until `deadline`, and stops delivering them at `stop_at` even if
  // the worker keeps the channel busy. Throws nothing: whatever goes wrong
  // while reading (the worker's bytes, or the host running out of memory for
  // them) kills the worker, and its pending calls fail with the reason.
  // With `own_reply`, the leader's own large reply is decoded from the ring.
  template <class Enough>
  channel_status pump(Enough&& enough, clock::time_point deadline, clock::time_point stop_at,
                      ring_payload* own_reply = nullptr) noexcept {
    channel_status status = channel_status::ok;
    try {
      wire::buffer frame;
      while (!enough()) {
        status = channel_.receive(frame, deadline, own_reply);
        if (status != channel_status::ok) break;
        if (own_reply != nullptr && own_reply->active()) {
          status = decode_own_reply(*own_reply);
          if (status != channel_status::ok) break;
        } else if (!dispatch(frame)) {
          status = channel_status::corrupted;
          break;
        }
        if (stop_at != clock::time_point::max() && !enough() && clock::now() >= stop_at) {
          status = channel_status::timed_out;
          break;
        }
      }
    } catch (const std::exception& e) {
      note_violation("the host could not take what the plugin sent", e.what());
      status = channel_status::corrupted;
    } catch (...) {
      note_violation("the host could not take what the plugin sent", "an unknown exception");
      status = channel_status::corrupted;
    }
    if (status == channel_status::corrupted) {
      std::string_view why = protocol_violation_;
      if (why.empty() && channel_.uses_shared_memory()) {
        why = "the plugin broke the protocol: the shared-memory ring holds invalid data";
      } else if (why.empty()) {
        why = "the plugin broke the protocol: a frame on the data socket is shorter than its header, longer than "
              "the maximum message size, or not the size its header says";
      }
      kill(errc::protocol_error, why);
    }
    return status;
  }
  template <class Enough>
  channel_status pump(Enough&& enough, clock::time_point deadline) noexcept {
    return pump(enough, deadline, deadline);
  }

  // The leader's own large reply, decoded where it lies in the ring by the
  // caller's reply_decoder. What decoding throws is the call's to rethrow
  // (the proxy tells the link when the reply was malformed); a frame that
  // cannot be read to its end leaves the channel unusable.
  channel_status decode_own_reply(ring_payload& large) noexcept {
    wire::frame_header header;
    std::memcpy(&header, large.first().data(), wire::header_size);
    try {
      led_->decoder->decode(wire::inbound_payload{large.first().subspan(wire::header_size), header.size, &large});
    } catch (...) {
      led_->undecodable = std::current_exception();
    }
    if (!large.end()) {
      led_->undecodable = nullptr;
      if (large.failure() == channel_status::corrupted) {
        note_violation("it broke the protocol", large.failure_reason());
      }
      return large.failure();
    }
    led_->done = true;
    return channel_status::ok;
  }

  // Why the reader gave up, for the kill that follows. Never throws.
  void note_violation(const char* what, const char* detail) noexcept {
    try {
      protocol_violation_ = fmt::format("the plugin was killed because {}: {}", what, detail);
    } catch (...) {
      protocol_violation_.clear();  // the kill's default message stands
    }
  }

  // The leader is done: wake one synchronous caller still waiting to read its
  // own reply, or the receiver if only asynchronous calls remain.
  // The common case, a lone caller, takes no lock: the fence orders letting
  // go before reading the counters, against their writers' read-modify-writes.
  void hand_over() {
    leader_active_.store(false, std::memory_order_seq_cst);  // SYNC POINT "reader lets go"
    reader_mutex_.unlock();
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (wanting_lead_.load(std::memory_order_seq_cst) == 0 &&  // SYNC POINT "lead wanted"
        async_pending_.load(std::memory_order_seq_cst) == 0 && !drain_requested_.load(std::memory_order_seq_cst)) {
      return;
    }
    std::thread retired;
    {
      std::lock_guard lock(pending_mutex_);
      pending_call* waiting = nullptr;
      pending_.for_each([&](std::uint64_t, pending_call* call) {
        if (waiting == nullptr && call->reply != nullptr && !call->is_done()) waiting = call;
      });
      if (waiting != nullptr) {
        waiting->poke();
        return;
      }
      if (async_pending_ > 0 || drain_requested_) retired = wake_receiver_locked();
    }
    if (retired.joinable()) retired.join();
  }

  // The receiver runs only while there is work for it: it starts when first
  // woken and retires after receiver_idle with nothing to read, so an idle
  // plugin, or one called only synchronously, costs the host no thread.
  void wake_receiver() {
    std::thread retired;
    {
      std::lock_guard lock(pending_mutex_);
      retired = wake_receiver_locked();
    }
    if (retired.joinable()) retired.join();
  }
  // With pending_mutex_ held. Returns a retired receiver for the caller to
  // join once it lets go of the lock (it has left its loop: the join is short).
  [[nodiscard]] std::thread wake_receiver_locked() {
    if (receiver_running_) {
      receiver_cv_.notify_one();
      return {};
    }
    if (stopping_) return {};
    std::thread retired = std::move(receiver_);
    try {
      receiver_ = std::thread([this] { receive_loop(); });
      receiver_running_ = true;
    } catch (const std::system_error&) {
      // No thread to be had: a synchronous caller still reads for itself,
      // and the next wake tries again; asynchronous calls wait until then
      // (or their timeout).
    }
    return retired;
  }

  // Reads while only asynchronous calls are outstanding, and drains frames
  // the worker rang the doorbell for (events, service calls) when no one reads.
  void receive_loop() {
    for (;;) {
      {
        std::unique_lock lock(pending_mutex_);
        const auto work = [&] { return stopping_ || ((async_pending_ > 0 || drain_requested_) && !leader_active_); };
        if (!receiver_cv_.wait_for(lock, receiver_idle, work)) {
          receiver_running_ = false;  // under the lock: a wake from now on starts another
          return;
        }
        if (stopping_) return;
      }
      if (!reader_mutex_.try_lock()) continue;
      bool asynchronous = false;
      {
        std::lock_guard lock(pending_mutex_);
        drain_requested_.store(false);
        asynchronous = async_pending_ > 0;
      }
      const auto enough = [&] {
        std::lock_guard lock(pending_mutex_);
        return stopping_ || wanting_lead_.load(std::memory_order_acquire) > 0 || (asynchronous && async_pending_ == 0);
      };
      // Short slices while calls are outstanding, so a synchronous caller
      // that wants to read is not kept waiting; a drain stops when the ring
      // is empty (or a caller wants to read), however long that takes.
      const auto status = asynchronous ? lead(enough, clock::now() + std::chrono::milliseconds(2))
                                       : lead(enough, clock::now(), clock::time_point::max());
      if (status == channel_status::closed || status == channel_status::corrupted) {
        expect_exit();  // on_exit fails the calls outstanding
        return;
      }
    }
  }

  // What the worker sends on its control socket: doorbells and sync answers.
  // Anything else, or anything longer, breaks the protocol.
  void watch_control() {
    async_read_message(*control_socket_, max_control_message,
                       [weak = weak_from_this()](std::error_code ec, control_message message) {
                         auto self = weak.lock();
                         if (!self || ec == asio::error::operation_aborted) return;
                         if (ec) return self->control_read_failed(ec);
                         if (message.type == static_cast<std::uint32_t>(control_type::doorbell)) {
                           self->drain_requested_ = true;
                           self->wake_receiver();
                         } else if (message.type == static_cast<std::uint32_t>(control_type::synced)) {
                           self->on_synced(message.body);
                         } else if (message.type == static_cast<std::uint32_t>(control_type::descriptors_full) ||
                                    message.type == static_cast<std::uint32_t>(control_type::tasks_full) ||
                                    message.type == static_cast<std::uint32_t>(control_type::memory_refused)) {
                           if (!self->on_exhausted(static_cast<control_type>(message.type), message.body)) return;
                         } else {
                           return self->kill(errc::protocol_error,
                                             fmt::format("the plugin broke the protocol: a control message of type {}",
                                                         message.type));
                         }
                         self->watch_control();
                       });
  }

  // The worker found the plugin holding every descriptor it may open, or
  // every task (process or thread) it may run, or allocations refused at its
  // memory limit that the plugin caught. A body that does not decode (or
  // claims more than the limit, or a limit the policy has not) breaks the
  // protocol: false, and the worker is killed.
  bool on_exhausted(control_type type, const std::vector<std::byte>& body) {
    std::optional<exhausted_message> full;
    try {
      full = decode_message<exhausted_message>(body);
    } catch (const error&) {
    }
    const bool memory = type == control_type::memory_refused;
    const bool believable = full && full->limit != 0 &&
                            (memory ? full->in_use > 0 && full->limit == spec_.options.limits.memory_mb
                                    : full->in_use <= full->limit);
    if (!believable) {
      kill(errc::protocol_error,
           fmt::format("the plugin broke the protocol: a malformed {} control message",
                       memory ? "memory_refused" : type == control_type::descriptors_full ? "descriptors_full" : "tasks_full"));
      return false;
    }
    if (!on_limit_) return true;
    if (memory) {
      on_limit_(fmt::format("memory: {} allocation{} failed at its memory limit of {} MiB (RLIMIT_DATA), and the "
                            "plugin caught std::bad_alloc",
                            full->in_use, full->in_use == 1 ? "" : "s", full->limit));
    } else if (type == control_type::descriptors_full) {
      on_limit_(fmt::format("open files: all {} descriptors of its open_files limit in use (RLIMIT_NOFILE): its "
                            "next open fails with EMFILE",
                            full->limit));
    } else {
      on_limit_(fmt::format("processes: all {} tasks of its processes limit in use (RLIMIT_NPROC, processes and "
                            "threads together): its next fork or new thread fails with EAGAIN",
                            full->limit));
    }
    return true;
  }

  // On the io thread: the worker's seccomp listener has refusals to answer
  // (or some came during the load). A few at a time, so a worker that floods
  // it does not hold the io thread; each is handed to on_refusal_.
  void on_refusals(std::error_code ec) {
    if (ec || !refusals_ || !refusals_watch_) return;
    const auto step = refusals_->handle_pending(16);
    for (auto& refused : refusals_->take_records()) {
      if (on_refusal_) on_refusal_(refused);
    }
    if (step.hung_up || !refusals_watch_) return;
    if (step.more) {
      asio::post(executor_, [weak = weak_from_this()] {
        if (auto self = weak.lock()) self->on_refusals({});
      });
    } else {
      refusals_watch_->async_wait(asio::posix::stream_descriptor::wait_read,
                                  [weak = weak_from_this()](std::error_code wait_error) {
                                    if (auto self = weak.lock()) self->on_refusals(wait_error);
                                  });
    }
  }

  // On the io thread: the worker's control socket failed or closed.
  void control_read_failed(std::error_code ec) {
    if (ec == std::errc::message_size) {
      return kill(errc::protocol_error, fmt::format("the plugin broke the protocol: a control message longer than {} "
                                                    "bytes",
                                                    max_control_message));
    }
    // Closed: a dying worker closes it just before its exit is seen. One
    // that lives on without it gets a moment, then is killed.
    auto timer = std::make_shared<asio::steady_timer>(executor_, control_close_grace);
    timer->async_wait([weak = weak_from_this(), timer](std::error_code wait_error) {
      auto self = weak.lock();
      if (wait_error || !self || !self->alive()) return;
      self->kill(errc::protocol_error, "the plugin was killed because its worker closed its control socket", true);
    });
  }

  void on_synced(std::span<const std::byte> body) {
    sync_message answer;
    try {
      answer = decode_message<sync_message>(body);
    } catch (const error&) {
      return kill(errc::protocol_error, "the plugin broke the protocol: a sync answer that does not decode");
    }
    {
      std::lock_guard lock(pending_mutex_);
      synced_ = std::max(synced_, std::min(answer.token, sync_sent_.load(std::memory_order_relaxed)));
    }
    synced_cv_.notify_all();
  }

  // worker_control could not send a message: the worker stopped reading its
  // control socket, or the socket broke. A dying worker's own exit is the
  // better report, so a closed socket is left to on_exit.
  void control_failed(std::error_code ec) noexcept {
    if (ec == std::errc::broken_pipe || ec == std::errc::connection_reset || ec == std::errc::not_connected) return;
    if (ec == std::errc::timed_out) {
      kill(errc::timeout, "the plugin was killed because its worker stopped reading its control socket");
    } else {
      kill(errc::plugin_crashed, "the plugin was killed because its control socket failed: " + ec.message());
    }
  }

  // A control message could not be sent: throws what the caller should see
  // (control_failed has killed the worker if it was still alive).
  [[noreturn]] void fail_control(std::error_code ec, const char* what) {
    if (ec == std::errc::timed_out) {
      throw error(errc::timeout, fmt::format("{}: the worker stopped reading its control socket", what));
    }
    std::lock_guard lock(pending_mutex_);
    if (exited_) throw error(death_code_, death_message_);
    if (const auto reason = death_.kill_reason()) throw error(*reason, death_.kill_message());
    throw error(errc::plugin_crashed, fmt::format("{}: {}", what, ec.message()));
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
    if (view.header.kind == wire::frame_kind::call || view.header.kind == wire::frame_kind::event ||
        view.header.kind == wire::frame_kind::object_call) {
      return serve(view);
    }
    if (view.header.kind == wire::frame_kind::release) {  // the plugin dropped a host object
      if (const auto id = released_id(view.payload)) {
        spec_.capabilities->remove(*id);
        return true;
      }
      protocol_violation_ = "the plugin broke the protocol: a release frame that names no object";
      return false;
    }
    if (view.header.kind == wire::frame_kind::accounted_call) {
      protocol_violation_ = "the plugin broke the protocol: it asked the host to account a call";
      return false;
    }
    if (view.header.kind == wire::frame_kind::lifecycle) {
      protocol_violation_ = "the plugin broke the protocol: it sent the host a lifecycle frame (on_load, on_stop)";
      return false;
    }
    if (view.header.service != 0) {
      protocol_violation_ = fmt::format("the plugin broke the protocol: a reply frame for service {}",
                                        static_cast<unsigned>(view.header.service));
      return false;
    }
    if (view.header.kind == wire::frame_kind::error) errors_.fetch_add(1, std::memory_order_relaxed);
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
        call->set_done();  // SYNC POINT "call done"
        return true;
      }
      auto node = owned_.extract(view.header.call_id);
      owned = std::move(node.mapped());
      --async_pending_;
    }
    if (owned->timer) asio::post(executor_, [timer = owned->timer] { timer->cancel(); });
    owned->done_async->complete(nullptr, frame);
    return true;
  }

  // Runs a call (or event) from the plugin on the host's object (a service,
  // or one it was handed), on this
  // thread, and sends the answer. The object may call the plugin again.
  bool serve(const wire::frame_view& call) {
    host_service_answer answer;
    if (!serve_host_call(spec_.services, *spec_.lent, *spec_.capabilities, call, spec_.options.max_message_size,
                         answer, protocol_violation_)) {
      return false;
    }
    if (answer.frame.size() == 0) return true;  // an event
    // "No call timeout" is no deadline here too: a full ring is only a busy plugin.
    const auto deadline = deadline_for(spec_.options.call_timeout);
    if (!answer.buffers.empty()) {
      try {
        share_buffers(answer.buffers, deadline, true);
      } catch (const error&) {
        // The worker is going away; the plugin's call fails with it.
      }
    }
    if (channel_.send(answer.frame.bytes(), deadline) == channel_status::timed_out) {
      kill(errc::timeout, "the plugin was killed because it stopped reading the host's answers");
    }
    return true;
  }

  // Makes `call` pending under a new id. An asynchronous call passes its
  // owner too, which the table takes only once the call is enrolled: if this
  // throws, the caller still owns it.
  std::uint64_t enroll(pending_call& call, std::unique_ptr<pending_call>* owned = nullptr) {
    std::lock_guard lock(pending_mutex_);
    if (dead_.load(std::memory_order_relaxed)) throw error(death_code_, death_message_);
    const std::uint64_t id = last_call_id_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (owned != nullptr) {
      const auto slot = owned_.emplace(id, nullptr).first;  // may throw: before the call is visible
      try {
        pending_.insert(id, &call);
      } catch (...) {
        owned_.erase(slot);
        throw;
      }
      slot->second = std::move(*owned);
      ++async_pending_;
    } else {
      pending_.insert(id, &call);
    }
    return id;
  }

  // Removes a synchronous call that has not been answered; false if it already was.
  bool withdraw(std::uint64_t id) noexcept {
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

  void finish(pending_call& call, std::exception_ptr failure) {
    // A synchronous call's failure is counted by the link, where it is thrown.
    if (failure && call.done_async) errors_.fetch_add(1, std::memory_order_relaxed);
    if (call.done_async) {
      wire::buffer none;
      if (call.timer) asio::post(executor_, [timer = call.timer] { timer->cancel(); });
      call.done_async->complete(failure, none);
    } else {
      call.failure = failure;
      call.set_done();  // SYNC POINT "call done"
    }
  }

  // A sandboxed worker's PID 1 reports how the worker itself (PID 2) ended.
  std::optional<sandbox::init_report> read_init_report() noexcept {
    if (!init_status_) return std::nullopt;
    sandbox::init_report report;
    const auto got = retry_on_eintr([&] { return ::read(init_status_.get(), &report, sizeof report); });
    if (got != static_cast<ssize_t>(sizeof report)) return std::nullopt;  // PID 1 itself was killed
    return report;
  }

  void on_exit(std::error_code wait_error, exit_status status) {
    std::vector<std::unique_ptr<pending_call>> orphans;
    std::vector<pending_call*> waiting;
    death_record::resources_seen seen;
    if (!wait_error) {
      if (const auto inner = read_init_report()) {
        status.signaled = inner->code == CLD_KILLED || inner->code == CLD_DUMPED;
        status.core_dumped = inner->code == CLD_DUMPED;
        status.code_or_signal = inner->status;
        seen.cpu_us = inner->user_us + inner->system_us;
      }
    }
    if (memory_group_ && memory_group_.oom_kills() != 0) seen.memory_cgroup = memory_group_.mechanism();
    memory_group_ = {};  // the worker is reaped: its group is empty and goes
    {
      std::lock_guard lock(pending_mutex_);
      std::tie(death_code_, death_message_) =
          death_.describe(child_.pid(), wait_error, status, spec_.options.limits, seen);
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
      stopping_ = true;
    }
    // The link records what the death was (a violation, a quarantine) and
    // plans the restart before any call hears of it: a caller that sees its
    // call fail then sees the plugin's new state.
    if (on_death_) on_death_(shared_from_this());
    {
      std::lock_guard lock(pending_mutex_);
      exited_ = true;
    }
    channel_.close();
    if (control_socket_) {
      std::error_code ignored;
      control_socket_->close(ignored);  // on the io thread, where Asio uses it
    }
    if (control_writer_) control_writer_->close();
    if (refusals_watch_) {
      std::error_code ignored;
      refusals_watch_->close(ignored);
      refusals_watch_.reset();
    }
    if (refusals_) refusals_->close();
    receiver_cv_.notify_all();
    synced_cv_.notify_all();
    const auto failure = std::make_exception_ptr(error(death_code_, death_message_));
    for (auto* call : waiting) finish(*call, failure);
    for (auto& call : orphans) finish(*call, failure);
    {
      std::lock_guard lock(pending_mutex_);
      settled_ = true;
    }
    exited_cv_.notify_all();
  }

  launch_spec spec_;
  io_pool::strand executor_;  // this plugin's strand on the shared io threads
  death_handler on_death_;
  refusal_handler on_refusal_;
  limit_handler on_limit_;
  std::unique_ptr<sandbox::seccomp_supervisor> refusals_;        // report_refusals: the worker's seccomp listener
  std::optional<asio::posix::stream_descriptor> refusals_watch_;  // a copy of it, watched on the io thread
  child_process child_;
  unique_fd init_status_;  // sandboxed: the pipe PID 1 reports the worker's end on
  sandbox::memory_cgroup memory_group_;  // a worker with a memory cap, where a cgroup could be had
  std::atomic<std::uint64_t> errors_{0};
  clock::time_point started_at_{};
  limits::report limits_;
  bool plugin_on_load_ = false;  // the plugin has an on_load (run by run_plugin_load())
  bool plugin_on_stop_ = false;  // the plugin has an on_stop (run by stop())
  std::optional<asio::local::stream_protocol::socket> control_socket_;  // after the handshake: what the worker says
  std::shared_ptr<worker_control> control_writer_;                      // after the handshake: what the host says
  std::atomic<std::uint64_t> sync_sent_{0};
  std::uint64_t synced_ = 0;  // the last sync the worker answered, guarded by pending_mutex_
  std::condition_variable synced_cv_;
  frame_channel channel_;
  std::thread receiver_;  // guarded by pending_mutex_
  bool receiver_running_ = false;  // in its loop (not retired), guarded by pending_mutex_

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
  death_record death_;  // why the host killed the worker, guarded by pending_mutex_
  std::atomic<bool> dead_{false};
  std::atomic<bool> doomed_{false};  // killed, stopping or dead: new calls should wait for a restart
  errc death_code_ = errc::plugin_crashed;
  std::string death_message_;
  bool exited_ = false;
  bool settled_ = false;  // on_exit is over: every call of this worker has been failed
  std::condition_variable exited_cv_;
};

}  // namespace isolate::detail

#endif
