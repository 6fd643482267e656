// The supervision of one process plugin: the current worker session, and the
// restart that replaces it after a crash (per restart_policy). Seen by the
// proxy as a link; isolate::process::connection owns one.
#ifndef ISOLATE_DETAIL_PROCESS_PROCESS_LINK_HPP
#define ISOLATE_DETAIL_PROCESS_PROCESS_LINK_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/fork_guard.hpp"
#include "isolate/detail/link.hpp"
#include "isolate/detail/process/launch_spec.hpp"
#include "isolate/detail/process/output_capture.hpp"
#include "isolate/detail/process/worker_session.hpp"
#include "isolate/error.hpp"
#include "isolate/transport/process_options.hpp"

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

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
        io_(std::make_unique<asio::io_context>()),
        work_(std::make_unique<work_guard>(asio::make_work_guard(*io_))) {
    if (spec_.options.on_output && !spec_.output) {
      auto name = spec_.options.name.empty() ? spec_.plugin.stem().string() : spec_.options.name;
      spec_.output = std::make_shared<output_capture>(std::move(name), std::move(spec_.options.on_output),
                                                      spec_.options.max_output_line);
    }
    io_thread_ = std::thread([this] { io_->run(); });
    try {
      auto session = std::make_shared<worker_session>(spec_, *io_);
      session->start([this](const std::shared_ptr<worker_session>& s) { on_death(s); });
      current_ = std::move(session);
    } catch (...) {
      shutdown_io();
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
    std::shared_ptr<worker_session> session;
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
      session = current_;
    }
    restart_cv_.notify_all();
    if (session) session->stop();
    shutdown_io();
    close_output();
  }

  void call(wire::buffer& request, wire::buffer& reply) override { call_now(request, reply); }
  void call_streamed(const streamed_call& request, wire::buffer& reply) override { call_now(request, reply); }

  void call_async(wire::buffer request, std::unique_ptr<completion> done) override {
    const auto* attachments = take_attachments();
    const auto timeout = call_timeout();
    const auto deadline = deadline_after(timeout);
    std::shared_ptr<worker_session> session;
    try {
      refuse_after_fork();
      session = share_then(acquire(deadline), attachments, deadline);
    } catch (...) {
      wire::buffer none;
      done->complete(std::current_exception(), none);
      return;
    }
    session->call_async(std::move(request), std::move(done), deadline, timeout);
  }

  std::size_t max_message_size() const noexcept override { return spec_.options.max_message_size; }

  // What the plugin sends back may only name buffers the host lent it.
  buffer_resolver* shared_buffers() noexcept override { return spec_.lent.get(); }

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
  template <class Request>
  void call_now(Request& request, wire::buffer& reply) {
    refuse_after_fork();
    const auto* attachments = take_attachments();
    const auto timeout = call_timeout();
    const auto deadline = deadline_after(timeout);
    share_then(acquire(deadline), attachments, deadline)->call(request, reply, deadline, timeout);
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
    (void)io_.release();  // leaked on purpose, with what it holds
    if (io_thread_.joinable()) io_thread_.detach();
    (void)work_.release();  // its destructor would wake the io_context the parent shares
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
    std::unique_lock lock(mutex_);
    auto usable = [&] { return closing_ || !(restarting_ || (current_ && current_->doomed() && may_restart())); };
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

  bool may_restart() const { return spec_.options.restart.on_crash && restarts_ < spec_.options.restart.max_restarts; }

  void on_death(const std::shared_ptr<worker_session>& session) {
    std::unique_lock lock(mutex_);
    if (session != current_) return;
    std::tie(down_code_, down_message_) = session->death();
    if (closing_ || !may_restart()) {
      restart_cv_.notify_all();
      return;
    }
    restarting_ = true;
    auto delay = spec_.options.restart.backoff * (1u << std::min(restarts_, 16u));
    auto timer = std::make_shared<asio::steady_timer>(*io_, delay);
    timer->async_wait([this, timer](std::error_code ec) {
      if (!ec) restart();
    });
  }

  // Runs on the io thread.
  void restart() {
    std::shared_ptr<worker_session> fresh;
    std::string failure;
    {
      std::lock_guard lock(mutex_);
      if (closing_) {
        restarting_ = false;
        restart_cv_.notify_all();
        return;
      }
      ++restarts_;
    }
    try {
      fresh = std::make_shared<worker_session>(spec_, *io_);
      fresh->start([this](const std::shared_ptr<worker_session>& s) { on_death(s); });
    } catch (const std::exception& e) {
      fresh.reset();
      failure = std::string("the plugin could not be restarted: ") + e.what();
    }
    std::shared_ptr<worker_session> old;
    {
      std::lock_guard lock(mutex_);
      restarting_ = false;
      if (fresh) {
        old = std::exchange(current_, fresh);
      } else {
        down_message_ = failure;
      }
    }
    restart_cv_.notify_all();
    // A session that died is joined here, on the io thread, never on its own receiver.
  }

  // After shutdown_io (which ends a worker a restart may have started
  // meanwhile): delivers the last lines of the workers, waiting for them at
  // most output_capture::drain_grace, then no more.
  void close_output() noexcept {
    if (!spec_.output) return;
    spec_.output->drain(output_capture::drain_grace);
    spec_.output->close();
  }

  void shutdown_io() {
    work_.reset();
    io_->stop();
    if (io_thread_.joinable()) io_thread_.join();
    std::lock_guard lock(mutex_);
    current_.reset();
  }

  fork_guard made_in_;
  launch_spec spec_;
  // Pointers, so that a forked child can leak them.
  using work_guard = asio::executor_work_guard<asio::io_context::executor_type>;
  std::unique_ptr<asio::io_context> io_;
  std::unique_ptr<work_guard> work_;
  std::thread io_thread_;

  mutable std::mutex mutex_;
  std::condition_variable restart_cv_;
  std::shared_ptr<worker_session> current_;
  bool restarting_ = false;
  bool closing_ = false;
  unsigned restarts_ = 0;
  errc down_code_ = errc::plugin_crashed;
  std::string down_message_;
};

}  // namespace isolate::detail

#endif
