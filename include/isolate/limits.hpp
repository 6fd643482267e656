// The limits policy of a process plugin: what its worker may use and reach.
// A preset names a level; every value of it can be changed at run time:
//
//   auto p = isolate::load<parser, isolate::process>(
//       "plugins/libparser.so",
//       isolate::limits::strict().memory_mb(256).cpu_seconds(10).writable("/var/cache/parser"));
//
// | preset   | protects the host | network | filesystem          | syscalls    | processes |
// |----------|-------------------|---------|---------------------|-------------|-----------|
// | minimal  | no (today's worker: the host's uid, rights and environment)                     |
// | standard | yes               | open    | open                | deny-list   | capped    |
// | strict   | yes               | none    | read-only allow-list| deny-list   | none      |
// | maximum  | yes               | none    | libraries only      | allow-list  | none      |
//
// "Protects the host" means: the worker runs in new user, PID, mount and IPC
// namespaces (it sees no process outside, and none it starts outlives it),
// with no capability that matters and no_new_privs, a /proc of its own, an
// environment reduced to an allow-list, and Landlock scoping its signals and
// abstract sockets. A root host's worker runs as nobody (65534). Memory is
// capped by RLIMIT_DATA and, where the host can make one, a memory cgroup
// that counts shared memory too (memory_cgroup below). The table
// with every limit and its mechanism is in the README; a limit this machine
// cannot enforce fails the load with errc::limit_unenforceable, unless
// best_effort() is set (then plugin.limits_in_force() says what holds).
//
// A preset other than minimal needs a process of its own: combining one with
// in_process or thread does not compile.
#ifndef ISOLATE_LIMITS_HPP
#define ISOLATE_LIMITS_HPP

#include "isolate/detail/config.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace isolate::limits {

enum class level { minimal, standard, strict, maximum };

// What the worker may reach over the network.
enum class network_isolation {
  none,                  // the host's network
  namespace_or_seccomp,  // a network namespace with no interface; without user namespaces, seccomp refuses socket()
  seccomp_only,          // socket() refused by seccomp (EACCES), whether namespaces work or not
};

// Which system calls the worker may make (seccomp, through libseccomp).
enum class syscall_filter {
  none,
  deny_list,   // all but those that reach outside the sandbox (ptrace, mount, bpf, io_uring, keyrings...)
  allow_list,  // computation only: memory, threads, futexes, I/O on descriptors it has, dlopen
};

// Where a sandboxed worker's stdout and stderr go (minimal keeps the
// host's). process::options::on_output, when set, overrides this under every
// preset: the host reads them from pipes and hands it each line.
enum class output { inherit, discard };

// Every value of a limits policy; 0 means "no limit" for the numbers.
struct policy {
  level preset = level::minimal;

  // Resources.
  // Memory the worker may use. Always RLIMIT_DATA (private memory: new and
  // malloc fail at the cap); and, where a memory cgroup can be made (see
  // memory_cgroup), the cgroup's cap on all its memory, shared memory too
  // (past it, the kernel stops the worker). limits_in_force() says which.
  std::uint64_t memory_mb = 0;
  // Where the worker's memory cgroup is made: a cgroup v2 directory whose
  // subtree has the memory controller (delegated to the host's user), or a
  // cgroup v1 memory group. Empty: the host's own group, if it can have
  // capped children (a v2 group with memory in cgroup.subtree_control, or a
  // v1 memory group the host may write); if none can, RLIMIT_DATA alone
  // holds. A directory named here that cannot be used fails the load
  // (limit_unenforceable) unless best_effort.
  std::filesystem::path memory_cgroup;
  std::uint64_t cpu_seconds = 0;   // CPU time of the worker (RLIMIT_CPU; SIGXCPU, then SIGKILL a second later)
  std::uint64_t open_files = 0;    // descriptors (RLIMIT_NOFILE)
  std::uint64_t file_size_mb = 0;  // largest file it may write (RLIMIT_FSIZE)
  std::uint64_t processes = 0;     // threads and processes together (RLIMIT_NPROC, per user namespace)
  bool core_dumps = true;          // false: RLIMIT_CORE 0

  // Isolation.
  bool protect_host = false;        // namespaces, no capabilities, no_new_privs, own /proc, Landlock scopes
  bool new_processes = true;        // false: fork/vfork/clone of a process fail with EAGAIN (threads work)
  network_isolation network = network_isolation::none;
  bool restrict_filesystem = false;  // Landlock: nothing but the paths below (and the worker's libraries);
                                     // seccomp: no chmod, chown, utimes or xattr change on any file
  std::vector<std::filesystem::path> read_only;  // readable (and executable) trees or files
  std::vector<std::filesystem::path> writable;   // readable and writable trees or files
  syscall_filter syscalls = syscall_filter::none;
  // A system call the filter refuses is answered by the host, which records
  // it as a violation (process::connection::violations()) with what it
  // reached for ("socket(AF_INET SOCK_STREAM)"): seccomp user notification.
  // Where the kernel has none, refusals are answered in the worker, unrecorded.
  bool report_refusals = false;
  // Every open() goes to the host too, which records and refuses one outside
  // the filesystem allow-list (Landlock still enforces it): costs 20-100 us
  // per open, so off by default.
  bool observe_files = false;

  // The worker's surroundings (protect_host only; minimal keeps the host's).
  std::vector<std::string> environment;         // "NAME=value" entries given to the worker
  std::vector<std::string> inherit_environment  // names passed on from the host when set there
      {"LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "PATH",
       "ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS"};
  std::filesystem::path working_directory = "/";
  output worker_output = output::inherit;

  // A limit the machine cannot enforce: false fails the load (limit_unenforceable), true goes on without it.
  bool best_effort = false;
};

// A preset, with chained setters that keep its type (so that the transport
// can check at compile time that it can enforce the preset).
template <level Preset>
struct preset : policy {
  static constexpr level level_v = Preset;

  preset() : policy(defaults()) {}

  preset& memory_mb(std::uint64_t mb) { return set(&policy::memory_mb, mb); }
  preset& memory_cgroup(std::filesystem::path parent) { return set(&policy::memory_cgroup, std::move(parent)); }
  preset& cpu_seconds(std::uint64_t seconds) { return set(&policy::cpu_seconds, seconds); }
  preset& open_files(std::uint64_t count) { return set(&policy::open_files, count); }
  preset& file_size_mb(std::uint64_t mb) { return set(&policy::file_size_mb, mb); }
  preset& processes(std::uint64_t count) { return set(&policy::processes, count); }
  preset& core_dumps(bool on) { return set(&policy::core_dumps, on); }
  preset& new_processes(bool on) { return set(&policy::new_processes, on); }
  preset& network(network_isolation how) { return set(&policy::network, how); }
  preset& syscalls(syscall_filter how) { return set(&policy::syscalls, how); }
  preset& report_refusals(bool on) { return set(&policy::report_refusals, on); }
  preset& observe_files(bool on) { return set(&policy::observe_files, on); }
  preset& read_only(std::filesystem::path path) {
    policy::read_only.push_back(std::move(path));
    return *this;
  }
  preset& writable(std::filesystem::path path) {
    policy::writable.push_back(std::move(path));
    return *this;
  }
  preset& environment(std::string name_equals_value) {
    policy::environment.push_back(std::move(name_equals_value));
    return *this;
  }
  preset& working_directory(std::filesystem::path path) { return set(&policy::working_directory, std::move(path)); }
  preset& worker_output(output where) { return set(&policy::worker_output, where); }
  preset& best_effort(bool on = true) { return set(&policy::best_effort, on); }

 private:
  template <class T, class V>
  preset& set(T policy::*field, V&& value) {
    this->*field = std::forward<V>(value);
    return *this;
  }

  static policy defaults() {
    policy p;
    p.preset = Preset;
    if constexpr (Preset == level::minimal) return p;
    p.protect_host = true;
    p.core_dumps = false;
    p.memory_mb = 1024;
    p.open_files = 256;
    p.processes = 64;
    p.syscalls = syscall_filter::deny_list;
    p.report_refusals = true;
    if constexpr (Preset == level::standard) return p;
    p.memory_mb = 512;
    p.cpu_seconds = 60;
    p.file_size_mb = 64;
    p.network = network_isolation::namespace_or_seccomp;
    p.restrict_filesystem = true;
    p.new_processes = false;
    if constexpr (Preset == level::strict) return p;
    p.memory_mb = 256;
    p.open_files = 64;
    p.syscalls = syscall_filter::allow_list;
    return p;
  }
};

using minimal = preset<level::minimal>;
using standard = preset<level::standard>;
using strict = preset<level::strict>;
using maximum = preset<level::maximum>;

// How one limit holds in a running worker, as the worker found it
// (process::connection::limits_in_force()).
struct enforcement {
  std::string limit;      // "memory", "network", "filesystem", "signals", ...
  std::string mechanism;  // how it is enforced ("RLIMIT_DATA 256 MiB"), or why it is not
  bool in_force = false;
};
using report = std::vector<enforcement>;

// Whether a preset can be had without a process of its own.
template <class Preset>
inline constexpr bool needs_a_process = Preset::level_v != level::minimal;

}  // namespace isolate::limits

#endif
