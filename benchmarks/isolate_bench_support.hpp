// What isolate's benchmark rows share: the plugin's path, placing a worker
// process on a CPU, and reading a process's memory and CPU use from /proc.
#ifndef ISOLATE_BENCHMARKS_ISOLATE_BENCH_SUPPORT_HPP
#define ISOLATE_BENCHMARKS_ISOLATE_BENCH_SUPPORT_HPP

#include "bench_interface.hpp"
#include "ipc_baseline.hpp"

#include <isolate/isolate.hpp>

#include <dirent.h>
#include <sched.h>
#include <sys/types.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#ifndef ISOLATE_BENCH_PLUGIN
#error "ISOLATE_BENCH_PLUGIN must name the benchmark plugin (benchmarks/CMakeLists.txt defines it)"
#endif

namespace isolate::bench {

inline constexpr char const* plugin_path = ISOLATE_BENCH_PLUGIN;

// Round trips run before timing, as for the baselines: the worker is
// scheduled, its pages are faulted in, adaptive spinning has settled.
inline constexpr int warm_up_calls = 200;

// Pins every thread of process `pid` (the worker's serving thread and its
// control thread) to `cpu`. Threads the worker starts later inherit it.
inline void pin_process(pid_t pid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  std::string const dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* tasks = ::opendir(dir.c_str());
  if (tasks == nullptr) throw std::runtime_error("cannot list " + dir);
  int pinned = 0;
  while (dirent* entry = ::readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    if (::sched_setaffinity(static_cast<pid_t>(std::stol(entry->d_name)), sizeof set, &set) == 0) ++pinned;
  }
  ::closedir(tasks);
  if (pinned == 0) throw std::runtime_error("cannot pin worker " + std::to_string(pid));
}

// A field of /proc/<pid>/status given in kB ("VmRSS", "RssAnon"...), in bytes; 0 if absent.
inline std::uint64_t status_bytes(pid_t pid, std::string const& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, field.size() + 1, field + ":") != 0) continue;
    std::istringstream values(line.substr(field.size() + 1));
    std::uint64_t kib = 0;
    values >> kib;
    return kib * 1024;
  }
  return 0;
}

// Proportional set size (shared pages divided among the processes mapping them), in bytes.
inline std::uint64_t pss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, 4, "Pss:") != 0) continue;
    std::istringstream values(line.substr(4));
    std::uint64_t kib = 0;
    values >> kib;
    return kib * 1024;
  }
  return 0;
}

// CPU time every thread of `pid` has run, in ns (schedstat: nanosecond
// resolution, where /proc/<pid>/stat counts 10 ms ticks).
inline std::uint64_t cpu_ns(pid_t pid) {
  std::string const dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* tasks = ::opendir(dir.c_str());
  if (tasks == nullptr) throw std::runtime_error("cannot list " + dir);
  std::uint64_t total = 0;
  while (dirent* entry = ::readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream in(dir + "/" + entry->d_name + "/schedstat");
    std::uint64_t on_cpu = 0;
    if (in >> on_cpu) total += on_cpu;
  }
  ::closedir(tasks);
  return total;
}

using process_plugin = plugin<bench_service, isolate::process>;

inline pid_t worker_pid(process_plugin& p) { return p.transport().link().pid(); }

// The process that runs the plugin: the worker itself, or, sandboxed
// (limits::policy::protect_host), the one child of the worker's PID 1.
inline pid_t serving_pid(process_plugin& p) {
  const pid_t worker = worker_pid(p);
  std::ifstream children("/proc/" + std::to_string(worker) + "/task/" + std::to_string(worker) + "/children");
  pid_t child = 0;
  return children >> child ? child : worker;
}

}  // namespace isolate::bench

#endif
