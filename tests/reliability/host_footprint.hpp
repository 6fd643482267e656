// What a host holds, read from /proc/self: what the reliability tests watch
// for leaks over many calls, restarts and kills.
#ifndef ISOLATE_TESTS_RELIABILITY_HOST_FOOTPRINT_HPP
#define ISOLATE_TESTS_RELIABILITY_HOST_FOOTPRINT_HPP

#include "../support/sanitizers.hpp"

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>

namespace reliability_test {

struct host_footprint {
  int fds = 0;
  int memfds = 0;      // descriptors of memfds (rings, shared buffers)
  int threads = 0;
  int mappings = 0;    // lines of /proc/self/maps
  int children = 0;    // live or zombie child processes
  std::uint64_t rss_bytes = 0;

  static host_footprint now() {
    namespace fs = std::filesystem;
    host_footprint f;
    for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
      ++f.fds;
      std::error_code ec;
      const auto target = fs::read_symlink(entry.path(), ec);
      if (!ec && target.string().starts_with("/memfd:")) ++f.memfds;
    }
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
      if (line.starts_with("Threads:")) f.threads = std::stoi(line.substr(8));
      if (line.starts_with("VmRSS:")) f.rss_bytes = std::stoull(line.substr(6)) * 1024;
    }
    std::ifstream maps("/proc/self/maps");
    for (std::string line; std::getline(maps, line);) ++f.mappings;
    for (const auto& task : fs::directory_iterator("/proc/self/task")) {
      std::ifstream children(task.path() / "children");
      for (int pid = 0; children >> pid;) ++f.children;
    }
    return f;
  }
};

inline std::ostream& operator<<(std::ostream& out, const host_footprint& f) {
  return out << "fds " << f.fds << ", memfds " << f.memfds << ", threads " << f.threads << ", mappings "
             << f.mappings << ", children " << f.children << ", RSS " << (f.rss_bytes >> 10) << " KiB";
}

// Sanitizers keep freed memory in quarantine and shadow it: RSS there is
// not the host's own, so it is not bounded.
inline constexpr bool sanitized = isolate_test::under_asan || isolate_test::under_tsan;

// A count from the environment (to run the full sizes by hand), or `fallback`.
inline long count_from_environment(const char* name, long fallback) {
  const char* text = std::getenv(name);
  return text != nullptr && *text != '\0' ? std::stol(text) : fallback;
}

}  // namespace reliability_test

#endif
