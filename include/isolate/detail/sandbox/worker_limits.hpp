// The limits a sandboxed worker applies to itself, single-threaded, after
// exec and before the plugin's library is opened (so its static
// initialisers run inside them), in this order: resource limits, Landlock,
// capabilities dropped, no_new_privs, seccomp (last: it may refuse the
// calls the others make). Each limit is recorded with how it holds; one that
// cannot hold fails the load, unless the policy says best effort.
#ifndef ISOLATE_DETAIL_SANDBOX_WORKER_LIMITS_HPP
#define ISOLATE_DETAIL_SANDBOX_WORKER_LIMITS_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/process/handshake.hpp"
#include "isolate/detail/sandbox/init.hpp"
#include "isolate/detail/sandbox/landlock.hpp"
#include "isolate/detail/sandbox/seccomp.hpp"
#include "isolate/detail/sandbox/seccomp_notify.hpp"
#include "isolate/limits.hpp"

#include <fmt/format.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace isolate::detail::sandbox {

// What the host did before the worker started, that the worker cannot see.
struct started_as {
  bool namespaces = false;         // new user, PID, mount, IPC and UTS namespaces
  bool network_namespace = false;  // and a network namespace
  int plugin_fd = -1;              // the plugin's library, opened by the host (-1: by path)
  std::string memory_cgroup;       // the memory cgroup cap the host put the worker under, if any
  std::string no_memory_cgroup;    // else why there is none
};

// Paths the worker and a plugin's libraries need to read under a
// filesystem allow-list: the dynamic loader's files and the libraries.
inline const std::vector<std::string>& system_read_paths() {
  static const std::vector<std::string> paths{
      "/usr", "/lib", "/lib64", "/lib32", "/libx32", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
      "/etc/localtime", "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/proc",
      "/sys/devices/system/cpu"};
  return paths;
}

// The seccomp filter a worker under `policy` loads; the host builds the
// same plan to answer the refusals it is sent as the worker would have.
inline seccomp_plan seccomp_plan_for(const limits::policy& policy, bool network_namespace) {
  seccomp_plan plan;
  switch (policy.syscalls) {
    case limits::syscall_filter::none: plan.policy = syscall_policy::none; break;
    case limits::syscall_filter::deny_list: plan.policy = syscall_policy::deny_list; break;
    case limits::syscall_filter::allow_list: plan.policy = syscall_policy::allow_list; break;
  }
  plan.deny_new_processes = !policy.new_processes;
  plan.deny_sockets = policy.network == limits::network_isolation::seccomp_only ||
                      (policy.network == limits::network_isolation::namespace_or_seccomp && !network_namespace);
  // A network namespace does not cover pathname sockets (docker.sock, D-Bus): they are files.
  plan.deny_unix_sockets = policy.network != limits::network_isolation::none;
  plan.notify = policy.report_refusals && seccomp_notify_available();
  // In a network namespace a socket() reaches nothing, so it goes unseen:
  // refused, it is reported like any other refusal.
  plan.deny_ip_sockets = plan.notify && network_namespace && policy.network != limits::network_isolation::none;
  plan.observe_opens = plan.notify && policy.observe_files && policy.restrict_filesystem;
  // Landlock judges reads and writes, not a file's mode, owner or times.
  plan.deny_metadata_changes = policy.restrict_filesystem;
  return plan;
}

class limits_applier {
 public:
  limits_applier(const limits::policy& policy, const started_as& start) : policy_(policy), start_(start) {}

  // Applies every limit; the first that cannot hold (and is not best effort)
  // is returned by name, with why.
  std::optional<std::string> apply(const std::string& plugin_path) {
    resources();
    isolation();
    filesystem_and_scopes(plugin_path);
    drop_privileges();
    syscalls();
    return first_failure_;
  }

  const limits::report& report() const noexcept { return report_; }

  // The seccomp listener for the host (report_refusals), once apply() has
  // loaded the filter; empty if refusals are answered here.
  unique_fd take_listener() noexcept { return std::move(listener_); }
  // The trees Landlock allows, for the host to judge observed opens alike.
  const std::vector<std::string>& landlock_reads() const noexcept { return landlock_reads_; }
  const std::vector<std::string>& landlock_writes() const noexcept { return landlock_writes_; }

 private:
  void record(const char* limit, bool in_force, std::string how) {
    report_.push_back({limit, std::move(how), in_force});
    if (!in_force && !policy_.best_effort && !first_failure_) {
      first_failure_ = fmt::format("{}: {}", limit, report_.back().mechanism);
    }
  }
  // A protection the preset gives where the kernel can, and only reports
  // where it cannot (the load goes on).
  void record_where_possible(const char* limit, bool in_force, std::string how) {
    report_.push_back({limit, std::move(how), in_force});
  }

  // A resource limit; `value` 0 is no limit (and is not recorded).
  void set_rlimit(const char* limit, int resource, std::uint64_t value, std::uint64_t hard, const char* name,
              const std::string& shown) {
    if (value == 0) return;
    const struct rlimit wanted{value, hard};
    if (::setrlimit(resource, &wanted) != 0) {
      record(limit, false, fmt::format("{} refused: {}", name, std::system_category().message(errno)));
    } else {
      record(limit, true, fmt::format("{} {}", name, shown));
    }
  }

  void resources() {
    const std::uint64_t mib = std::uint64_t{1} << 20;
    if (policy_.memory_mb != 0) {
      // Under a sanitizer the worker has already reserved terabytes of
      // shadow memory, which RLIMIT_DATA counts: the cap goes on top of it.
      const std::uint64_t base = sanitized ? data_in_use() : 0;
      const std::uint64_t cap = base + policy_.memory_mb * mib;
      // Private memory fails gracefully at RLIMIT_DATA (new, malloc); the
      // cgroup, when there is one, counts shared memory as well.
      const auto data = fmt::format("{} MiB{}", policy_.memory_mb, sanitized ? " (above the sanitizer's own)" : "");
      set_rlimit("memory", RLIMIT_DATA, cap, cap + sanitizer_report_room, "RLIMIT_DATA",
                 start_.memory_cgroup.empty()
                     ? fmt::format("{}: private memory only, shared memory is not counted ({})", data,
                                   start_.no_memory_cgroup)
                     : fmt::format("{}, and {} (all memory, shared too)", data, start_.memory_cgroup));
      std::set_new_handler(&memory_limit_reached);
#if defined(__SANITIZE_ADDRESS__)
      __sanitizer_set_death_callback(&sanitizer_died);
#endif
    }
    // SIGXCPU at the limit, SIGKILL a second later for a plugin that ignores it.
    set_rlimit("cpu", RLIMIT_CPU, policy_.cpu_seconds, policy_.cpu_seconds + 1, "RLIMIT_CPU",
           fmt::format("{} s", policy_.cpu_seconds));
    set_rlimit("open files", RLIMIT_NOFILE, policy_.open_files, policy_.open_files, "RLIMIT_NOFILE",
           std::to_string(policy_.open_files));
    set_rlimit("file size", RLIMIT_FSIZE, policy_.file_size_mb * mib, policy_.file_size_mb * mib, "RLIMIT_FSIZE",
           fmt::format("{} MiB", policy_.file_size_mb));
    if (policy_.processes != 0) {
      // RLIMIT_NPROC does not bind uid 0 outside a user namespace; inside
      // one it counts this namespace's processes only, and a root host's
      // worker is nobody outside.
      if (!start_.namespaces && ::geteuid() == 0) {
        record("processes", false, "RLIMIT_NPROC does not bind root without a user namespace");
      } else {
        set_rlimit("processes", RLIMIT_NPROC, policy_.processes, policy_.processes, "RLIMIT_NPROC",
               fmt::format("{} (threads and processes)", policy_.processes));
      }
    }
    if (!policy_.core_dumps) {
      const struct rlimit none {0, 0};
      record("core dumps", ::setrlimit(RLIMIT_CORE, &none) == 0, "RLIMIT_CORE 0");
    }
  }

  void isolation() {
    if (!policy_.protect_host) return;
    record("host processes", start_.namespaces,
           start_.namespaces ? "PID namespace: none visible, none outlives the worker" : "no user namespace");
    const auto proc = namespace_proc;
    record("host /proc", proc != proc_view::hosts,
           proc == proc_view::own ? "a /proc of the worker's PID namespace"
                                  : proc == proc_view::hidden ? "hidden under an empty tmpfs" : "the host's is visible");
    record("user", start_.namespaces,
           start_.namespaces ? (::getuid() == 0 ? "user namespace, uid 0 inside only" : "user namespace")
                             : "the host's user");
    if (policy_.network != limits::network_isolation::none && start_.network_namespace) {
      record("network", true,
             seccomp_plan_for(policy_, true).deny_ip_sockets
                 ? "network namespace with no interface up; socket(AF_UNIX, AF_INET, AF_INET6) refused by seccomp "
                   "(the IP ones reported)"
                 : "network namespace with no interface up; socket(AF_UNIX) refused by seccomp");
    }
  }

  void filesystem_and_scopes(const std::string& plugin_path) {
    landlock_plan plan;
    plan.restrict_filesystem = policy_.restrict_filesystem;
    plan.scope_signals = plan.scope_abstract_unix = policy_.protect_host;
    bool directory_closed = false;
    if (plan.restrict_filesystem) {
      plan.read_paths = system_read_paths();
      // The plugin's own libraries, if the worker may enter their directory: a
      // root host's worker is nobody, to whom a private build tree is closed
      // (the plugin itself came as a descriptor).
      const auto directory = std::filesystem::path(plugin_path).parent_path();
      directory_closed = !directory.empty() && ::access(directory.c_str(), X_OK) != 0;
      if (!directory.empty() && !directory_closed) plan.read_paths.push_back(directory.string());
      for (const auto& p : policy_.read_only) plan.read_paths.push_back(p.string());
      for (const auto& p : policy_.writable) plan.write_paths.push_back(p.string());
      if (start_.plugin_fd >= 0) plan.read_fds.push_back(start_.plugin_fd);
    }
    if (!plan.restrict_filesystem && !plan.scope_signals) return;
    landlock_reads_ = plan.read_paths;
    landlock_writes_ = plan.write_paths;
    std::error_code ec;
    const auto result = apply_landlock(plan, ec);
    if (plan.restrict_filesystem) {
      if (ec || !result.filesystem) {
        record("filesystem", false,
               ec ? fmt::format("Landlock refused{}: {}", result.refused_rule.empty() ? "" : " " + result.refused_rule,
                                ec.message())
                  : "Landlock is not available");
      } else {
        record("filesystem", true,
               fmt::format("Landlock ABI {}: read-only {} paths, writable {}{}", result.abi, plan.read_paths.size(),
                           plan.write_paths.size(),
                           directory_closed ? " (not the plugin's directory: closed to the worker's uid)" : ""));
      }
    }
    if (plan.scope_signals) {
      // The PID namespace already hides every process outside; the scope is a second wall.
      record("signals", start_.namespaces || (!ec && result.signals),
             !ec && result.signals ? fmt::format("PID namespace and Landlock scope (ABI {})", result.abi)
                                   : "PID namespace only (Landlock ABI < 6)");
    }
    if (plan.scope_abstract_unix) {
      // Abstract sockets belong to a network namespace: the worker's own has none of the host's.
      const bool scoped = !ec && result.abstract_unix;
      record_where_possible("abstract sockets", scoped || start_.network_namespace,
                            scoped                      ? fmt::format("Landlock scope (ABI {})", result.abi)
                            : start_.network_namespace ? std::string("network namespace only (Landlock ABI < 6)")
                                                       : std::string("the host's are reachable (Landlock ABI < 6 "
                                                                     "has no scope for them, and no network namespace)"));
    }
  }

  // Nothing the worker is may be used to gain more: no capability (not even
  // inside its namespace), root's implicit ones locked away, no_new_privs.
  void drop_privileges() {
    if (!policy_.protect_host) return;
    bool ok = ::prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                             SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED) == 0 ||
              !start_.namespaces;
    for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct none[2]{};
    ok = ::syscall(SYS_capset, &header, none) == 0 && ok;
    ok = ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ok;
    record("privileges", ok, ok ? "no capabilities, bounding set empty, no_new_privs" : "could not drop them all");
  }

  void syscalls() {
    const auto plan = seccomp_plan_for(policy_, start_.network_namespace);
    const bool seccomp_network = plan.deny_sockets;
    const auto& compiled = seccomp_detail::precompiled();
    const bool host_compiled = compiled && compiled->plan == plan_as_loaded(plan) && compiled->self == ::getpid();
    std::error_code ec;
    listener_ = apply_seccomp_with_listener(plan, ec);
    const bool loaded = !ec;
    if (policy_.syscalls != limits::syscall_filter::none) {
      const char* reported = listener_ ? ", each refusal reported to the host"
                             : plan.notify ? ", refusals not reported (no seccomp user notification here)"
                                           : "";
      record("syscalls", loaded,
             loaded ? fmt::format("{}{}{}", plan.policy == syscall_policy::allow_list ? "seccomp allow-list"
                                                                                      : "seccomp deny-list",
                                  host_compiled ? " (compiled by the host)" : "", reported)
                    : "seccomp refused: " + ec.message());
    }
    if (plan.observe_opens && listener_) {
      record("observed files", true, "seccomp user notification: each open() is judged by the host too");
    }
    if (!policy_.new_processes) record("new processes", loaded, loaded ? "seccomp: fork and clone fail (EAGAIN)" : ec.message());
    if (plan.deny_metadata_changes) {
      record("file metadata", loaded,
             loaded ? "seccomp: chmod, chown, utimes and xattr changes fail (EPERM); stat is allowed" : ec.message());
    }
    if (seccomp_network) {
      record("network", loaded, loaded ? "seccomp: socket() fails (EACCES)" : "seccomp refused: " + ec.message());
    }
  }

  // The plugin went past its memory limit (operator new failed): the worker
  // stops with the status that says so, and its calls fail with
  // limit_exceeded. No bad_alloc is thrown, unless the plugin installed a
  // new_handler of its own: then it may catch bad_alloc and go on; the cap
  // holds, and the worker's operator new counted the failure
  // (refused_allocations), which the host hears about as a violation. C code
  // that gets NULL from malloc handles that itself, untold.
  [[noreturn]] static void memory_limit_reached() { ::_exit(worker_exit_memory_limit); }

#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer's new never reaches the new handler: at the cap it
  // reports "out-of-memory" and dies (room_for_sanitizer_report let the
  // report be written). Its death says which it was.
  static void sanitizer_died() {
    const char* what = __asan_get_report_description();
    if (what != nullptr && std::strcmp(what, "out-of-memory") == 0) ::_exit(worker_exit_memory_limit);
  }
#endif

  // The data segment as the kernel counts it for RLIMIT_DATA (VmData), in bytes.
  static std::uint64_t data_in_use() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("VmData:", 0) == 0) return std::stoull(line.substr(7)) * 1024;
    }
    return 0;
  }

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  static constexpr bool sanitized = true;
#else
  static constexpr bool sanitized = false;
#endif
#if defined(__SANITIZE_ADDRESS__)
  // Above the cap, for AddressSanitizer's own report of reaching it (its
  // buffers are mapped as the report starts): the soft limit is the cap.
  static constexpr std::uint64_t sanitizer_report_room = std::uint64_t{64} << 20;
#else
  static constexpr std::uint64_t sanitizer_report_room = 0;
#endif

  const limits::policy& policy_;
  started_as start_;
  limits::report report_;
  std::optional<std::string> first_failure_;
  unique_fd listener_;
  std::vector<std::string> landlock_reads_, landlock_writes_;
};

// Called by AddressSanitizer as it starts a report (ISOLATE_WORKER_MAIN
// defines its hook): the report maps buffers of its own, which a worker at
// its memory cap could not, and the sanitizer would then hang on a failed
// check inside its report. The soft limit rises to the hard one, set that
// much above the cap for it (limits_applier). Only async-signal-safe calls.
inline void room_for_sanitizer_report() noexcept {
  struct rlimit data {};
  if (::getrlimit(RLIMIT_DATA, &data) == 0 && data.rlim_cur != data.rlim_max) {
    data.rlim_cur = data.rlim_max;
    ::setrlimit(RLIMIT_DATA, &data);
  }
}

// How many times the worker's operator new found no memory (ISOLATE_WORKER_MAIN
// replaces it with allocate_or_count below). Under a memory limit that is the
// cap; the worker's control thread tells the host (worker::watch_control),
// so a plugin that catches bad_alloc is not at its cap unseen.
inline std::atomic<std::uint64_t> refused_allocations{0};

// Whether the worker's operator new counts (not under a sanitizer, whose
// runtime owns operator new and dies at the cap with its own report).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ISOLATE_DETAIL_COUNTS_ALLOCATIONS 0
#else
#define ISOLATE_DETAIL_COUNTS_ALLOCATIONS 1
#endif
inline constexpr bool allocations_counted = ISOLATE_DETAIL_COUNTS_ALLOCATIONS;

// As the standard's operator new, around one allocation attempt: on failure
// the new_handler (the worker's ends the worker at its memory limit) or
// bad_alloc, the failure counted first.
template <class TryAllocate>
void* allocate_counting_refusals(TryAllocate try_allocate) {
  for (;;) {
    if (void* memory = try_allocate()) return memory;
    refused_allocations.fetch_add(1, std::memory_order_relaxed);
    const std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

// The worker's replacement of the global operator new (the plugin's and the
// C++ runtime's calls reach it: the executable's definition comes first): malloc.
inline void* allocate_or_count(std::size_t size) {
  if (size == 0) size = 1;
  return allocate_counting_refusals([size] { return std::malloc(size); });
}

// The same for over-aligned types (`new` of an alignas(64) type): as
// libstdc++'s own, aligned_alloc of a size rounded up to the alignment,
// which its aligned operator delete gives back with free.
inline void* allocate_aligned_or_count(std::size_t size, std::align_val_t alignment) {
  std::size_t align = static_cast<std::size_t>(alignment);
  if (align < sizeof(void*)) align = sizeof(void*);
  if (size == 0) size = 1;
  const bool representable = size <= std::numeric_limits<std::size_t>::max() - align;
  size = (size + align - 1) & ~(align - 1);
  return allocate_counting_refusals(
      [=]() -> void* { return representable ? std::aligned_alloc(align, size) : nullptr; });
}

}  // namespace isolate::detail::sandbox

#endif
