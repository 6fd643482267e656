// The supervision of one process plugin: the current worker session, and the
// restart that replaces it after a crash (per restart_policy). Seen by the
// proxy as a link; isolate::process::connection owns one.
#ifndef ISOLATE_DETAIL_PROCESS_PROCESS_LINK_HPP
#define ISOLATE_DETAIL_PROCESS_PROCESS_LINK_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/fork_guard.hpp"
#include "isolate/detail/latency_histogram.hpp"
#include "isolate/detail/link.hpp"
#include "isolate/detail/process/io_pool.hpp"
#include "isolate/detail/process/launch_spec.hpp"
#include "isolate/detail/process/output_capture.hpp"
#include "isolate/detail/process/supervision_record.hpp"
#include "isolate/detail/process/worker_session.hpp"
#include "isolate/detail/sandbox/refusal.hpp"
#include "isolate/error.hpp"
#include "isolate/telemetry.hpp"
#include "isolate/transport/process_options.hpp"

#include <asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace isolate::detail {

// The link of one process plugin: the current worker session, and the
// supervision that replaces it after a crash (per restart_policy).
//
// Thread safety: calls, sync_control and the queries may be made from any
// thread at once. In a child of fork(), calls fail with plugin_closed and
// destruction only closes this process's descriptors (the worker, its
// channel and sockets are the parent's; the threads are not here).
class process_link final : public link {
 public:
  using clock = std::chrono::steady_clock;

  explicit process_link(launch_spec spec)
      : spec_((check_options(spec.options), std::move(spec))),
        record_(spec_.options.name.empty() ? spec_.plugin.stem().string() : spec_.options.name,
                spec_.options.supervision),
        pool_(io_pool::shared()),
        strand_(std::make_unique<io_pool::strand>(pool_->make_strand())),
        gate_(std::make_shared<callback_gate>(this)) {
    spec_.capabilities = std::make_shared<capability_table>(this, this, spec_.options.max_message_size);
    if (spec_.options.on_output && !spec_.output) {
      spec_.output = std::make_shared<output_capture>(record_.plugin(), std::move(spec_.options.on_output),
                                                      spec_.options.max_output_line);
    }
    try {
      current_ = start_session();
    } catch (...) {
      gate_->close();
      spec_.capabilities->detach();
      // What the worker wrote before it failed often says why: let it arrive.
      close_output();
      throw;
    }
  }

  ~process_link() override {
    if (made_in_.forked()) {
      abandon_after_fork();
      return;
    }
    std::thread restarting;
    {
      std::lock_guard lock(mutex_);
      closing_ = true;  // from here no restart begins
    }
    restart_cv_.notify_all();
    {
      std::lock_guard lock(mutex_);
      restarting = std::move(restart_thread_);
    }
    if (restarting.joinable()) restarting.join();  // a restart under way finishes first
    gate_->close();  // no callback reaches this link any more
    std::shared_ptr<worker_session> session;
    {
      std::lock_guard lock(mutex_);
      session = std::exchange(current_, nullptr);
    }
    if (session) session->stop();
    session.reset();
    // The proxies the host still holds of the plugin's objects fail from
    // now on; the host's objects the plugin held are released.
    spec_.capabilities->detach();
    close_output();
  }

  void call(wire::buffer& request, wire::buffer& reply) override { call_now(request, reply, nullptr); }
  void call_streamed(const streamed_call& request, wire::buffer& reply) override { call_now(request, reply, nullptr); }
  void call_decoding(wire::buffer& request, wire::buffer& reply, reply_decoder& decoder) override {
    call_now(request, reply, &decoder);
  }
  void call_streamed_decoding(const streamed_call& request, wire::buffer& reply, reply_decoder& decoder) override {
    call_now(request, reply, &decoder);
  }

  void call_async(wire::buffer request, std::unique_ptr<completion> done) override {
    const auto* attachments = take_attachments();
    const auto timeout = call_timeout();
    const auto deadline = deadline_after(timeout);
    std::shared_ptr<worker_session> session;
    try {
      refuse_after_fork();
      session = share_then(acquire(deadline), attachments, deadline);
    } catch (...) {
      failed_calls_.fetch_add(1, std::memory_order_relaxed);
      wire::buffer none;
      done->complete(std::current_exception(), none);
      return;
    }
    session->call_async(std::move(request), std::move(done), deadline, timeout);
  }

  std::size_t max_message_size() const noexcept override { return spec_.options.max_message_size; }

  // What the plugin sends back may only name buffers the host lent it.
  buffer_resolver* shared_buffers() noexcept override { return spec_.lent.get(); }

  capability_table* capabilities() noexcept override { return spec_.capabilities.get(); }

  // Returns once the worker has handled every control message sent before,
  // so a buffer the host released is unmapped there unless the plugin holds
  // it. Mostly for tests; throws timeout or the reason the worker is down.
  void sync_control(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    refuse_after_fork();
    const auto deadline = deadline_after(timeout);
    acquire(deadline)->sync_control(deadline);
  }

  // How many shared buffers were sent to the current worker (each once).
  std::size_t buffers_shared() const {
    std::lock_guard lock(mutex_);
    return current_ ? current_->buffers_shared() : 0;
  }

  // The worker's process id (changes after a restart); -1 while it is down.
  pid_t pid() const {
    std::lock_guard lock(mutex_);
    return current_ ? current_->pid() : -1;
  }
  // A restart after a crash is due or under way (calls wait for it).
  bool restart_pending() const {
    std::lock_guard lock(mutex_);
    return restarting_;
  }
  // Whether a worker serves calls, or a restart under way will bring one.
  bool up() const {
    std::lock_guard lock(mutex_);
    return restarting_ || (current_ && current_->alive());
  }
  // How each limit holds in the current worker, as it reported (empty while it is down).
  limits::report limits_in_force() const {
    std::lock_guard lock(mutex_);
    return current_ ? current_->limits_in_force() : limits::report{};
  }

  // Whether a thread is sending to the worker now (and may be waiting for room in the ring).
  bool sending() const {
    std::lock_guard lock(mutex_);
    return current_ && current_->sending();
  }
  unsigned restarts() const {
    std::lock_guard lock(mutex_);
    return restarts_;
  }

  // The plugin's figures so far, over all its workers; never stops it.
  plugin_telemetry telemetry() const {
    plugin_telemetry t;
    t.plugin = record_.plugin();
    std::shared_ptr<worker_session> session;
    {
      std::lock_guard lock(mutex_);
      session = current_;
      t.restarts = restarts_;
      t.calls = retired_.calls;
      t.errors = retired_.errors;
      t.bytes_sent = retired_.bytes_sent;
      t.bytes_received = retired_.bytes_received;
      t.cpu_user = std::chrono::microseconds(retired_.usage.user_us);
      t.cpu_system = std::chrono::microseconds(retired_.usage.system_us);
      t.peak_memory_bytes = retired_.usage.peak_rss_bytes;
      if (session.get() == retired_session_) session.reset();  // counted in retired_ already
    }
    if (session) {
      t.calls += session->calls();
      t.errors += session->errors();
      t.bytes_sent += session->bytes_sent();
      t.bytes_received += session->bytes_received();
      const auto usage = session->usage();
      t.cpu_user += std::chrono::microseconds(usage.user_us);
      t.cpu_system += std::chrono::microseconds(usage.system_us);
      t.peak_memory_bytes = std::max(t.peak_memory_bytes, usage.peak_rss_bytes);
      if (session->alive()) {
        t.running = true;
        t.pid = session->pid();
        t.uptime = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - session->started_at());
      }
    }
    t.errors += failed_calls_.load(std::memory_order_relaxed);
    t.latency_samples = latency_.count();
    t.latency_p50 = latency_.percentile(0.5);
    t.latency_p99 = latency_.percentile(0.99);
    t.violations = record_.violation_count();
    t.quarantined = record_.quarantined();
    t.last_exit = record_.last_exit();
    return t;
  }

  // The violations recorded (the last supervision_record::max_kept), oldest first.
  std::vector<violation> violations() const { return record_.violations(); }
  // Restarts, quarantines and releases, oldest first, each with its reason.
  std::vector<recovery> history() const { return record_.history(); }
  bool quarantined() const { return record_.quarantined(); }

  // Records a violation the plugin's worker survived (a refused system
  // call); quarantines the plugin if that brings it to its threshold.
  void violated(violation_kind kind, std::string details, std::string action) {
    if (record_.violated(kind, std::move(details), std::move(action))) quarantine_now();
  }

  // Quarantines the plugin now, as the host decides: its worker is stopped,
  // and calls fail with errc::quarantined until release().
  void quarantine(std::string reason) {
    if (record_.quarantine(std::move(reason))) stop_quarantined_worker();
  }

  // Lifts a quarantine and starts the plugin's worker again; returns once it
  // runs (or throws why it could not start: the plugin is down, not
  // quarantined, then). Nothing happens if the plugin is not quarantined.
  void release() {
    refuse_after_fork();
    if (!record_.release("released by the host")) return;
    auto fresh = start_session();
    std::shared_ptr<worker_session> old;
    {
      std::lock_guard lock(mutex_);
      old = std::exchange(current_, fresh);
    }
    restart_cv_.notify_all();
    if (old) old->stop();  // already dead: returns at once
    if (old) retire_replaced(*old);
  }
  // Replaces the worker now, whatever the restart policy says (the host
  // decides: manager::restart). A fresh worker starts first; then the old one
  // is stopped (asked, then killed after its grace) and its pending calls
  // fail with plugin_closed. Returns once the fresh one runs; if it cannot
  // start, throws why and the old one goes on serving. Not when quarantined.
  void restart_now(std::string reason) {
    refuse_after_fork();
    if (record_.quarantined()) throw quarantined_error();
    auto fresh = start_session();
    std::shared_ptr<worker_session> old;
    {
      std::lock_guard lock(mutex_);
      if (closing_) throw error(errc::plugin_closed, "the plugin is unloaded");
      ++restarts_;
      old = std::exchange(current_, fresh);
    }
    record_.restarted(std::move(reason));
    restart_cv_.notify_all();
    if (old) old->stop("the host restarted the plugin");  // not current_'s death: no restart follows it
    if (old) retire_replaced(*old);
  }

  // Hot reload: replaces the worker with a fresh one that loads the plugin
  // from `plugin` (a new build of the library, or the same path after the
  // file was replaced). The fresh worker starts, loads and passes the
  // fingerprint check first; if it cannot, this throws why and the old one
  // goes on serving, from the old file. Then calls go to the new one, the
  // old one is stopped (asked, then killed after its grace) and its calls
  // in flight fail with plugin_closed "the host reloaded the plugin".
  // Restarts after a crash load the new file from then on. Not when quarantined.
  void reload(const std::filesystem::path& plugin) {
    refuse_after_fork();
    if (record_.quarantined()) throw quarantined_error();
    auto fresh = start_session(&plugin);
    std::shared_ptr<worker_session> old;
    {
      std::lock_guard lock(mutex_);
      if (closing_) throw error(errc::plugin_closed, "the plugin is unloaded");
      spec_.plugin = plugin;
      old = std::exchange(current_, fresh);
    }
    record_.restarted(fmt::format("reloaded from {}", plugin.string()), recovery_action::reload);
    restart_cv_.notify_all();
    if (old) old->stop("the host reloaded the plugin");
    if (old) retire_replaced(*old);
  }
  // The plugin's library file: the one it was loaded from, or reloaded from last.
  std::filesystem::path plugin_path() const {
    std::lock_guard lock(mutex_);
    return spec_.plugin;
  }

  void kill(errc reason, std::string_view why) {
    std::shared_ptr<worker_session> session;
    {
      std::lock_guard lock(mutex_);
      session = current_;
    }
    if (session) session->kill(reason, why);
  }

  // A reply the proxy could not decode: the worker is not trusted again.
  void reply_undecodable(const std::string& why) noexcept override {
    try {
      kill(errc::protocol_error, "the plugin was killed because it sent a reply that does not decode: " + why);
    } catch (...) {
      kill(errc::protocol_error, "the plugin was killed because it sent a reply that does not decode");
    }
  }

 private:
  // One call in latency_sample_every is timed, on each thread: two clock
  // readings per call would cost the small call more than its telemetry may.
  // Odd, so that it does not fall in step with a caller's own sampling (the
  // benchmarks time one call in 64): those would then always pay for ours.
  static constexpr std::uint32_t latency_sample_every = 17;

  template <class Request>
  void call_now(Request& request, wire::buffer& reply, reply_decoder* decoder) {
    refuse_after_fork();
    const auto* attachments = take_attachments();
    const auto timeout = call_timeout();
    const auto deadline = deadline_after(timeout);
    thread_local std::uint32_t tick = 0;
    const bool sampled = ISOLATE_TELEMETRY && ++tick % latency_sample_every == 0;
    const auto began = sampled ? clock::now() : clock::time_point{};
    try {
      share_then(acquire(deadline), attachments, deadline)->call(request, reply, deadline, timeout, decoder);
    } catch (...) {
      failed_calls_.fetch_add(1, std::memory_order_relaxed);
      throw;
    }
    if (sampled) latency_.record(clock::now() - began);
  }

  // Checked first by every call: in a child of fork() nothing else here may be touched.
  void refuse_after_fork() const {
    if (made_in_.forked()) {
      throw error(errc::plugin_closed, "this process is a child of fork(); the plugin belongs to the process that "
                                       "loaded it: load it again in this process");
    }
  }

  // In a child of fork(): the session, the io_context and the threads are
  // the parent's to run. Close this process's descriptors and leak the rest
  // (destroying them would join threads that are not here, or touch the
  // epoll set the child shares with the parent).
  void abandon_after_fork() noexcept {
    if (current_) {
      current_->close_descriptors_after_fork();
      new std::shared_ptr<worker_session>(std::move(current_));  // leaked on purpose
    }
    // The io pool, its strand and the restart thread are the parent's: leaked on purpose.
    new std::shared_ptr<io_pool>(std::move(pool_));
    (void)strand_.release();
    new std::shared_ptr<callback_gate>(std::move(gate_));
    if (restart_thread_.joinable()) restart_thread_.detach();
    if (spec_.output) new std::shared_ptr<output_capture>(std::move(spec_.output));  // leaked on purpose: its thread is not here
  }

  // A zero or negative timeout means none.
  std::chrono::milliseconds call_timeout() const {
    auto timeout = next_call_timeout ? *next_call_timeout : spec_.options.call_timeout;
    return timeout <= std::chrono::milliseconds::zero() ? std::chrono::milliseconds::max() : timeout;
  }

  // The live session, waiting (until the deadline) while the current one is
  // being killed and a restart will follow.
  std::shared_ptr<worker_session> acquire(clock::time_point deadline) {
    if (record_.quarantined()) throw quarantined_error();
    std::unique_lock lock(mutex_);
    // A live worker serves even with a restart pending: the host replaced
    // the dead one during the backoff (that restart will not happen).
    auto usable = [&] {
      const bool live = current_ && current_->alive() && !current_->doomed();
      return closing_ || live || !(restarting_ || (current_ && current_->doomed() && may_restart()));
    };
    if (deadline == clock::time_point::max()) {
      restart_cv_.wait(lock, usable);
    } else if (!restart_cv_.wait_until(lock, deadline, usable)) {
      throw error(errc::timeout, "the plugin was still restarting when the call's time ran out");
    }
    if (closing_) throw error(errc::plugin_closed, "the plugin is unloaded");
    if (!current_ || !current_->alive()) {
      throw error(down_code_, down_message_.empty() ? "the plugin is not running" : down_message_);
    }
    return current_;
  }

  // Sends the worker the shared buffers of the call it is about to get.
  static std::shared_ptr<worker_session> share_then(std::shared_ptr<worker_session> session,
                                                    const buffer_attachments* attachments, clock::time_point deadline) {
    if (attachments != nullptr && !attachments->empty()) session->share_buffers(*attachments, deadline);
    return session;
  }

  bool may_restart() const {
    return spec_.options.restart.on_crash && restarts_ < spec_.options.restart.max_restarts && !record_.quarantined();
  }

  error quarantined_error() const {
    return error(errc::quarantined, fmt::format("the plugin '{}' is quarantined ({}); release() it to run it again",
                                                record_.plugin(), record_.quarantine_reason()));
  }

  // The violation a worker's death is, if it is one.
  static std::optional<violation_kind> violation_of(errc code) noexcept {
    switch (code) {
      case errc::limit_exceeded: return violation_kind::resource;
      case errc::timeout: return violation_kind::timeout;
      case errc::protocol_error: return violation_kind::protocol;
      case errc::plugin_crashed: return violation_kind::crash;
      default: return std::nullopt;  // unloaded, quarantined: the host's doing
    }
  }

  // The figures of a dead session, kept once it is replaced.
  struct totals {
    std::uint64_t calls = 0, errors = 0, bytes_sent = 0, bytes_received = 0;
    resource_usage usage;
  };

  // A session replaced by the host (restart, reload, release), once
  // stopped: its figures join the totals, unless its death already put them
  // there (it died while current, before the swap).
  void retire_replaced(const worker_session& session) {
    std::lock_guard lock(mutex_);
    if (retired_session_ != &session) retire(session);
  }

  // Called with mutex_ held, once per session, when it has died.
  void retire(const worker_session& session) {
    retired_.calls += session.calls();
    retired_.errors += session.errors();
    retired_.bytes_sent += session.bytes_sent();
    retired_.bytes_received += session.bytes_received();
    retired_.usage += session.usage();
    retired_session_ = &session;
  }

  // On the io strand: the worker's sandbox refused a system call (which it
  // survives): a violation, by what the call reached for.
  void on_refusal(const sandbox::refused_call& refused) {
    violated(sandbox::violation_kind_of(refused), sandbox::refusal_details(refused), sandbox::refusal_action(refused));
  }

  // The worker is killed with errc::quarantined (no restart follows).
  void stop_quarantined_worker() {
    std::shared_ptr<worker_session> session;
    {
      std::lock_guard lock(mutex_);
      session = current_;
    }
    if (session) session->kill(errc::quarantined, quarantined_error().what());
    restart_cv_.notify_all();
  }

  void quarantine_now() {
    quarantine(fmt::format("{} violations reached its threshold of {}", record_.violation_count(),
                           spec_.options.supervision.quarantine_after));
  }

  // On the io strand: a worker died. Records the violation its death is
  // (and quarantines the plugin if that was one too many), then restarts
  // it if the policy says so.
  void on_death(const std::shared_ptr<worker_session>& session) {
    errc code;
    std::string message;
    bool restarting = false;
    unsigned restarts = 0;
    {
      std::lock_guard lock(mutex_);
      if (session != current_) return;
      std::tie(down_code_, down_message_) = session->death();
      retire(*session);
      code = down_code_;
      message = down_message_;
      restarting = !closing_ && may_restart();
      restarts = restarts_;
    }
    // What the host lent it is released and its objects are gone; outside
    // the lock, since the host objects' destructors may call this plugin.
    spec_.capabilities->new_peer();
    record_.worker_ended(fmt::format("{}: {}", make_error_code(code).message(), message));
    if (const auto kind = violation_of(code)) {
      const bool quarantines = record_.next_violation_quarantines();
      const auto action = quarantines ? std::string("worker stopped; quarantined")
                          : restarting ? fmt::format("worker stopped; restart {} of {}", restarts + 1,
                                                    spec_.options.restart.max_restarts)
                                      : std::string("worker stopped");
      if (record_.violated(*kind, message, action, true)) quarantine_now();
    }
    std::unique_lock lock(mutex_);
    if (session != current_) return;
    if (closing_ || !may_restart()) {
      restart_cv_.notify_all();
      return;
    }
    restarting_ = true;
    auto delay = spec_.options.restart.backoff * (1u << std::min(restarts_, 16u));
    auto timer = std::make_shared<asio::steady_timer>(*strand_, delay);
    timer->async_wait([gate = gate_, timer](std::error_code ec) {
      if (!ec) gate->with([](process_link& self) { self.begin_restart(); });
    });
  }

  // On the io strand, when the restart's backoff is over: the restart itself
  // (a worker's start, up to its load timeout) runs on a thread of its own,
  // so the io threads all plugins share are never held up by it.
  void begin_restart() {
    std::thread previous;
    {
      std::lock_guard lock(mutex_);
      previous = std::move(restart_thread_);
    }
    if (previous.joinable()) previous.join();  // the last restart, done but for its last lines
    std::unique_lock lock(mutex_);
    if (!closing_) {
      try {
        restart_thread_ = std::thread([this] { restart(); });
        return;
      } catch (const std::system_error& e) {
        down_message_ = std::string("the plugin could not be restarted: no thread to start it on: ") + e.what();
      }
    }
    restarting_ = false;
    lock.unlock();
    restart_cv_.notify_all();
  }

  // On a thread of its own (begin_restart).
  void restart() {
    std::shared_ptr<worker_session> fresh;
    std::shared_ptr<worker_session> dead;
    std::string failure;
    std::string reason;
    {
      std::lock_guard lock(mutex_);
      // Unloading, quarantined, or the host replaced the dead worker during
      // the backoff (reload, restart_now): nothing to restart.
      if (closing_ || record_.quarantined() || (current_ && current_->alive())) {
        restarting_ = false;
        restart_cv_.notify_all();
        return;
      }
      dead = current_;
      ++restarts_;
      reason = down_message_;
    }
    try {
      fresh = start_session();
      record_.restarted(reason);  // before a call can see the new worker
    } catch (const std::exception& e) {
      fresh.reset();
      failure = std::string("the plugin could not be restarted: ") + e.what();
    }
    std::shared_ptr<worker_session> old;
    std::shared_ptr<worker_session> superseded;
    {
      std::lock_guard lock(mutex_);
      restarting_ = false;
      if (fresh && current_ != dead) {
        superseded = std::move(fresh);  // the host replaced the dead worker while this one started: it stays
      } else if (fresh) {
        old = std::exchange(current_, fresh);
      } else if (current_ == dead) {
        down_message_ = failure;
      }
    }
    // A session that died is released here, never on its own receiver; and
    // before the callers waiting for the restart go on, so that
    // none of them sees the dead worker's descriptors and memfds still open.
    old.reset();
    dead.reset();
    restart_cv_.notify_all();
    if (superseded) superseded->stop("the host replaced the plugin's worker while it restarted");
  }

  // After the last worker stopped (also one a restart started meanwhile):
  // delivers the last lines of the workers, waiting for them at most
  // output_capture::drain_grace, then no more.
  void close_output() noexcept {
    if (!spec_.output) return;
    spec_.output->drain(output_capture::drain_grace);
    spec_.output->close();
  }

  // A worker session with this link's callbacks, started; `plugin`, if
  // given, is the library it loads instead of the current one (a reload).
  std::shared_ptr<worker_session> start_session(const std::filesystem::path* plugin = nullptr) {
    std::shared_ptr<worker_session> session;
    {
      std::lock_guard lock(mutex_);  // a reload may change spec_.plugin meanwhile
      session = std::make_shared<worker_session>(spec_, *strand_);
    }
    if (plugin != nullptr) session->load_from(*plugin);
    spec_.capabilities->new_peer();  // a fresh worker: the old one's objects are gone
    session->start(
        [gate = gate_](const std::shared_ptr<worker_session>& s) {
          gate->with([&](process_link& self) { self.on_death(s); });
        },
        [gate = gate_](const sandbox::refused_call& refused) {
          gate->with([&](process_link& self) { self.on_refusal(refused); });
        },
        [gate = gate_](const std::string& details) {
          gate->with([&](process_link& self) {
            self.violated(violation_kind::resource, details, "recorded; the plugin runs on");
          });
        });
    try {
      session->run_plugin_load();
    } catch (...) {
      session->stop("the plugin did not finish its on_load", false);  // no on_stop: it never started
      throw;
    }
    return session;
  }

  fork_guard made_in_;
  launch_spec spec_;
  supervision_record record_;
  latency_histogram latency_;
  std::atomic<std::uint64_t> failed_calls_{0};  // calls that failed with an exception from the link
  // What the sessions and timers call back into this link through. The
  // destructor closes it: a late callback (a handler on the shared io
  // threads) then does nothing, and one under way is waited for.
  class callback_gate {
   public:
    explicit callback_gate(process_link* link) noexcept : link_(link) {}
    template <class F>
    void with(F&& f) {
      std::lock_guard lock(mutex_);
      if (link_ != nullptr) f(*link_);
    }
    void close() noexcept {
      std::lock_guard lock(mutex_);
      link_ = nullptr;
    }

   private:
    std::mutex mutex_;
    process_link* link_;
  };

  // Pointers, so that a forked child can leak them (they are the parent's).
  std::shared_ptr<io_pool> pool_;
  std::unique_ptr<io_pool::strand> strand_;  // this plugin's handlers run one at a time
  std::shared_ptr<callback_gate> gate_;
  std::thread restart_thread_;  // guarded by mutex_

  mutable std::mutex mutex_;
  std::condition_variable restart_cv_;
  std::shared_ptr<worker_session> current_;
  bool restarting_ = false;
  bool closing_ = false;
  unsigned restarts_ = 0;
  errc down_code_ = errc::plugin_crashed;
  std::string down_message_;
  totals retired_;                                     // of the sessions that died
  const worker_session* retired_session_ = nullptr;  // the last of them (maybe still current_)
};

}  // namespace isolate::detail

#endif
