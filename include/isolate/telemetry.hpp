// What the host learns about a process plugin while it runs: violations of
// its limits (typed, timed, with what was done about them), the recoveries
// (restart, quarantine, release), and telemetry (calls, errors, latency,
// bytes, CPU, peak memory, restarts, last exit), readable at any time
// without stopping the plugin, printable with fmt and exportable as JSON.
//
//   isolate::process::options options;
//   options.name = "parser";
//   options.supervision.quarantine_after = 3;
//   options.supervision.on_violation = [](const isolate::violation& v) { log(fmt::format("{}", v)); };
//   auto p = isolate::load<parser, isolate::process>(path, options);
//   ...
//   fmt::print("{}\n", p.transport().telemetry());
//   if (p.transport().quarantined()) p.transport().release();
#ifndef ISOLATE_TELEMETRY_HPP
#define ISOLATE_TELEMETRY_HPP

#include "isolate/call_cost.hpp"
#include "isolate/detail/config.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace isolate {

// What a plugin did that it may not do, by kind.
enum class violation_kind {
  resource,    // past a memory, CPU, file-size limit (stopped), or out of files or processes
  timeout,     // a call ran past its time (the worker was killed)
  network,     // tried to reach the network (refused)
  filesystem,  // tried to open a path outside its own (refused)
  permission,  // made a system call the sandbox refuses
  crash,       // its worker died of a signal or an exit of its own
  protocol,    // sent the host bytes that break the protocol (the worker was killed)
};

constexpr std::string_view to_string(violation_kind kind) noexcept {
  switch (kind) {
    case violation_kind::resource: return "resource";
    case violation_kind::timeout: return "timeout";
    case violation_kind::network: return "network";
    case violation_kind::filesystem: return "filesystem";
    case violation_kind::permission: return "permission";
    case violation_kind::crash: return "crash";
    case violation_kind::protocol: return "protocol";
  }
  return "unknown";
}

struct violation {
  std::chrono::system_clock::time_point time;
  std::string plugin;
  violation_kind kind = violation_kind::crash;
  std::string details;  // "socket(AF_INET, SOCK_STREAM)", "memory limit of 64 MiB (RLIMIT_DATA)", ...
  std::string action;   // what was done: "refused (EACCES)", "worker killed", "worker killed; restarting", ...
};

// What the host did to bring a plugin back, or to keep it out.
enum class recovery_action { restart, quarantine, release, reload };

constexpr std::string_view to_string(recovery_action action) noexcept {
  switch (action) {
    case recovery_action::restart: return "restart";
    case recovery_action::quarantine: return "quarantine";
    case recovery_action::release: return "release";
    case recovery_action::reload: return "reload";
  }
  return "unknown";
}

struct recovery {
  std::chrono::system_clock::time_point time;
  std::string plugin;
  recovery_action action = recovery_action::restart;
  std::string reason;
};

// A process plugin's figures, over all its workers since it was loaded
// (CPU and memory: the current worker's so far and those of the workers
// before it).
struct plugin_telemetry {
  std::string plugin;
  bool running = false;
  bool quarantined = false;
  pid_t pid = -1;  // the current worker, as the host sees it; -1 while down
  std::chrono::milliseconds uptime{};  // of the current worker

  std::uint64_t calls = 0;   // sent to the plugin, synchronous and asynchronous
  std::uint64_t errors = 0;  // calls that failed: the plugin threw, or the call could not complete
  std::chrono::nanoseconds latency_p50{}, latency_p99{};  // of the calls sampled (one in 17)
  std::uint64_t latency_samples = 0;
  std::uint64_t bytes_sent = 0, bytes_received = 0;  // frames to and from the worker, headers included

  std::chrono::microseconds cpu_user{}, cpu_system{};
  std::uint64_t peak_memory_bytes = 0;  // the largest resident set of any of its workers

  unsigned restarts = 0;
  std::uint64_t violations = 0;
  std::string last_exit;  // how the last worker ended, and why ("killed by signal 9 (SIGKILL): timeout: ...")
};

// Called on the host's io threads (where exits and refusals are seen), on
// the thread that restarts a plugin after a crash, or on the host's thread
// that calls restart/reload/quarantine; never inside a call to the plugin.
// One call at a time per plugin. An exception it throws is dropped. It must
// not unload the plugin.
struct supervision {
  // Violations (since the load or the last release) at which the plugin is
  // quarantined: its worker is stopped, and calls fail with
  // errc::quarantined until release(). 0: never.
  unsigned quarantine_after = 0;
  std::function<void(const violation&)> on_violation;
  std::function<void(const violation&)> on_crash;  // its worker died unasked (crash, kill, limit, timeout)
  std::function<void(const recovery&)> on_restart;
  std::function<void(const recovery&)> on_quarantine;
};

namespace detail {

inline void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

inline std::string utc_text(std::chrono::system_clock::time_point time) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", std::chrono::floor<std::chrono::milliseconds>(time));
}

// "512 B", "3.2 KiB", "64.0 MiB"
inline std::string bytes_text(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  if (bytes < (std::uint64_t{1} << 20)) return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / 1024);
  if (bytes < (std::uint64_t{1} << 30)) return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
  return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1 << 30));
}

// "850 ns", "12.3 µs", "4.56 ms", "1.23 s"
inline std::string duration_text(std::chrono::nanoseconds d) {
  const auto ns = static_cast<double>(d.count());
  if (ns < 1e3) return fmt::format("{} ns", d.count());
  if (ns < 1e6) return fmt::format("{:.1f} us", ns / 1e3);
  if (ns < 1e9) return fmt::format("{:.2f} ms", ns / 1e6);
  return fmt::format("{:.2f} s", ns / 1e9);
}

}  // namespace detail

inline std::string to_json(const violation& v) {
  std::string out = "{\"time\":";
  detail::append_json_string(out, detail::utc_text(v.time));
  out += ",\"plugin\":";
  detail::append_json_string(out, v.plugin);
  out += ",\"kind\":";
  detail::append_json_string(out, to_string(v.kind));
  out += ",\"details\":";
  detail::append_json_string(out, v.details);
  out += ",\"action\":";
  detail::append_json_string(out, v.action);
  out += '}';
  return out;
}

inline std::string to_json(const recovery& r) {
  std::string out = "{\"time\":";
  detail::append_json_string(out, detail::utc_text(r.time));
  out += ",\"plugin\":";
  detail::append_json_string(out, r.plugin);
  out += ",\"action\":";
  detail::append_json_string(out, to_string(r.action));
  out += ",\"reason\":";
  detail::append_json_string(out, r.reason);
  out += '}';
  return out;
}

inline std::string to_json(const call_cost& c) {
  return fmt::format(
      "{{\"measured\":{},\"cpu_user_us\":{},\"cpu_system_us\":{},\"minor_faults\":{},\"major_faults\":{},"
      "\"peak_memory_growth_bytes\":{}}}",
      c.measured, c.cpu_user.count(), c.cpu_system.count(), c.minor_faults, c.major_faults,
      c.peak_memory_growth_bytes);
}

inline std::string to_json(const plugin_telemetry& t) {
  std::string out = "{\"plugin\":";
  detail::append_json_string(out, t.plugin);
  out += fmt::format(
      ",\"running\":{},\"quarantined\":{},\"pid\":{},\"uptime_ms\":{},\"calls\":{},\"errors\":{},"
      "\"latency_p50_ns\":{},\"latency_p99_ns\":{},\"latency_samples\":{},\"bytes_sent\":{},\"bytes_received\":{},"
      "\"cpu_user_us\":{},\"cpu_system_us\":{},\"peak_memory_bytes\":{},\"restarts\":{},\"violations\":{},"
      "\"last_exit\":",
      t.running, t.quarantined, t.pid, t.uptime.count(), t.calls, t.errors, t.latency_p50.count(),
      t.latency_p99.count(), t.latency_samples, t.bytes_sent, t.bytes_received, t.cpu_user.count(),
      t.cpu_system.count(), t.peak_memory_bytes, t.restarts, t.violations);
  detail::append_json_string(out, t.last_exit);
  out += '}';
  return out;
}

}  // namespace isolate

// "2026-12-06T07:41:02.120Z parser network: socket(AF_INET, SOCK_STREAM) -> refused (EACCES)"
template <>
struct fmt::formatter<isolate::violation> : fmt::formatter<std::string_view> {
  template <class Context>
  auto format(const isolate::violation& v, Context& ctx) const {
    return fmt::format_to(ctx.out(), "{} {} {}: {} -> {}", isolate::detail::utc_text(v.time), v.plugin,
                          isolate::to_string(v.kind), v.details, v.action);
  }
};

template <>
struct fmt::formatter<isolate::recovery> : fmt::formatter<std::string_view> {
  template <class Context>
  auto format(const isolate::recovery& r, Context& ctx) const {
    return fmt::format_to(ctx.out(), "{} {} {}: {}", isolate::detail::utc_text(r.time), r.plugin,
                          isolate::to_string(r.action), r.reason);
  }
};

// "cpu 1.20 ms user, 30.0 us system; 2100 page faults (0 major); peak +8.2 MiB"
template <>
struct fmt::formatter<isolate::call_cost> : fmt::formatter<std::string_view> {
  template <class Context>
  auto format(const isolate::call_cost& c, Context& ctx) const {
    using namespace isolate::detail;
    if (!c.measured) return fmt::format_to(ctx.out(), "not measured");
    return fmt::format_to(ctx.out(), "cpu {} user, {} system; {} page faults ({} major); peak +{}",
                          duration_text(c.cpu_user), duration_text(c.cpu_system), c.minor_faults + c.major_faults,
                          c.major_faults, bytes_text(c.peak_memory_growth_bytes));
  }
};

// A two-column table, one figure per line.
template <>
struct fmt::formatter<isolate::plugin_telemetry> : fmt::formatter<std::string_view> {
  template <class Context>
  auto format(const isolate::plugin_telemetry& t, Context& ctx) const {
    using namespace isolate::detail;
    auto out = ctx.out();
    const auto row = [&](std::string_view name, const std::string& value) {
      out = fmt::format_to(out, "{:<14}{}\n", name, value);
    };
    row("plugin", t.plugin);
    row("state", t.quarantined ? std::string("quarantined")
                 : t.running   ? fmt::format("running (pid {}), up {}", t.pid, duration_text(t.uptime))
                               : std::string("down"));
    row("calls", fmt::format("{} ({} failed)", t.calls, t.errors));
    row("latency", t.latency_samples == 0 ? std::string("-")
                                          : fmt::format("p50 {}, p99 {} ({} sampled)", duration_text(t.latency_p50),
                                                        duration_text(t.latency_p99), t.latency_samples));
    row("bytes", fmt::format("{} sent, {} received", bytes_text(t.bytes_sent), bytes_text(t.bytes_received)));
    row("cpu", fmt::format("{} user, {} system", duration_text(t.cpu_user), duration_text(t.cpu_system)));
    row("peak memory", bytes_text(t.peak_memory_bytes));
    row("restarts", fmt::format("{}", t.restarts));
    row("violations", fmt::format("{}", t.violations));
    out = fmt::format_to(out, "{:<14}{}", "last exit", t.last_exit.empty() ? std::string("-") : t.last_exit);
    return out;
  }
};

#endif
