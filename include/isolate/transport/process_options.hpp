// isolate::process's options and restart policy, apart from the transport's
// machinery: that machinery (detail/process/) needs them, and with them in
// transport/process.hpp the two would include each other, so that a detail
// header included first would not compile. transport/process.hpp includes
// this one; users include that.
#ifndef ISOLATE_TRANSPORT_PROCESS_OPTIONS_HPP
#define ISOLATE_TRANSPORT_PROCESS_OPTIONS_HPP

#include "isolate/detail/config.hpp"
#include "isolate/interface.hpp"
#include "isolate/limits.hpp"
#include "isolate/shm/waiter.hpp"
#include "isolate/telemetry.hpp"

#include <chrono>
#include <cstddef>
#include <filesystem>
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

  // The plugin's name in its telemetry, violations and captured output;
  // empty: the stem of the plugin's file (`libparser` for `plugins/libparser.so`).
  std::string name;
  // Quarantine threshold and the host's callbacks on violations, crashes,
  // restarts and quarantine (telemetry.hpp).
  isolate::supervision supervision;
};


}  // namespace isolate

#endif
