// isolate::process: the plugin runs in a worker process of its own, reached
// through two shared-memory rings (or, as an option, a socket). The worker
// can crash, hang or scribble over shared memory; the host survives, every
// pending call fails at once with a named error, and the plugin can be
// restarted (restart_policy).
//
//   isolate::process::options options;
//   options.call_timeout = std::chrono::seconds(5);
//   options.restart = isolate::restart_policy::crash(3);
//   auto p = isolate::load<calculator, isolate::process>("plugins/libcalc.so", options);
#ifndef ISOLATE_TRANSPORT_PROCESS_HPP
#define ISOLATE_TRANSPORT_PROCESS_HPP

#include "isolate/detail/config.hpp"
#include "isolate/error.hpp"
#include "isolate/interface.hpp"
#include "isolate/limits.hpp"
#include "isolate/services.hpp"
#include "isolate/shm/waiter.hpp"

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

namespace isolate {

// What happens when a process plugin dies (crash, kill after a timeout or a
// protocol violation).
struct restart_policy {
  bool on_crash = false;
  unsigned max_restarts = 3;                    // over the plugin's lifetime
  std::chrono::milliseconds backoff{50};        // before the first restart; doubled for each one after

  static restart_policy never() { return {}; }
  static restart_policy crash(unsigned max_restarts = 3, std::chrono::milliseconds backoff = std::chrono::milliseconds(50)) {
    return {true, max_restarts, backoff};
  }
};

// isolate::process: the policy type, and its options.
struct process {
  struct options;
  static constexpr bool calls_can_time_out = true;

  template <interface Interface>
  class connection;
};

struct process::options {
  // The worker program. Empty: `isolate-worker` next to the plugin, then
  // $ISOLATE_WORKER, then next to the host executable.
  std::filesystem::path worker;
  std::chrono::milliseconds load_timeout{10'000};
  // Default limit of each call; a call may set its own (plugin::with_timeout).
  std::chrono::milliseconds call_timeout{30'000};
  restart_policy restart;
  // false: frames go over a socket instead of shared memory (no memfd needed).
  bool shared_memory = true;
  std::size_t ring_capacity = std::size_t{1} << 20;  // bytes per direction, a power of two
  std::size_t max_message_size = ISOLATE_DEFAULT_MAX_MESSAGE_SIZE;
  std::size_t concurrency = 1;  // calls the worker runs at once
  // How each end waits for the other's frames: it spins up to max_spin
  // (unless the two share a CPU), then sleeps on a futex; both ends use it.
  shm::wait_policy wait;
  // What the worker may use and reach (limits.hpp): minimal, the default,
  // is the host's rights; isolate::limits::standard() and up sandbox it.
  limits::policy limits = limits::minimal();
};


}  // namespace isolate

// The machinery below needs the options above: it includes this header back,
// which is then a no-op (as Asio's impl/ headers do).
#include "isolate/detail/process/process_link.hpp"
#include "isolate/detail/remote.hpp"

namespace isolate {

template <interface Interface>
class process::connection : public detail::remote_connection<Interface> {
 public:
  connection(const std::filesystem::path& plugin, const options& opts, const host_services& services = {})
      : detail::remote_connection<Interface>(std::make_unique<detail::process_link>(
            detail::launch_spec{plugin, std::string(Interface::isolate_meta::interface_name),
                                Interface::isolate_meta::fingerprint, opts, services})) {}

  detail::process_link& link() noexcept { return static_cast<detail::process_link&>(this->transport()); }

  // How each limit of options.limits holds in the running worker, as the
  // worker found it when it loaded the plugin.
  limits::report limits_in_force() { return link().limits_in_force(); }
  // The worker's process id as the host sees it (changes with each restart; -1 while down).
  pid_t pid() { return link().pid(); }
  // How many times the worker was restarted after dying.
  unsigned restarts() { return link().restarts(); }
};

}  // namespace isolate

#endif
