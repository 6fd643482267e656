// What one run of isolate::sandbox did and cost, printable with fmt.
#ifndef ISOLATE_RUN_REPORT_HPP
#define ISOLATE_RUN_REPORT_HPP

#include "isolate/error.hpp"
#include "isolate/limits.hpp"
#include "isolate/telemetry.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace isolate {

struct run_report {
  std::string function;  // sandbox_options::name, else its symbol's name if exported, else "sandboxed function"
  std::string ending;    // "returned", "threw std::runtime_error", "killed by signal 11 (SIGSEGV)", ...
  std::optional<errc> error;
  bool warm = false;  // taken from the sandbox's warm pool (its process was started before the call)
  std::chrono::microseconds wall{0};                     // from the call to its result (or error)
  std::chrono::microseconds cpu_user{0}, cpu_system{0};  // of the runner, from its start
  std::uint64_t peak_memory_bytes = 0;                   // the runner's peak RSS (0 if it was killed)
  limits::report limits_in_force;
  std::vector<violation> violations;
};

}  // namespace isolate

template <>
struct fmt::formatter<isolate::run_report> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(const isolate::run_report& r, FormatContext& ctx) const {
    auto out = fmt::format_to(ctx.out(), "{}: {} in {} us{} (CPU {} us user, {} us system), peak memory {} KiB",
                              r.function, r.ending, r.wall.count(), r.warm ? " (warm)" : "", r.cpu_user.count(),
                              r.cpu_system.count(), r.peak_memory_bytes / 1024);
    for (const auto& v : r.violations) out = fmt::format_to(out, "\n  violation: {}", v);
    return out;
  }
};

#endif
