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
#include <functional>
#include <string>
#include <string_view>

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

// Which of a worker's standard streams a line of output came from.
enum class output_stream { out, err };  // stdout, stderr

// One line a process plugin wrote to its stdout or stderr, as
// process::options::on_output receives it. The views are valid during the
// call only: copy what you keep.
struct output_line {
  std::string_view plugin;  // process::options::name, or else the stem of the plugin's file ("libparser")
  output_stream stream = output_stream::out;
  std::string_view text;    // without its '\n'
  // The line was longer than process::options::max_output_line: this piece
  // is that long, and the next line of this stream continues it.
  bool cut = false;
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
  // How long the plugin's on_stop may run when it is unloaded (its calls to
  // host services are served meanwhile); then the worker is killed.
  std::chrono::milliseconds stop_timeout{2'000};
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

  // The plugin's name in its telemetry, violations and captured output
  // (output_line::plugin); empty: the stem of the plugin's file (`libparser`
  // for `plugins/libparser.so`).
  std::string name;
  // Quarantine threshold and the host's callbacks on violations, crashes,
  // restarts and quarantine (telemetry.hpp).
  isolate::supervision supervision;
  // When set, the worker's stdout and stderr go to two pipes the host reads
  // (under every preset, whatever limits.worker_output says), and this gets
  // each line, in order within each stream (the two streams are not ordered
  // against each other). Stdout is line-buffered in the worker, as on a
  // terminal; stderr is unbuffered. A line longer than max_output_line comes
  // in pieces (output_line::cut); an unterminated last line comes when the
  // worker ends; each pipe is read to its end, so what a crashing worker
  // wrote arrives, and a restarted worker gets new pipes.
  //
  // Thread safety: a copy of the function is called on a thread the plugin
  // has for this alone, one line at a time (never two at once for one
  // plugin; a function shared by plugins is called from their threads).
  // While it runs, that plugin's pipes are not read: a slow function makes
  // a plugin that writes much wait in write(), and slows nothing else. So it
  // must not unload the plugin, and should not call it (a call that makes
  // the plugin write more than a pipe holds, 64 KiB, would wait for its
  // timeout). An exception it throws is caught and dropped, with the line
  // it was given; later lines are delivered as usual. It is not called
  // after the plugin is destroyed, which waits up to a second for the last
  // lines of its worker.
  std::function<void(const output_line&)> on_output;
  // The longest line on_output receives whole, in bytes (at least 1): what
  // the host holds of a line it has not seen the end of.
  std::size_t max_output_line = std::size_t{64} * 1024;
};


}  // namespace isolate

#endif
