// The CPU time and peak memory of a worker, for its plugin's telemetry:
// read from /proc while it runs (the worker and its children: a sandboxed
// worker's PID 1 and the worker proper), and from the kernel's account at
// its end (the reap's rusage, which includes what it reaped).
#ifndef ISOLATE_DETAIL_PROCESS_PROCESS_USAGE_HPP
#define ISOLATE_DETAIL_PROCESS_PROCESS_USAGE_HPP

#include "isolate/detail/config.hpp"

#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

namespace isolate::detail {

struct resource_usage {
  std::int64_t user_us = 0, system_us = 0;
  std::uint64_t peak_rss_bytes = 0;

  resource_usage& operator+=(const resource_usage& other) noexcept {
    user_us += other.user_us;
    system_us += other.system_us;
    peak_rss_bytes = std::max(peak_rss_bytes, other.peak_rss_bytes);
    return *this;
  }
};

inline resource_usage usage_from(const rusage& r) noexcept {
  resource_usage u;
  u.user_us = r.ru_utime.tv_sec * 1'000'000 + r.ru_utime.tv_usec;
  u.system_us = r.ru_stime.tv_sec * 1'000'000 + r.ru_stime.tv_usec;
  u.peak_rss_bytes = static_cast<std::uint64_t>(r.ru_maxrss) * 1024;
  return u;
}

// One live process's own usage (not its children's); zeros if it is gone.
inline resource_usage usage_of_process(pid_t pid) {
  resource_usage u;
  const std::string base = "/proc/" + std::to_string(pid);
  {
    std::ifstream stat_file(base + "/stat");
    std::string stat;
    std::getline(stat_file, stat);
    // The name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    const auto close = stat.rfind(')');
    if (close != std::string::npos) {
      std::istringstream fields(stat.substr(close + 2));
      std::string field;
      // Fields 3.. : state(3) ... utime(14) stime(15).
      std::uint64_t utime = 0, stime = 0;
      for (int i = 3; i <= 15 && fields >> field; ++i) {
        if (i == 14) utime = std::stoull(field);
        if (i == 15) stime = std::stoull(field);
      }
      const auto tick_us = 1'000'000 / std::max(1L, ::sysconf(_SC_CLK_TCK));
      u.user_us = static_cast<std::int64_t>(utime) * tick_us;
      u.system_us = static_cast<std::int64_t>(stime) * tick_us;
    }
  }
  std::ifstream status(base + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) {
      u.peak_rss_bytes = std::stoull(line.substr(6)) * 1024;
      break;
    }
  }
  return u;
}

// A worker's usage so far: itself and its children (one level: a
// sandboxed worker's PID 1 and the worker proper).
inline resource_usage usage_of_worker(pid_t pid) {
  if (pid <= 0) return {};
  auto total = usage_of_process(pid);
  std::ifstream children("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  for (pid_t child = 0; children >> child;) total += usage_of_process(child);
  return total;
}

}  // namespace isolate::detail

#endif
