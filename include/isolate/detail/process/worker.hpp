// The worker side of the process transport: it receives the plugin's path
// and the shared memory from the host, loads the plugin, and serves calls
// until the host says stop or goes away. It knows no interface, only the
// table the plugin exports. The program's main is in isolate/worker.hpp.
#ifndef ISOLATE_DETAIL_PROCESS_WORKER_HPP
#define ISOLATE_DETAIL_PROCESS_WORKER_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/plugin_entry.hpp"
#include "isolate/plugin_library.hpp"
#include "isolate/error.hpp"
#include "isolate/detail/process/buffer_sharing.hpp"
#include "isolate/detail/process/control_channel.hpp"
#include "isolate/detail/process/fd_passing.hpp"
#include "isolate/detail/process/frame_channel.hpp"
#include "isolate/detail/process/handshake.hpp"
#include "isolate/detail/process/reading_turns.hpp"
#include "isolate/detail/sandbox/init.hpp"
#include "isolate/detail/sandbox/worker_limits.hpp"
#include "isolate/services.hpp"
#include "isolate/detail/spin_wait.hpp"
#include "isolate/shm/region.hpp"
#include "isolate/shm/ring.hpp"

#include <fmt/format.h>
#include <dirent.h>
#include <malloc.h>
#include <poll.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace isolate {

namespace detail {

class worker;

// A link from the plugin to one of the host's objects, through the worker's channel.
class host_link final : public link {
 public:
  host_link(worker& owner, std::uint8_t service, bool one_way) : owner_(owner), service_(service), one_way_(one_way) {}
  void call(wire::buffer& request, wire::buffer& reply) override;
  void call_async(wire::buffer, std::unique_ptr<completion> done) override {
    wire::buffer none;
    done->complete(std::make_exception_ptr(error(errc::unsupported, "a plugin calls its host synchronously")), none);
  }
  std::size_t max_message_size() const noexcept override;
  buffer_resolver* shared_buffers() noexcept override;
  capability_table* capabilities() noexcept override;

 private:
  worker& owner_;
  std::uint8_t service_;
  bool one_way_;
};

// What the plugin sees of the host, in the worker: the host's objects through links.
class worker_context final : public plugin_context {
 public:
  worker_context(worker& owner, std::vector<service_description> services, std::string configuration)
      : plugin_context(std::move(configuration)), owner_(owner), services_(std::move(services)) {}

 protected:
  resolution resolve(std::string_view name, std::uint64_t fingerprint, bool one_way) override {
    const std::size_t index = find_service(services_, name, fingerprint);
    links_.push_back(std::make_unique<host_link>(owner_, static_cast<std::uint8_t>(index + 1), one_way));
    return {nullptr, links_.back().get()};
  }
  buffer_resolver* shared_buffers() noexcept override;
  // The objects the host hands the plugin: called through the channel like
  // its services (object_call frames say which), released one-way.
  object_links host_object_links() noexcept override { return {&object_calls_, &object_releases_}; }

 public:
  capability_table* capabilities() const noexcept { return capabilities_; }

 private:
  worker& owner_;
  std::vector<service_description> services_;
  std::vector<std::unique_ptr<host_link>> links_;
  host_link object_calls_{owner_, 0, false};
  host_link object_releases_{owner_, 0, true};
};

class worker {
 public:
  explicit worker(int control) : control_(control) {}

  std::size_t max_message_size() const noexcept { return max_message_; }
  capability_table* capabilities() const noexcept { return context_ ? context_->capabilities() : nullptr; }
  // The shared buffers the host sent this worker.
  received_buffers& buffers() noexcept { return buffers_; }

  // A call from the plugin to the host (service 1..n). Waits for the answer,
  // serving the host's calls meanwhile when this thread is the one reading.
  void call_host(std::uint8_t service, bool one_way, wire::buffer& request, wire::buffer& reply) {
    request.data()[offsetof(wire::frame_header, service)] = static_cast<std::byte>(service);
    if (one_way) {
      if (request.data()[offsetof(wire::frame_header, kind)] == static_cast<std::byte>(wire::frame_kind::call)) {
        request.data()[offsetof(wire::frame_header, kind)] = static_cast<std::byte>(wire::frame_kind::event);
      }
      if (!send(request)) throw error(errc::plugin_closed, "the host is gone");
      ring_doorbell();
      wire::begin_frame(reply);
      wire::finish_frame(reply, wire::frame_kind::reply, 0, 0, service);
      return;
    }
    host_call call;
    call.reply = &reply;
    std::uint64_t id = 0;
    {
      std::lock_guard lock(calls_mutex_);
      if (closed_) throw error(errc::plugin_closed, "the host is gone");
      id = ++last_call_id_;
      calls_.emplace(id, &call);
    }
    wire::set_call_id(request, id);
    if (!send(request)) {
      fail_host_calls();
      throw error(errc::plugin_closed, "the host is gone");
    }
    ring_doorbell();
    if (reading_thread_ == std::this_thread::get_id()) {
      // This thread reads the host's frames: keep serving them until the answer is in.
      wire::buffer frame;
      ring_payload large;
      while (!call.done.is_set()) {
        if (receive(frame, large) != channel_status::ok) {
          fail_host_calls();
          break;
        }
        route(frame, large);
      }
    } else {
      call.done.wait(std::chrono::microseconds(20));
    }
    if (call.failed) throw error(errc::plugin_closed, "the host is gone");
  }

  int run() {
    std::error_code ec;
    auto message = read_message(control_, max_hello_size, std::chrono::seconds(30), ec);
    if (ec || message.type != static_cast<std::uint32_t>(control_type::hello)) {
      return report(errc::protocol_error, "the worker did not receive its hello message");
    }
    hello_message hello;
    try {
      hello = decode_message<hello_message>(message.body);
    } catch (const std::exception& e) {
      // A hello of another protocol version may not decode at all: its first
      // field, the version, says why better than the decoder's complaint.
      if (std::uint32_t version = 0; message.body.size() >= sizeof version) {
        std::memcpy(&version, message.body.data(), sizeof version);
        if (version != process_protocol_version) return report_protocol_mismatch(version, 0);
      }
      return report(errc::protocol_error, std::string("the worker received a malformed hello: ") + e.what());
    }
    std::byte mark{};
    const std::size_t expected = hello.limits.plugin_fd_passed ? 2 : 1;
    auto fds = receive_with_fds(control_, std::span<std::byte>(&mark, 1), expected, std::chrono::seconds(30), ec);
    if (ec) {
      return report(errc::protocol_error, "the worker did not receive its channel: " + ec.message());
    }
    if (hello.protocol_version != process_protocol_version || hello.cache_line != ISOLATE_CACHE_LINE) {
      return report_protocol_mismatch(hello.protocol_version, hello.cache_line);
    }
    // The plugin's library, as the host opened it (a root host's worker may not reach its path).
    std::string plugin = hello.plugin_path;
    if (hello.limits.plugin_fd_passed) {
      plugin_file_ = std::move(fds.back());
      if (sandbox::namespace_proc != sandbox::proc_view::hidden) plugin = fmt::format("/proc/self/fd/{}", plugin_file_.get());
    }
    // The limits hold before the plugin's code runs, static initialisers included.
    sandbox::limits_applier limits(hello.limits.policy,
                                   {hello.limits.namespaces, hello.limits.network_namespace, plugin_file_.get(),
                                    hello.limits.memory_cgroup, hello.limits.no_memory_cgroup});
    // The host compiled the seccomp filter of this plan: loaded as is (one
    // system call; this thread is the worker's only one, as it must be).
    if (!hello.limits.seccomp_program.empty()) {
      sandbox::seccomp_detail::precompiled() = sandbox::seccomp_detail::compiled_plan{
          sandbox::plan_as_loaded(sandbox::seccomp_plan_for(hello.limits.policy, hello.limits.network_namespace)),
          ::getpid(), sandbox::seccomp_detail::program_of_words(hello.limits.seccomp_program)};
    }
    if (auto failure = limits.apply(hello.plugin_path)) {
      return report(errc::limit_unenforceable, "a limit cannot be enforced here: " + *failure);
    }
    // Refused calls wait for whoever holds the listener: the host, from now
    // on (the worker keeps no copy), before any code of the plugin runs.
    if (auto listener = limits.take_listener()) {
      const int fd = listener.get();
      write_message_with_fds(control_, static_cast<std::uint32_t>(control_type::seccomp_listener),
                             encode_message(listener_message{limits.landlock_reads(), limits.landlock_writes()}),
                             std::span<const int>(&fd, 1), std::chrono::seconds(5), ec);
      if (ec) return worker_exit_failed;
    }
    // The report goes out now, before any code of the plugin runs: that code
    // could write on the control socket too, and the host believes only this.
    write_message(control_, static_cast<std::uint32_t>(control_type::limits_applied),
                  encode_message(applied_message{limits.report()}), std::chrono::seconds(5), ec);
    if (ec) return worker_exit_failed;
    if (rlimit nofile{}; hello.limits.policy.open_files > 0 && ::getrlimit(RLIMIT_NOFILE, &nofile) == 0 &&
        nofile.rlim_cur <= max_sampled_descriptors) {
      descriptors_.limit = nofile.rlim_cur;
    }
    // "processes" in force: RLIMIT_NPROC is the policy's value.
    if (hello.limits.policy.processes > 0 && holds(limits.report(), "processes") && proc_is_this_namespaces()) {
      tasks_.limit = hello.limits.policy.processes;
    }
    if (sandbox::allocations_counted && hello.limits.policy.memory_mb > 0 && holds(limits.report(), "memory")) {
      memory_.limit = hello.limits.policy.memory_mb;
    }
    context_ = std::make_unique<worker_context>(*this, hello.services, hello.configuration);
    if (const int status = load(hello, plugin); status != 0) return status;

    try {
      if (hello.shared_memory) {
        auto region = shm::region::attach(fds.front().get(), shm::duplex_layout::bytes_needed(hello.ring_capacity));
        shm::wait_policy policy;
        policy.max_spin = std::chrono::nanoseconds(hello.max_spin_ns);
        policy.adaptive = hello.adaptive_spin;
        channel_ = frame_channel::over_rings(std::move(region), hello.ring_capacity, shm::duplex_side::worker, policy,
                                             hello.max_message_size);
      } else {
        channel_ = frame_channel::over_socket(std::move(fds.front()), hello.max_message_size);
      }
    } catch (const std::exception& e) {
      return report(errc::protocol_error, std::string("the worker cannot attach its channel: ") + e.what());
    }
    max_message_ = hello.max_message_size;
    // What the setup allocated and freed (the sandbox's filter, the hello,
    // the plugin's load) goes back to the system: an idle worker costs only
    // what it holds (a thousand idle plugins are a thousand of these).
    ::malloc_trim(0);
    write_message(control_, static_cast<std::uint32_t>(control_type::ready),
                  encode_message(ready_message{entry_->start != nullptr, entry_->stop != nullptr}), std::chrono::seconds(5), ec);
    if (ec) return worker_exit_failed;

    // Several calls at once over the rings: the pool's threads take turns reading.
    const std::size_t concurrency = hello.concurrency == 0 ? 1 : hello.concurrency;
    if (concurrency > 1 && channel_.inbound_ring() != nullptr && reading_turns::supported()) {
      turns_.emplace(*channel_.inbound_ring());
    }
    std::thread control_watch([this] { watch_control(); });
    const bool broken = (turns_ ? serve_in_turns(concurrency) : serve(concurrency)) == channel_status::corrupted;
    // The host asked us to stop or is gone; or the channel broke, and then
    // the plugin's objects are not trusted to tear down (nor is exit()'s
    // work run: the status must say why), and the status says so.
    if (broken) {
      control_watch.detach();  // it may still be blocked reading; nothing is torn down
      std::_Exit(worker_exit_channel_broken);
    }
    // The watcher may still be reading the control socket, or still inside
    // the close() that ended serve(): it uses this object (and the rings'
    // mapping) until it returns. Wake its read, and wait for it.
    ::shutdown(control_, SHUT_RD);
    control_watch.join();
    entry_->destroy(object_);
    // The objects the plugin handed the host go now, while the links their
    // own proxies of host objects would release through still exist (the
    // library's table would otherwise drop them when it is unloaded, after
    // this worker and its links are gone); their releases are not sent.
    if (auto* objects = capabilities()) objects->detach();
    return 0;
  }

 private:
  int report_protocol_mismatch(std::uint32_t host_version, std::uint32_t host_cache_line) {
    return report(errc::protocol_error,
                  fmt::format("host and worker disagree on the protocol (host: version {}, cache line {}; "
                              "worker: version {}, cache line {}): rebuild both with the same isolate",
                              host_version, host_cache_line, process_protocol_version, ISOLATE_CACHE_LINE));
  }

  // Tells the host why loading failed; the worker then exits.
  int report(errc code, const std::string& text) {
    failed_message failure{static_cast<std::int32_t>(code), text};
    std::error_code ec;
    write_message(control_, static_cast<std::uint32_t>(control_type::failed), encode_message(failure),
                  std::chrono::seconds(5), ec);
    return worker_exit_failed;
  }

  int load(const hello_message& hello, const std::string& plugin) {
    try {
      library_.emplace(plugin);
      library_->check(hello.interface_name, hello.fingerprint);
      entry_ = &library_->entry();
    } catch (const error& e) {
      return report(static_cast<errc>(e.code().value()), wire::message_of(e));
    }
    try {
      object_ = entry_->create(context_.get());
    } catch (const error& e) {
      // refuse_load (or an isolate error of its own making): its code goes to the host.
      if (e.code() == errc::load_refused) {
        return report(errc::load_refused,
                      fmt::format("plugin '{}' refused to start: {}", hello.plugin_path, wire::message_of(e)));
      }
      return report(errc::load_failed, fmt::format("plugin '{}' failed to start: {}", hello.plugin_path, e.what()));
    } catch (const std::exception& e) {
      return report(errc::load_failed, fmt::format("plugin '{}' failed to start: {}", hello.plugin_path, e.what()));
    } catch (...) {
      return report(errc::load_failed, fmt::format("plugin '{}' failed to start", hello.plugin_path));
    }
    return 0;
  }

  // A shutdown message or the host going away (EOF) stops the worker. Under
  // an open_files or a processes limit, while nothing arrives, what the
  // plugin holds is counted every sample_interval: the kernel tells no one
  // when an open fails with EMFILE or a fork or a thread with EAGAIN, so the
  // host learns that the plugin holds all it may from here (a plugin that
  // runs out and gives them back within one interval goes unseen). Under a
  // memory limit, allocations refused since the last look are reported
  // (those the worker's operator new counted: the plugin caught bad_alloc).
  void watch_control() {
    for (;;) {
      if ((descriptors_.limit > 0 || tasks_.limit > 0 || memory_.limit > 0) &&
          !control_readable_within(sample_interval)) {
        if (descriptors_.limit > 0) report_if_full(descriptors_, descriptors_in_use(), control_type::descriptors_full);
        if (tasks_.limit > 0) report_if_full(tasks_, tasks_in_use(), control_type::tasks_full);
        if (memory_.limit > 0) report_refused_allocations();
        continue;
      }
      std::error_code ec;
      std::vector<unique_fd> fds;
      auto message = read_message_with_fds(control_, 1024, 1, fds, std::chrono::milliseconds::max(), ec);
      if (ec || message.type == static_cast<std::uint32_t>(control_type::shutdown)) break;
      handle_control(message, fds);
    }
    buffers_.close();
    channel_.close();
    if (turns_) turns_->stop();
  }

  static constexpr auto sample_interval = std::chrono::seconds(1);
  static constexpr std::uint64_t max_sampled_descriptors = 65536;

  // A limit the worker samples: reported once per stretch at the limit.
  struct sampled_limit {
    std::uint64_t limit = 0;  // 0: not sampled
    bool was_full = false;
  };

  void report_if_full(sampled_limit& sampled, std::uint64_t in_use, control_type type) {
    const bool full = in_use >= sampled.limit;
    if (full && !sampled.was_full && !send_exhausted(type, {std::min(in_use, sampled.limit), sampled.limit})) return;
    sampled.was_full = full;
  }

  // Allocations refused at the memory limit since the last look (memory_.limit
  // is memory_mb): reported once per stretch of intervals that have some,
  // with how many.
  void report_refused_allocations() {
    const std::uint64_t refused = sandbox::refused_allocations.load(std::memory_order_relaxed);
    const std::uint64_t fresh = refused - allocations_refused_seen_;
    if (fresh > 0 && !memory_.was_full && !send_exhausted(control_type::memory_refused, {fresh, memory_.limit})) return;
    memory_.was_full = fresh > 0;
    allocations_refused_seen_ = refused;
  }

  // One report to the host. False when there was no memory to write it (the
  // plugin holds all its memory limit allows, and its own new_handler
  // throws): the next look tries again.
  bool send_exhausted(control_type type, exhausted_message message) {
    try {
      std::lock_guard lock(control_mutex_);
      std::error_code ec;
      write_message(control_, static_cast<std::uint32_t>(type), encode_message(message), std::chrono::seconds(5), ec);
      return true;
    } catch (const std::bad_alloc&) {
      return false;
    }
  }

  // False when `timeout` passed with nothing to read on the control socket
  // (an error or hang-up counts as readable: the read then says what).
  bool control_readable_within(std::chrono::milliseconds timeout) const noexcept {
    pollfd watched{control_, POLLIN, 0};
    return ::poll(&watched, 1, static_cast<int>(timeout.count())) != 0;
  }

  // How many descriptors the process holds: every one is below the limit
  // (RLIMIT_NOFILE bounds their numbers), and poll marks the closed ones.
  std::uint64_t descriptors_in_use() {
    descriptor_probe_.resize(descriptors_.limit);
    for (std::size_t fd = 0; fd < descriptor_probe_.size(); ++fd) descriptor_probe_[fd] = {static_cast<int>(fd), 0, 0};
    if (::poll(descriptor_probe_.data(), descriptor_probe_.size(), 0) < 0) return 0;
    std::uint64_t closed = 0;
    for (const auto& probe : descriptor_probe_) closed += (probe.revents & POLLNVAL) != 0 ? 1 : 0;
    return descriptors_.limit - closed;
  }

  static bool holds(const limits::report& report, std::string_view limit) {
    for (const auto& entry : report) {
      if (entry.limit == limit) return entry.in_force;
    }
    return false;
  }

  // Whether /proc is the one of the worker's own PID namespace (mounted
  // before the worker started): it then lists every task RLIMIT_NPROC counts
  // (the namespace's user is the worker's alone), and nothing else.
  static bool proc_is_this_namespaces() { return sandbox::namespace_proc == sandbox::proc_view::own; }

  // The processes and threads of the worker's namespace, from its /proc (0
  // if it cannot be read: the plugin may hold every descriptor).
  static std::uint64_t tasks_in_use() {
    std::uint64_t tasks = 0;
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) return 0;
    while (const dirent* entry = ::readdir(proc)) {
      if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
      DIR* threads = ::opendir(fmt::format("/proc/{}/task", entry->d_name).c_str());
      if (threads == nullptr) continue;  // gone meanwhile
      while (const dirent* thread = ::readdir(threads)) tasks += thread->d_name[0] != '.' ? 1 : 0;
      ::closedir(threads);
    }
    ::closedir(proc);
    return tasks;
  }

  // One message from the host after the handshake; the host is trusted, but
  // what does not parse is ignored rather than believed.
  void handle_control(const control_message& message, std::vector<unique_fd>& fds) {
    try {
      switch (static_cast<control_type>(message.type)) {
        case control_type::share_buffer: {
          const auto shared = decode_message<buffer_message>(message.body);
          buffers_.add(shared.id, shared.size, fds.empty() ? unique_fd() : std::move(fds.front()), shared.lending);
          break;
        }
        case control_type::forget_buffer: {
          const auto forgotten = decode_message<forget_message>(message.body);
          buffers_.forget(forgotten.id, forgotten.answers);
          break;
        }
        case control_type::sync: {
          std::lock_guard lock(control_mutex_);
          std::error_code ec;
          write_message(control_, static_cast<std::uint32_t>(control_type::synced), message.body,
                        std::chrono::seconds(5), ec);
          break;
        }
        default:
          break;
      }
    } catch (const error&) {
      // A body that does not decode is ignored.
    }
  }

  // A call from the plugin waiting for the host's answer.
  struct host_call {
    signal_flag done;
    wire::buffer* reply = nullptr;
    bool failed = false;
  };

  // Serves the host's calls until the channel closes (stop, or the host went
  // away) or breaks; returns which.
  channel_status serve(std::size_t concurrency) {
    concurrency_ = concurrency;
    reading_thread_ = std::this_thread::get_id();
    std::vector<std::thread> pool;
    for (std::size_t i = 0; concurrency > 1 && i < concurrency; ++i) {
      pool.emplace_back([this] {
        wire::buffer reply;
        for (;;) {
          wire::buffer frame;
          {
            std::unique_lock lock(queue_mutex_);
            queue_ready_.wait(lock, [&] { return queue_closed_ || !queue_.empty(); });
            if (queue_.empty()) return;
            frame = std::move(queue_.front());
            queue_.pop_front();
          }
          handle(frame, reply);
          if (!send(reply)) channel_.close();
        }
      });
    }
    wire::buffer frame;
    ring_payload large;
    channel_status status;
    while ((status = receive(frame, large)) == channel_status::ok) route(frame, large);
    fail_host_calls();
    {
      std::lock_guard lock(queue_mutex_);
      queue_closed_ = true;
    }
    queue_ready_.notify_all();
    for (auto& t : pool) t.join();
    return status;
  }

  // Serves with `concurrency` calls at once, the threads taking turns at
  // reading (reading_turns.hpp): concurrency + 1 threads, so that one is
  // always free to read the answers to the plugin's calls to the host.
  channel_status serve_in_turns(std::size_t concurrency) {
    concurrency_ = concurrency;
    std::vector<std::thread> others;
    for (std::size_t i = 0; i < concurrency; ++i) others.emplace_back([this] { take_turns(); });
    take_turns();
    for (auto& t : others) t.join();
    std::lock_guard lock(queue_mutex_);
    return end_status_;
  }

  void take_turns() {
    wire::buffer frame;
    wire::buffer reply;
    for (;;) {
      while (!turns_->try_take()) {
        if (turns_->stopping()) return stop_serving(channel_status::closed);
        turns_->wait();
      }
      if (!read_until_call(frame)) return;
      turns_->give_up();
      // Run it, then whatever calls queued up meanwhile, then look for the turn.
      for (;;) {
        handle(frame, reply);
        if (!send(reply)) return stop_serving(channel_status::closed);
        std::lock_guard lock(queue_mutex_);
        if (queue_.empty()) {
          --running_;
          break;
        }
        frame = std::move(queue_.front());
        queue_.pop_front();
      }
    }
  }

  // The turn's holder reads until a call it may run (fewer than `concurrency`
  // run): answers go to the plugin's waiting calls, calls beyond the limit
  // wait in the queue. False when the channel ended.
  bool read_until_call(wire::buffer& frame) {
    ring_payload none;  // large calls are copied out: the turn moves on while they run
    for (;;) {
      const channel_status status = channel_.receive(frame, std::chrono::steady_clock::time_point::max(), nullptr);
      if (status != channel_status::ok) {
        stop_serving(status);
        return false;
      }
      if (!is_call(frame)) {
        route(frame, none);
        continue;
      }
      std::lock_guard lock(queue_mutex_);
      if (running_ < concurrency_) {
        ++running_;
        return true;
      }
      queue_.push_back(std::move(frame));
    }
  }

  // The channel ended (`status` says how) or broke: every thread stops
  // taking turns, and the plugin's calls to the host fail.
  void stop_serving(channel_status status) {
    {
      std::lock_guard lock(queue_mutex_);
      if (end_status_ == channel_status::ok) end_status_ = status;
    }
    fail_host_calls();
    channel_.close();
    turns_->stop();
  }

  static bool is_call(const wire::buffer& frame) noexcept {
    wire::frame_header header{};
    if (frame.size() < wire::header_size) return false;
    std::memcpy(&header, frame.data(), wire::header_size);
    return runs_as_call(header.kind);
  }

  // The frames from the host that run plugin code and are answered.
  static bool runs_as_call(wire::frame_kind kind) noexcept {
    return kind == wire::frame_kind::call || kind == wire::frame_kind::accounted_call ||
           kind == wire::frame_kind::lifecycle || kind == wire::frame_kind::object_call ||
           kind == wire::frame_kind::release;
  }

  // One frame from the host: a call to run, or the answer to a call to the host.
  void route(wire::buffer& frame, ring_payload& large) {
    if (large.active()) {
      // A large call, decoded straight from the ring.
      wire::buffer reply;
      ++host_calls_running_on_this_thread;
      entry_->handle(object_, large.first().data(), large.first().size(), &large, reply, reply_stream(), max_message_);
      --host_calls_running_on_this_thread;
      revoke_lends();
      if (!large.end() || !send(reply)) channel_.close();
      return;
    }
    wire::frame_header header{};
    if (frame.size() < wire::header_size) return;
    std::memcpy(&header, frame.data(), wire::header_size);
    if (runs_as_call(header.kind)) {
      if (concurrency_ == 1) {
        wire::buffer reply;  // not shared: the call may nest another call from the host
        handle(frame, reply);
        if (!send(reply)) channel_.close();
        return;
      }
      {
        std::lock_guard lock(queue_mutex_);
        queue_.push_back(std::move(frame));
      }
      queue_ready_.notify_one();
      return;
    }
    // The answer to one of the plugin's calls to the host.
    std::lock_guard lock(calls_mutex_);
    auto found = calls_.find(header.call_id);
    if (found == calls_.end()) return;
    std::swap(*found->second->reply, frame);
    found->second->done.set();
    calls_.erase(found);
  }

  void fail_host_calls() {
    std::lock_guard lock(calls_mutex_);
    closed_ = true;
    for (auto& [id, call] : calls_) {
      call->failed = true;
      call->done.set();
    }
    calls_.clear();
  }

  // Tells the host to read a frame no call of its waits for. Not needed while
  // this thread runs a call from the host: the host reads until that call's answer.
  void ring_doorbell() {
    if (host_calls_running_on_this_thread > 0) return;
    std::lock_guard lock(control_mutex_);
    std::error_code ec;
    write_message(control_, static_cast<std::uint32_t>(control_type::doorbell), {}, std::chrono::seconds(5), ec);
  }

  // A large call is left in the ring for `large` to stream, unless a pool
  // thread will run it (it must then be copied out).
  channel_status receive(wire::buffer& frame, ring_payload& large) {
    return channel_.receive(frame, std::chrono::steady_clock::time_point::max(), concurrency_ == 1 ? &large : nullptr);
  }
  // Sends a reply, unless the plugin's stub streamed it already (`reply` is empty).
  bool send(const wire::buffer& reply) {
    if (reply.size() == 0) return true;
    return channel_.send(reply.bytes(), std::chrono::steady_clock::time_point::max()) == channel_status::ok;
  }
  void handle(const wire::buffer& frame, wire::buffer& reply) {
    ++host_calls_running_on_this_thread;
    entry_->handle(object_, frame.data(), frame.size(), nullptr, reply, reply_stream(), max_message_);
    --host_calls_running_on_this_thread;
    revoke_lends();
  }

  // A large result goes straight into the ring (over a socket it is gathered).
  wire::reply_stream* reply_stream() noexcept { return channel_.uses_shared_memory() ? &ring_reply_ : nullptr; }

  class ring_reply final : public wire::reply_stream {
   public:
    explicit ring_reply(worker& owner) noexcept : owner_(owner) {}
    bool send(const wire::frame_header& header, void (*write)(wire::output_archive&, const void*),
              const void* value) override {
      owner_.revoke_lends();  // before the reply goes, as for a gathered one
      std::exception_ptr thrown;
      const auto status = owner_.channel_.send_streamed(
          header, std::chrono::steady_clock::time_point::max(),
          [&](wire::output_archive& archive) { write(archive, value); }, thrown);
      if (status == channel_status::ok && !thrown) return true;
      owner_.channel_.close();  // a frame cut short: the host is out of step
      return false;
    }

   private:
    worker& owner_;
  };

  // Before the reply goes: the buffers lent for this call only are taken
  // from the plugin. If the kernel would not, the lend's promise cannot be
  // kept: the worker ends (the host sees it die) rather than answer.
  void revoke_lends() {
    if (!buffers_.revoke_taken()) std::_Exit(worker_exit_channel_broken);
  }

  static inline thread_local int host_calls_running_on_this_thread = 0;

  int control_;
  std::mutex control_mutex_;  // doorbells from several plugin threads
  sampled_limit descriptors_;  // open_files, when set (and small enough to count)
  sampled_limit tasks_;        // processes, when RLIMIT_NPROC holds and /proc is the namespace's
  sampled_limit memory_;       // memory_mb, when RLIMIT_DATA holds and operator new counts
  std::uint64_t allocations_refused_seen_ = 0;
  std::vector<pollfd> descriptor_probe_;
  received_buffers buffers_;
  unique_fd plugin_file_;  // the plugin's library when the host passed it open
  std::optional<plugin_library> library_;
  const plugin_entry* entry_ = nullptr;
  std::unique_ptr<worker_context> context_;
  void* object_ = nullptr;
  frame_channel channel_;
  ring_reply ring_reply_{*this};
  std::size_t max_message_ = 0;
  std::size_t concurrency_ = 1;
  std::thread::id reading_thread_;

  std::mutex queue_mutex_;  // calls waiting for a pool thread (concurrency > 1)
  std::condition_variable queue_ready_;
  std::deque<wire::buffer> queue_;
  bool queue_closed_ = false;
  // Over the rings, the pool takes turns reading instead (serve_in_turns).
  std::optional<reading_turns> turns_;
  std::size_t running_ = 0;                         // calls running (queue_mutex_)
  channel_status end_status_ = channel_status::ok;  // why the serving ended (queue_mutex_)

  std::mutex calls_mutex_;  // the plugin's calls to the host that wait for an answer
  std::unordered_map<std::uint64_t, host_call*> calls_;
  std::uint64_t last_call_id_ = 0;
  bool closed_ = false;
};

inline void host_link::call(wire::buffer& request, wire::buffer& reply) {
  owner_.call_host(service_, one_way_, request, reply);
}
inline std::size_t host_link::max_message_size() const noexcept { return owner_.max_message_size(); }
inline buffer_resolver* host_link::shared_buffers() noexcept { return &owner_.buffers().answers(); }
inline capability_table* host_link::capabilities() noexcept { return owner_.capabilities(); }
inline buffer_resolver* worker_context::shared_buffers() noexcept { return &owner_.buffers(); }

}  // namespace detail

}  // namespace isolate

#endif
