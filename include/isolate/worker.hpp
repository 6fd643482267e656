// The worker program of the process transport: it receives the plugin's path
// and the shared memory from the host, loads the plugin, and serves calls
// until the host says stop or goes away. One worker binary serves every
// plugin: it knows no interface, only the table the plugin exports.
//
//   // isolate_worker.cpp (isolate_add_plugin() generates this file)
//   #include <isolate/worker.hpp>
//   ISOLATE_WORKER_MAIN();
#ifndef ISOLATE_WORKER_HPP
#define ISOLATE_WORKER_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/plugin_entry.hpp"
#include "isolate/error.hpp"
#include "isolate/process/control_channel.hpp"
#include "isolate/process/fd_passing.hpp"
#include "isolate/process/frame_channel.hpp"
#include "isolate/process/handshake.hpp"
#include "isolate/shm/region.hpp"
#include "isolate/shm/ring.hpp"

#include <dlfcn.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace isolate {

namespace detail {

class worker {
 public:
  explicit worker(int control) : control_(control) {}

  int run() {
    std::error_code ec;
    auto message = read_message(control_, 64 * 1024, std::chrono::seconds(30), ec);
    if (ec || message.type != static_cast<std::uint32_t>(control_type::hello)) {
      return report(errc::protocol_error, "the worker did not receive its hello message");
    }
    hello_message hello;
    try {
      hello = decode_message<hello_message>(message.body);
    } catch (const std::exception& e) {
      return report(errc::protocol_error, std::string("the worker received a malformed hello: ") + e.what());
    }
    std::byte mark{};
    auto fds = receive_with_fds(control_, std::span<std::byte>(&mark, 1), 1, std::chrono::seconds(30), ec);
    if (ec) return report(errc::protocol_error, "the worker did not receive its channel: " + ec.message());
    if (hello.protocol_version != process_protocol_version || hello.cache_line != ISOLATE_CACHE_LINE) {
      return report(errc::protocol_error,
                    fmt::format("host and worker disagree on the protocol (host: version {}, cache line {}; "
                                "worker: version {}, cache line {}): rebuild both with the same isolate",
                                hello.protocol_version, hello.cache_line, process_protocol_version,
                                ISOLATE_CACHE_LINE));
    }
    if (const int status = load(hello); status != 0) return status;

    try {
      if (hello.shared_memory) {
        auto region = shm::region::attach(fds.front().get(), shm::duplex_layout::bytes_needed(hello.ring_capacity));
        shm::wait_policy policy;
        policy.max_spin = std::chrono::nanoseconds(hello.max_spin_ns);
        channel_ = frame_channel::over_rings(std::move(region), hello.ring_capacity, shm::duplex_side::worker, policy,
                                             hello.max_message_size);
      } else {
        channel_ = frame_channel::over_socket(std::move(fds.front()), hello.max_message_size);
      }
    } catch (const std::exception& e) {
      return report(errc::protocol_error, std::string("the worker cannot attach its channel: ") + e.what());
    }
    max_message_ = hello.max_message_size;
    write_message(control_, static_cast<std::uint32_t>(control_type::ready), {}, std::chrono::seconds(5), ec);
    if (ec) return 3;

    std::thread control_watch([this] { watch_control(); });
    serve(hello.concurrency == 0 ? 1 : hello.concurrency);
    entry_->destroy(object_);
    // The host either asked us to stop or is gone; the watch thread may still be blocked reading.
    control_watch.detach();
    return 0;
  }

 private:
  // Tells the host why loading failed; the worker then exits.
  int report(errc code, const std::string& text) {
    failed_message failure{static_cast<std::int32_t>(code), text};
    std::error_code ec;
    write_message(control_, static_cast<std::uint32_t>(control_type::failed), encode_message(failure),
                  std::chrono::seconds(5), ec);
    return 3;
  }

  int load(const hello_message& hello) {
    void* library = ::dlopen(hello.plugin_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      return report(errc::load_failed, fmt::format("cannot load plugin '{}': {}", hello.plugin_path, ::dlerror()));
    }
    auto* find = reinterpret_cast<plugin_entry_function>(::dlsym(library, plugin_entry_symbol));
    if (find == nullptr) {
      return report(errc::load_failed, fmt::format("'{}' does not export an isolate plugin (no symbol {}): "
                                                   "add ISOLATE_EXPORT_PLUGIN(interface, implementation) to it",
                                                   hello.plugin_path, plugin_entry_symbol));
    }
    entry_ = find();
    if (entry_ == nullptr || entry_->abi_version != plugin_abi_version) {
      return report(errc::load_failed, fmt::format("plugin '{}' was built with an incompatible isolate (plugin ABI {}, "
                                                   "worker ABI {}): rebuild it",
                                                   hello.plugin_path, entry_ ? entry_->abi_version : 0,
                                                   plugin_abi_version));
    }
    if (hello.interface_name != entry_->interface_name || hello.fingerprint != entry_->fingerprint) {
      return report(errc::fingerprint_mismatch,
                    fmt::format("plugin '{}' implements interface '{}' with fingerprint {:#018x}, but the host "
                                "expects interface '{}' with fingerprint {:#018x}: rebuild the plugin against the "
                                "host's interface header",
                                hello.plugin_path, entry_->interface_name, entry_->fingerprint, hello.interface_name,
                                hello.fingerprint));
    }
    try {
      object_ = entry_->create();
    } catch (const std::exception& e) {
      return report(errc::load_failed, fmt::format("plugin '{}' failed to start: {}", hello.plugin_path, e.what()));
    } catch (...) {
      return report(errc::load_failed, fmt::format("plugin '{}' failed to start", hello.plugin_path));
    }
    return 0;
  }

  // A shutdown message or the host going away (EOF) stops the worker.
  void watch_control() {
    for (;;) {
      std::error_code ec;
      auto message = read_message(control_, 1024, std::chrono::milliseconds::max(), ec);
      if (ec || message.type == static_cast<std::uint32_t>(control_type::shutdown)) break;
    }
    channel_.close();
  }

  void serve(std::size_t concurrency) {
    if (concurrency == 1) {
      wire::buffer frame, reply;
      while (receive(frame)) {
        handle(frame, reply);
        if (!send(reply)) break;
      }
      return;
    }
    // More than one call at a time: this thread receives, a pool runs the calls.
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<wire::buffer> queue;
    bool done = false;
    std::vector<std::thread> pool;
    for (std::size_t i = 0; i < concurrency; ++i) {
      pool.emplace_back([&] {
        wire::buffer reply;
        for (;;) {
          wire::buffer frame;
          {
            std::unique_lock lock(mutex);
            ready.wait(lock, [&] { return done || !queue.empty(); });
            if (queue.empty()) return;
            frame = std::move(queue.front());
            queue.pop_front();
          }
          handle(frame, reply);
          if (!send(reply)) channel_.close();
        }
      });
    }
    for (;;) {
      wire::buffer frame;
      if (!receive(frame)) break;
      {
        std::lock_guard lock(mutex);
        queue.push_back(std::move(frame));
      }
      ready.notify_one();
    }
    {
      std::lock_guard lock(mutex);
      done = true;
    }
    ready.notify_all();
    for (auto& t : pool) t.join();
  }

  bool receive(wire::buffer& frame) {
    return channel_.receive(frame, std::chrono::steady_clock::time_point::max()) == channel_status::ok;
  }
  bool send(const wire::buffer& reply) {
    return channel_.send(reply.bytes(), std::chrono::steady_clock::time_point::max()) == channel_status::ok;
  }
  void handle(const wire::buffer& frame, wire::buffer& reply) {
    entry_->handle(object_, frame.data(), frame.size(), reply, max_message_);
  }

  int control_;
  const plugin_entry* entry_ = nullptr;
  void* object_ = nullptr;
  frame_channel channel_;
  std::size_t max_message_ = 0;
};

}  // namespace detail

// The worker program's main.
inline int worker_main(int argc, char** argv) {
  // Die with the host, whatever way it goes.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  int control = -1;
  pid_t parent = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--isolate-control-fd=")) control = std::atoi(arg.substr(21).data());
    if (arg.starts_with("--isolate-parent=")) parent = static_cast<pid_t>(std::atoi(arg.substr(17).data()));
  }
  if (control < 0) {
    std::fputs("isolate-worker runs plugins for isolate::process; it is started by the host, not by hand.\n", stderr);
    return 2;
  }
  if (parent != 0 && ::getppid() != parent) return 1;  // the host died before PR_SET_PDEATHSIG took effect
  ::signal(SIGPIPE, SIG_IGN);
  return detail::worker(control).run();
}

}  // namespace isolate

#define ISOLATE_WORKER_MAIN() \
  int main(int argc, char** argv) { return ::isolate::worker_main(argc, argv); } \
  static_assert(true, "")

#endif
