// A memory cgroup of one worker: the kernel's cap on all the memory its
// processes use, shared memory (MAP_SHARED, memfd, SysV, tmpfs pages)
// included, which RLIMIT_DATA does not count. Past the cap the kernel's OOM
// killer stops a process of the group, and the group's counter says so.
//
// Where the group is made: in a cgroup v2 directory whose subtree has the
// memory controller (a delegated hierarchy: a systemd unit with
// Delegate=yes, a container's), or, where memory is a cgroup v1 controller,
// in the host's own v1 memory group if the host may write there (root). The
// policy may name the parent directory; otherwise it is found from
// /proc/self/cgroup. Each worker gets a child "isolate-<host pid>-<n>",
// joined by the host before the worker runs any code of its own (sandboxed)
// or before it is sent the plugin (minimal), and removed once it is reaped.
#ifndef ISOLATE_DETAIL_SANDBOX_MEMORY_CGROUP_HPP
#define ISOLATE_DETAIL_SANDBOX_MEMORY_CGROUP_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/system_call.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace isolate::detail::sandbox {

// A directory in which a memory-capped child group can be made.
struct cgroup_parent {
  std::filesystem::path directory;
  int version = 0;  // 1 or 2
};

namespace cgroup_detail {

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline std::error_code write_text(const std::filesystem::path& path, std::string_view text) {
  return write_whole_file(path.c_str(), text);
}

inline std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    const auto end = text.find(separator, start);
    parts.emplace_back(text.substr(start, end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

// The value of `key` in a "key value" per line file (memory.events, memory.oom_control).
inline std::optional<std::uint64_t> keyed_value(const std::string& text, std::string_view key) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.size() > key.size() && line.compare(0, key.size(), key) == 0 && line[key.size()] == ' ') {
      try {
        return std::stoull(line.substr(key.size() + 1));
      } catch (...) {
        return std::nullopt;
      }
    }
  }
  return std::nullopt;
}

// Where a cgroup hierarchy is mounted: for v2 (`controller` empty) the
// cgroup2 mount, for v1 the cgroup mount carrying `controller`; with the
// mount's root (not "/" inside a cgroup namespace seen from outside).
inline std::optional<std::pair<std::filesystem::path, std::string>> mount_of(std::string_view controller) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  for (std::string line; std::getline(mountinfo, line);) {
    // id parent major:minor root mount-point options [optional...] - type source super-options
    const auto fields = split(line, ' ');
    std::size_t dash = 0;
    while (dash < fields.size() && fields[dash] != "-") ++dash;
    if (dash < 5 || dash + 3 >= fields.size()) continue;
    const auto& type = fields[dash + 1];
    if (controller.empty() ? type != "cgroup2" : type != "cgroup") continue;
    if (!controller.empty()) {
      bool carries = false;
      for (const auto& option : split(fields[dash + 3], ',')) carries = carries || option == controller;
      if (!carries) continue;
    }
    return std::pair{std::filesystem::path(fields[4]), fields[3]};
  }
  return std::nullopt;
}

inline std::filesystem::path under_mount(const std::pair<std::filesystem::path, std::string>& mount,
                                         std::string path) {
  const auto& root = mount.second;
  if (root != "/" && path.compare(0, root.size(), root) == 0) path.erase(0, root.size());
  return mount.first / std::filesystem::path(path).relative_path();
}

inline bool controls_memory_below(const std::filesystem::path& v2_directory) {
  for (const auto& name : split(read_text(v2_directory / "cgroup.subtree_control"), ' ')) {
    if (name == "memory" || name == "memory\n") return true;
  }
  return false;
}

}  // namespace cgroup_detail

// The parent `configured` names (a v2 directory with memory in its
// subtree, or a v1 memory group), or else one found from the host's own
// groups; nullopt with why not.
inline std::optional<cgroup_parent> find_cgroup_parent(const std::filesystem::path& configured, std::string& why) {
  using namespace cgroup_detail;
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!configured.empty()) {
    if (fs::exists(configured / "cgroup.subtree_control", ec)) {
      if (controls_memory_below(configured)) return cgroup_parent{configured, 2};
      why = configured.string() + " does not give its children the memory controller (cgroup.subtree_control)";
      return std::nullopt;
    }
    if (fs::exists(configured / "memory.limit_in_bytes", ec)) return cgroup_parent{configured, 1};
    why = configured.string() + " is not a cgroup v2 directory nor a cgroup v1 memory group";
    return std::nullopt;
  }
  std::ifstream self("/proc/self/cgroup");
  std::optional<fs::path> v2, v1;
  for (std::string line; std::getline(self, line);) {
    // hierarchy-id:controllers:path; v2 is "0::path".
    const auto first = line.find(':');
    const auto second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const auto controllers = line.substr(first + 1, second - first - 1);
    const auto path = line.substr(second + 1);
    if (controllers.empty() && line.compare(0, first, "0") == 0) {
      if (const auto mount = mount_of("")) v2 = under_mount(*mount, path);
    } else {
      for (const auto& c : split(controllers, ',')) {
        if (c != "memory") continue;
        if (const auto mount = mount_of("memory")) v1 = under_mount(*mount, path);
      }
    }
  }
  if (v2 && controls_memory_below(*v2) && ::access(v2->c_str(), W_OK) == 0) return cgroup_parent{*v2, 2};
  if (v1 && ::access(v1->c_str(), W_OK) == 0) return cgroup_parent{*v1, 1};
  if (v1) {
    why = "the host may not write its cgroup v1 memory group " + v1->string();
  } else if (v2) {
    why = "the host's cgroup v2 group " + v2->string() +
          " does not give its children the memory controller (no delegated hierarchy)";
  } else {
    why = "no cgroup memory controller is mounted";
  }
  return std::nullopt;
}

// A sanitized worker's own memory (shadow, quarantine) counts in its
// cgroup: the cap goes that much higher there, and says so.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr std::uint64_t cgroup_sanitizer_room_mb = 512;
#else
inline constexpr std::uint64_t cgroup_sanitizer_room_mb = 0;
#endif

class memory_cgroup {
 public:
  memory_cgroup() = default;
  memory_cgroup(memory_cgroup&& other) noexcept { *this = std::move(other); }
  memory_cgroup& operator=(memory_cgroup&& other) noexcept {
    if (this != &other) {
      remove();
      directory_ = std::exchange(other.directory_, {});
      version_ = std::exchange(other.version_, 0);
    }
    return *this;
  }
  ~memory_cgroup() { remove(); }

  // A new group under `parent`, capped at `limit_bytes` of memory, swap
  // included (none may go to swap instead).
  static memory_cgroup create(const cgroup_parent& parent, std::uint64_t limit_bytes, std::error_code& ec) {
    using cgroup_detail::write_text;
    static std::atomic<unsigned> made{0};
    memory_cgroup group;
    auto directory =
        parent.directory / ("isolate-" + std::to_string(::getpid()) + "-" + std::to_string(made.fetch_add(1)));
    if (::mkdir(directory.c_str(), 0755) != 0) {
      ec = last_system_error();
      return {};
    }
    group.directory_ = std::move(directory);
    group.version_ = parent.version;
    const auto limit = std::to_string(limit_bytes);
    if (parent.version == 2) {
      ec = write_text(group.directory_ / "memory.max", limit);
      // Optional files: no swap configured, or an older kernel.
      if (!ec) (void)write_text(group.directory_ / "memory.swap.max", "0");
      if (!ec) (void)write_text(group.directory_ / "memory.oom.group", "1");
    } else {
      ec = write_text(group.directory_ / "memory.limit_in_bytes", limit);
      if (!ec) (void)write_text(group.directory_ / "memory.memsw.limit_in_bytes", limit);
    }
    if (ec) return {};  // removes the directory
    return group;
  }

  explicit operator bool() const noexcept { return version_ != 0; }
  int version() const noexcept { return version_; }
  const std::filesystem::path& directory() const noexcept { return directory_; }

  // Moves process `pid` (not its existing children) into the group.
  std::error_code add(pid_t pid) const {
    return cgroup_detail::write_text(directory_ / "cgroup.procs", std::to_string(pid));
  }

  // How many times the kernel's OOM killer stopped a process of the group.
  std::uint64_t oom_kills() const {
    const auto file = version_ == 2 ? "memory.events" : "memory.oom_control";
    return cgroup_detail::keyed_value(cgroup_detail::read_text(directory_ / file), "oom_kill").value_or(0);
  }

  // The most memory the group used at once, if the kernel says.
  std::optional<std::uint64_t> peak_bytes() const {
    const auto text =
        cgroup_detail::read_text(directory_ / (version_ == 2 ? "memory.peak" : "memory.max_usage_in_bytes"));
    try {
      return std::stoull(text);
    } catch (...) {
      return std::nullopt;
    }
  }

  // "cgroup v1 memory.limit_in_bytes" or "cgroup v2 memory.max".
  std::string mechanism() const {
    return version_ == 2 ? "cgroup v2 memory.max" : "cgroup v1 memory.limit_in_bytes";
  }

 private:
  // An empty group goes away; one with processes left (a minimal worker's
  // descendants, which nothing kills) stays until they end.
  void remove() noexcept {
    if (version_ != 0) ::rmdir(directory_.c_str());
    version_ = 0;
  }

  std::filesystem::path directory_;
  int version_ = 0;
};

}  // namespace isolate::detail::sandbox

#endif
