// seccomp-bpf for the worker: which system calls the plugin may make, applied
// by the worker to itself right after exec, before the plugin is loaded.
//
//   seccomp_plan plan;
//   plan.policy = syscall_policy::deny_list;
//   plan.deny_sockets = plan.deny_new_processes = true;
//   std::error_code ec;
//   apply_seccomp(plan, ec);  // from here on, for this process and its threads
//
// A refused call fails with an errno, never a kill, so a plugin that probes
// (a library trying io_uring, then falling back to read) keeps working. The
// one kill is a system call of another ABI (i386 through int 0x80, x32 on
// x86_64): numbers there mean other calls, so no rule below would apply; no
// 64-bit plugin makes one by accident, so the whole process dies with SIGSYS.
//
// Filters stack and cannot be removed: apply this after Landlock (an
// allow-list refuses Landlock's calls) and after anything else the worker
// must do that the policy refuses. no_new_privs is always set (see
// load_plan). TSYNC is asked for:
// the worker calls this single-threaded, so it changes nothing then, but if
// a library has started a thread behind its back that thread is filtered
// too rather than left free (or the load fails, if it has a filter of its own).
//
// What seccomp cannot see: anything behind a pointer (paths, clone3's and
// openat2's structs, sendmsg's address), so paths are Landlock's job and
// clone3/openat2-style calls are refused with ENOSYS, making libc fall back
// to the calls whose flags are registers.
//
// With `notify`, the same refusals go to a supervisor in the host instead of
// being answered here (seccomp_notify.hpp: the listener, the supervisor, and
// what changes when the host is gone); apply_seccomp then refuses the plan,
// as nobody would hold the listener.
#ifndef ISOLATE_DETAIL_SANDBOX_SECCOMP_HPP
#define ISOLATE_DETAIL_SANDBOX_SECCOMP_HPP

#include "isolate/detail/config.hpp"

#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <initializer_list>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cerrno>

namespace isolate::detail::sandbox {

enum class syscall_policy {
  none,        // no list: only the deny_* options below
  deny_list,   // everything allowed but the calls that reach outside the sandbox (denied_syscalls())
  allow_list,  // computation only: the calls in allowed_syscalls(), nothing else
};

struct seccomp_plan {
  syscall_policy policy = syscall_policy::none;
  bool deny_sockets = false;        // socket() fails with EACCES for every family; socketpair(AF_UNIX) works
  bool deny_unix_sockets = false;   // socket(AF_UNIX) fails with EACCES: pathname sockets are outside any network namespace
  // socket(AF_INET or AF_INET6) fails with EACCES: in a network namespace,
  // where they would reach nothing anyway, so that an attempt is refused
  // (and, with notify, reported) at once rather than failing unseen at connect().
  bool deny_ip_sockets = false;
  bool deny_new_processes = false;  // fork, vfork and clone without CLONE_THREAD fail with EAGAIN; threads work
  // chmod, chown, utimes and the xattr changes fail (refused_errno) on any
  // file: Landlock has no right for metadata, so under a filesystem policy a
  // plugin could otherwise make the user's private key world-readable.
  bool deny_metadata_changes = false;
  int refused_errno = EPERM;        // what a call the policy refuses returns (1 to 4095)
  // Every refusal above but clone3's ENOSYS (a request to fall back, not a
  // violation) goes to a supervisor through a listener, which answers it with
  // the errno above (notified_errno); see seccomp_notify.hpp.
  bool notify = false;
  // With notify: open, openat, openat2 and creat the filter allows go to the
  // supervisor too, which lets each through (Landlock still deciding) or
  // refuses it with EACCES when its path is outside Landlock's trees.
  bool observe_opens = false;

  friend bool operator==(const seccomp_plan&, const seccomp_plan&) = default;
};

// Loads the plan's filter into this process; with nothing to refuse, loads
// none. On error nothing was loaded.
inline void apply_seccomp(seccomp_plan const& plan, std::error_code& ec);

// The deny-list and the allow-list, by name, for documentation and reports. A
// bare name is refused (or allowed) whatever its arguments; "name(…)" only
// with the arguments described.
inline std::vector<std::string> denied_syscalls();
inline std::vector<std::string> allowed_syscalls();

// For a call a filter built with `notify` sent to its listener: the errno the
// same plan without notify would have answered; 0 for a call sent only to be
// observed (observe_opens), which the filter allows. `name` is the syscall's
// (libseccomp's spelling), `args` its six arguments. The rules and this
// reading of them live side by side in load_plan's file so they change together.
inline int notified_errno(seccomp_plan const& plan, std::string_view name, std::uint64_t const (&args)[6]) noexcept;

namespace seccomp_detail {

// Refused by deny_list whatever the arguments. One group per line, with why.
// clang-format off
inline constexpr char const* deny_list_names[] = {
    // Reach into another process: its memory, descriptors or registers (no Yama LSM here to stop a same-uid ptrace).
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise",
    // Kernel surface with a long exploit record and no use in a plugin; io_uring's operations also bypass seccomp.
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "modify_ldt",
    // Keyrings are not namespaced: the host's keys are one keyctl away.
    "keyctl", "add_key", "request_key",
    // Mount topology: a new mount or root undoes the filesystem view the sandbox set up.
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "open_tree_attr", "fsopen", "fsmount",
    "fspick", "fsconfig", "mount_setattr",
    // New namespaces: an unprivileged user namespace hands out every capability inside it (clone's flags: below).
    "unshare", "setns",
    // Files by handle skip path checks (Docker's "shocker" escape used open_by_handle_at).
    "open_by_handle_at", "name_to_handle_at",
    // The whole machine's state: modules, kexec, reboot, swap, accounting, quotas, clocks, names, log, I/O ports.
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff",
    "acct", "quotactl", "quotactl_fd", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname",
    "setdomainname", "syslog", "iopl", "ioperm", "vhangup",
    // Watching whole filesystems, and obsolete calls kept only for old binaries (Docker refuses them too).
    "fanotify_init", "lookup_dcookie", "uselib", "ustat", "sysfs", "_sysctl",
    // NUMA placement: migrate_pages and move_pages move other processes' pages; the group follows Docker's.
    "mbind", "set_mempolicy", "set_mempolicy_home_node", "migrate_pages", "move_pages",
};

// Refused by deny_metadata_changes: every call that changes a file's mode,
// owner, times or extended attributes, by path or by descriptor.
inline constexpr char const* metadata_change_names[] = {
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "utime", "utimes", "futimesat", "utimensat",
    "setxattr", "lsetxattr", "fsetxattr", "setxattrat", "removexattr", "lremovexattr", "fremovexattr", "removexattrat",
};

// The allow_list, whatever the arguments. One group per line, with why.
inline constexpr char const* allow_list_names[] = {
    // Ending.
    "exit", "exit_group",
    // Memory the process owns (mprotect PROT_EXEC included: dlopen needs it).
    "brk", "mmap", "munmap", "mprotect", "madvise",
    // Threads and waiting (clone: below).
    "futex", "futex_waitv", "set_robust_list", "rseq", "set_tid_address", "sched_yield", "sched_getaffinity",
    "gettid", "getpid", "getppid",
    // Time (the vDSO answers most, but falls back to the call on some clock sources).
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    // Its own signals (kill and tgkill: below).
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait", "rt_sigsuspend",
    "sigaltstack", "restart_syscall",
    // Descriptors it already has: I/O, waiting, messages with SCM_RIGHTS (ioctl, sendto: below).
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "lseek",
    "close", "close_range", "dup", "dup2", "dup3", "fcntl", "fstat", "newfstatat", "statx", "ftruncate", "fsync",
    "fdatasync", "poll", "ppoll", "select", "pselect6", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
    "epoll_pwait2", "recvmsg", "recvmmsg", "recvfrom", "sendmsg", "sendmmsg", "shutdown",
    // New descriptors that reach nothing outside the process (memfd: the worker's shared buffers).
    "pipe2", "eventfd2", "memfd_create", "timerfd_create", "timerfd_settime", "timerfd_gettime",
    // Facts about itself.
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getrlimit", "getrusage", "getcpu", "uname",
    "sysinfo", "getrandom",
};
// clang-format on

// Syscalls newer than some libseccomp that still knows its own table: the
// numbers are the unified ones, the same on every architecture but alpha.
struct newer_syscall {
  char const* name;
  int number;
};
inline constexpr newer_syscall newer_syscalls[] = {
    {"fchmodat2", 452},       // Linux 6.6
    {"setxattrat", 463},      // Linux 6.13
    {"removexattrat", 466},   // Linux 6.13
    {"open_tree_attr", 467},  // Linux 6.15; libseccomp 2.5.4 does not know it
};

// clone()'s flags that create namespaces. CLONE_NEWTIME is absent: it has no
// bit in clone()'s flags (that bit is the exit signal's), only clone3 and unshare.
inline constexpr std::uint32_t clone_namespace_flags =
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;

// Argument comparisons (libseccomp's SCMP_CMP macros are C compound literals,
// not C++). The masks are 32-bit, so the upper half of the register is never
// looked at, as the kernel never looks at it for an int argument.
inline scmp_arg_cmp bits_equal(unsigned arg, std::uint32_t mask, std::uint32_t value) noexcept {
  return scmp_arg_cmp{arg, SCMP_CMP_MASKED_EQ, mask, value};
}
// An int (or unsigned int) argument equal to `value` in the 32 bits the kernel
// reads, whatever the caller left above them: Flatpak's CVE-2019-10063 was an
// ioctl number compared on 64 bits, so TIOCSTI with a high bit set got through.
inline scmp_arg_cmp low32_equals(unsigned arg, std::uint32_t value) noexcept {
  return bits_equal(arg, 0xffffffffU, value);
}
// A pointer or long argument, all 64 bits.
inline scmp_arg_cmp equals(unsigned arg, std::uint64_t value) noexcept {
  return scmp_arg_cmp{arg, SCMP_CMP_EQ, value, 0};
}
inline scmp_arg_cmp not_equals(unsigned arg, std::uint64_t value) noexcept {
  return scmp_arg_cmp{arg, SCMP_CMP_NE, value, 0};
}

inline int resolve(char const* name) noexcept {
  int const number = seccomp_syscall_resolve_name(name);
  if (number != __NR_SCMP_ERROR) return number;  // negative numbers: libseccomp's for calls this arch lacks
  for (newer_syscall const& s : newer_syscalls) {
    if (std::string_view(s.name) == name) return s.number;
  }
  return __NR_SCMP_ERROR;
}

// A libseccomp filter being built. The first failure is kept and reported by
// load(), so building reads as a list of rules without a check after each.
class filter {
 public:
  explicit filter(std::uint32_t default_action) noexcept
      : ctx_(seccomp_init(default_action)), default_action_(default_action) {
    if (ctx_ == nullptr) error_ = ENOMEM;
  }
  filter(filter const&) = delete;
  filter& operator=(filter const&) = delete;
  ~filter() {
    if (ctx_ != nullptr) seccomp_release(ctx_);
  }

  void add(std::uint32_t action, char const* name, std::initializer_list<scmp_arg_cmp> args = {}) noexcept {
    if (error_ != 0 || action == default_action_) return;  // libseccomp refuses a rule that repeats the default
    int const number = resolve(name);
    if (number == __NR_SCMP_ERROR) {
      error_ = EINVAL;  // a name no one knows: a typo in the tables
      return;
    }
    int const rc = seccomp_rule_add_array(ctx_, action, number, static_cast<unsigned>(args.size()), args.begin());
    if (rc < 0) error_ = -rc;
  }

  void set(scmp_filter_attr attribute, std::uint32_t value) noexcept {
    if (error_ != 0) return;
    int const rc = seccomp_attr_set(ctx_, attribute, value);
    if (rc < 0) error_ = -rc;
  }

  // Returns 0 or an errno.
  int load() noexcept {
    if (error_ != 0) return error_;
    int const rc = seccomp_load(ctx_);
    return rc < 0 ? -rc : 0;
  }

  // The compiled program, as the kernel would load it; empty on an error.
  std::vector<sock_filter> program() const {
    if (error_ != 0) return {};
    const int fd = ::memfd_create("isolate-seccomp", MFD_CLOEXEC);
    if (fd < 0) return {};
    std::vector<sock_filter> out;
    if (seccomp_export_bpf(ctx_, fd) == 0) {
      const off_t size = ::lseek(fd, 0, SEEK_END);
      if (size > 0 && size % static_cast<off_t>(sizeof(sock_filter)) == 0) {
        out.resize(static_cast<std::size_t>(size) / sizeof(sock_filter));
        if (::pread(fd, out.data(), static_cast<std::size_t>(size), 0) != size) out.clear();
      }
    }
    ::close(fd);
    return out;
  }

  // After a load with SCMP_ACT_NOTIFY rules: the listener, owned by the
  // caller from now on; -1 when there is none.
  int listener() const noexcept {
    int const fd = seccomp_notify_fd(ctx_);
    return fd < 0 ? -1 : fd;
  }

 private:
  scmp_filter_ctx ctx_;
  std::uint32_t default_action_;
  int error_ = 0;
};

// The open flags an allow-list refuses: any that write, create or truncate.
inline constexpr std::uint32_t opening_to_write = O_ACCMODE | O_CREAT | O_TRUNC | (O_TMPFILE & ~O_DIRECTORY);

// personality() other than PER_LINUX (0) or the query 0xffffffff: the flags
// turn off ASLR (ADDR_NO_RANDOMIZE) or make every read mapping executable
// (READ_IMPLIES_EXEC) for what the process execs next. libseccomp allows one
// comparison per argument in a rule, so "neither all zeros nor all ones" is
// spelled as: some bit i is 1 while bit i+1 (cyclically) is 0, one rule each.
inline void refuse_unusual_personality(filter& f, std::uint32_t action) noexcept {
  for (unsigned bit = 0; bit < 32; ++bit) {
    std::uint32_t const one = 1U << bit, next = 1U << ((bit + 1) % 32);
    f.add(action, "personality", {bits_equal(0, one | next, one)});
  }
}

inline void add_deny_list(filter& f, std::uint32_t refuse) noexcept {
  for (char const* name : deny_list_names) f.add(refuse, name);
  for (std::uint32_t flag = 1; flag != 0; flag <<= 1) {
    if ((clone_namespace_flags & flag) != 0) f.add(refuse, "clone", {bits_equal(0, flag, flag)});
  }
  refuse_unusual_personality(f, refuse);
  // Typing into the terminal the host may share (TIOCSTI), or copying its
  // console's selection (TIOCLINUX): the plugin could run commands as the user.
  f.add(refuse, "ioctl", {low32_equals(1, TIOCSTI)});
  f.add(refuse, "ioctl", {low32_equals(1, TIOCLINUX)});
  f.add(refuse, "mremap", {equals(1, 0)});
}

// `open_action`: what read-only opens get (allowed, or sent to be observed).
inline void add_allow_list(filter& f, pid_t self, std::uint32_t open_action) noexcept {
  std::uint32_t const allow = SCMP_ACT_ALLOW;
  for (char const* name : allow_list_names) f.add(allow, name);
  // Resizing or moving a mapping; not duplicating one (below).
  f.add(allow, "mremap", {not_equals(1, 0)});
  // Threads only: a clone with CLONE_THREAD and no namespace.
  f.add(allow, "clone", {bits_equal(0, CLONE_THREAD | clone_namespace_flags, CLONE_THREAD)});
  // Signals to itself (raise, abort, pthread_kill), not to others. `self` is
  // the pid now: the allow-list lets no new process be made that would need another.
  f.add(allow, "kill", {low32_equals(0, static_cast<std::uint32_t>(self))});
  f.add(allow, "tgkill", {low32_equals(0, static_cast<std::uint32_t>(self))});
  // Opening to read (dlopen, /etc/ld.so.cache): never to write, create or truncate.
  f.add(open_action, "openat", {bits_equal(2, opening_to_write, O_RDONLY)});
  f.add(open_action, "open", {bits_equal(1, opening_to_write, O_RDONLY)});
  // ioctls that only read or set the descriptor's own state (isatty is TCGETS).
  for (int const request : {FIONREAD, FIONBIO, FIOCLEX, FIONCLEX, TCGETS}) {
    f.add(allow, "ioctl", {low32_equals(1, static_cast<std::uint32_t>(request))});
  }
  // send() on a connected socket; a destination address would reach anywhere.
  f.add(allow, "sendto", {equals(4, 0)});
  f.add(allow, "socketpair", {low32_equals(0, AF_UNIX)});
  // Reading its own limits (pid 0, no new value): a worker that kept
  // CAP_SYS_RESOURCE would otherwise let the plugin raise them.
  f.add(allow, "prlimit64", {low32_equals(0, 0), equals(2, 0)});
  f.add(allow, "prctl", {low32_equals(0, PR_SET_NAME)});
  f.add(allow, "prctl", {low32_equals(0, PR_GET_NAME)});
}

// Builds the plan's filter for process `self` (the allow-list lets it signal itself only).
inline void build_plan(filter& f, seccomp_plan const& plan, pid_t self) noexcept {
  bool const notify = plan.notify;
  // Each refusal's errno, or the listener: notified_errno reads these same rules back.
  std::uint32_t const refuse = notify ? SCMP_ACT_NOTIFY : SCMP_ACT_ERRNO(static_cast<std::uint32_t>(plan.refused_errno));
  std::uint32_t const again = notify ? SCMP_ACT_NOTIFY : SCMP_ACT_ERRNO(EAGAIN);
  std::uint32_t const access = notify ? SCMP_ACT_NOTIFY : SCMP_ACT_ERRNO(EACCES);
  bool const observe = notify && plan.observe_opens;
  bool const allow_list = plan.policy == syscall_policy::allow_list;
  // libseccomp's default for another ABI is KILL_THREAD, which would leave the
  // rest of a multi-threaded plugin running: the whole process goes.
  f.set(SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  // Always, even with CAP_SYS_ADMIN: a setuid program run under a filter it
  // does not expect can be tricked by the calls that fail (the kernel's reason).
  f.set(SCMP_FLTATR_CTL_NNP, 1);
  f.set(SCMP_FLTATR_CTL_TSYNC, 1);
#if SCMP_VER_MAJOR > 2 || (SCMP_VER_MAJOR == 2 && SCMP_VER_MINOR >= 5)
  f.set(SCMP_FLTATR_API_SYSRAWRC, 1);  // the kernel's errno from seccomp_load, not ECANCELED
  f.set(SCMP_FLTATR_CTL_OPTIMIZE, 2);  // a binary search over syscall numbers, not a linear scan
#endif

  // Both lists refuse mremap with an old size of 0, which makes a second
  // mapping of shared memory: a plugin could keep one of a buffer lent for
  // one call (shared_buffer::for_one_call) after the worker revoked it.
  if (plan.policy == syscall_policy::deny_list) add_deny_list(f, refuse);
  if (allow_list) add_allow_list(f, self, observe ? SCMP_ACT_NOTIFY : SCMP_ACT_ALLOW);
  // Observed opens: every one the filter allows (an allow-list's read-only
  // ones are above; its others are refused by default).
  if (observe && !allow_list) {
    for (char const* name : {"open", "openat", "openat2", "creat"}) f.add(SCMP_ACT_NOTIFY, name);
  }
  if (plan.policy != syscall_policy::none || plan.deny_new_processes) {
    // clone3's flags are in memory seccomp cannot read: ENOSYS makes glibc (2.34 and later) fall back to clone.
    f.add(SCMP_ACT_ERRNO(ENOSYS), "clone3");
  }
  if (plan.deny_new_processes) {
    f.add(again, "fork");
    f.add(again, "vfork");
    // Disjoint from the deny_list's namespace rules, so which one wins is never a question.
    std::uint32_t const mask = CLONE_THREAD | (plan.policy == syscall_policy::deny_list ? clone_namespace_flags : 0U);
    f.add(again, "clone", {bits_equal(0, mask, 0)});
  }
  if (plan.deny_metadata_changes && !allow_list) {  // an allow-list names none of them
    for (char const* name : metadata_change_names) f.add(refuse, name);
  }
  if (plan.deny_unix_sockets && !plan.deny_sockets) f.add(access, "socket", {equals(0, AF_UNIX)});
  if (plan.deny_ip_sockets && !plan.deny_sockets) {
    f.add(access, "socket", {equals(0, AF_INET)});
    f.add(access, "socket", {equals(0, AF_INET6)});
  }
  if (plan.deny_sockets) {
    f.add(access, "socket");
    // io_uring can open sockets with no socket() call (IORING_OP_SOCKET).
    if (plan.policy == syscall_policy::none) f.add(refuse, "io_uring_setup");
  }
}

// The filter's default action: what an allow-list does with every call it does not name.
inline std::uint32_t default_action(seccomp_plan const& plan) noexcept {
  if (plan.policy != syscall_policy::allow_list) return SCMP_ACT_ALLOW;
  return plan.notify ? SCMP_ACT_NOTIFY : SCMP_ACT_ERRNO(static_cast<std::uint32_t>(plan.refused_errno));
}

// A plan's filter compiled ahead, for a process to come (a sandboxed
// function's runner, forked from the one that compiled it: the fork
// carries it over). Building a filter with libseccomp costs a few hundred
// microseconds; loading a compiled one, a system call.
struct compiled_plan {
  seccomp_plan plan;
  pid_t self = 0;  // the pid the filter was built for
  std::vector<sock_filter> program;
};

inline std::optional<compiled_plan>& precompiled() noexcept {
  static std::optional<compiled_plan> compiled;
  return compiled;
}

// Compiles the plan for process `self` into precompiled(), unless it is there already.
inline void precompile(seccomp_plan const& plan, pid_t self) {
  auto& compiled = precompiled();
  if (compiled && compiled->plan == plan && compiled->self == self) return;
  compiled.reset();
  filter f(default_action(plan));
  build_plan(f, plan, self);
  auto program = f.program();
  if (!program.empty()) compiled = compiled_plan{plan, self, std::move(program)};
}

// Loads a compiled program: the process must have one thread (no TSYNC).
inline int load_program(std::vector<sock_filter> const& program, bool notify, int* listener) noexcept {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  sock_fprog fprog{static_cast<unsigned short>(program.size()), const_cast<sock_filter*>(program.data())};
  long const rc = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, notify ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0U,
                            &fprog);
  if (rc < 0) return errno;
  if (notify && listener != nullptr) *listener = static_cast<int>(rc);
  return 0;
}

// Builds the plan's filter and loads it (or loads it as compiled ahead for
// this very process and plan); returns 0 or an errno. With plan.notify,
// `listener` receives the listener's descriptor (-1 on error).
inline int load_plan(seccomp_plan const& plan, int* listener = nullptr) noexcept {
  if (listener != nullptr) *listener = -1;
  const auto& compiled = precompiled();
  if (compiled && compiled->plan == plan && compiled->self == ::getpid()) {
    return load_program(compiled->program, plan.notify, listener);
  }
  filter f(default_action(plan));
  build_plan(f, plan, ::getpid());
  int const err = f.load();
  if (err == 0 && plan.notify && listener != nullptr) *listener = f.listener();
  return err;
}

// Whether the plan has a rule to load (a plan of none loads no filter).
inline bool needs_filter(seccomp_plan const& plan) noexcept {
  return plan.policy != syscall_policy::none || plan.deny_sockets || plan.deny_unix_sockets || plan.deny_ip_sockets ||
         plan.deny_new_processes || plan.deny_metadata_changes || (plan.notify && plan.observe_opens);
}

// The program of a plan whose rules name no pid (all but an allow-list,
// whose kill and tgkill rules name the process itself), compiled once per
// plan and kept: what a host sends its workers, so that each loads it with
// one system call instead of building it with libseccomp (which costs a
// few hundred microseconds and leaves ~32 KiB of heap in every worker).
// Empty when the plan has nothing to load or names a pid.
inline std::vector<sock_filter> program_for_workers(seccomp_plan const& plan) {
  if (plan.policy == syscall_policy::allow_list || !needs_filter(plan)) return {};
  static std::mutex mutex;
  static std::vector<compiled_plan> compiled;
  std::lock_guard lock(mutex);
  for (const auto& known : compiled) {
    if (known.plan == plan) return known.program;
  }
  filter f(default_action(plan));
  build_plan(f, plan, 0);
  auto program = f.program();
  if (!program.empty()) compiled.push_back({plan, 0, program});
  return program;
}

// A program as it travels in a message (each sock_filter is 8 bytes), and back.
inline std::vector<std::uint64_t> program_words(std::vector<sock_filter> const& program) {
  static_assert(sizeof(sock_filter) == sizeof(std::uint64_t));
  std::vector<std::uint64_t> words(program.size());
  if (!program.empty()) std::memcpy(words.data(), program.data(), program.size() * sizeof(sock_filter));
  return words;
}
inline std::vector<sock_filter> program_of_words(std::vector<std::uint64_t> const& words) {
  std::vector<sock_filter> program(words.size());
  if (!words.empty()) std::memcpy(program.data(), words.data(), words.size() * sizeof(sock_filter));
  return program;
}

// The plan's errno must not be 0, which would make a refusal look like success.
inline bool valid(seccomp_plan const& plan) noexcept {
  return plan.refused_errno > 0 && plan.refused_errno <= 4095 && (plan.notify || !plan.observe_opens);
}

}  // namespace seccomp_detail

inline void apply_seccomp(seccomp_plan const& plan, std::error_code& ec) {
  ec.clear();
  // notify: the listener would stay here, unread, and every refused call would wait forever.
  if (!seccomp_detail::valid(plan) || plan.notify) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return;
  }
  if (!seccomp_detail::needs_filter(plan)) return;
  if (int const err = seccomp_detail::load_plan(plan)) ec.assign(err, std::system_category());
}

inline int notified_errno(seccomp_plan const& plan, std::string_view name, std::uint64_t const (&args)[6]) noexcept {
  using seccomp_detail::opening_to_write;
  auto const low32 = [&](int i) { return static_cast<std::uint32_t>(args[i]); };
  bool const allow_list = plan.policy == syscall_policy::allow_list;
  if (plan.observe_opens) {  // what the filter allows of the opens it sends
    if (name == "openat") {
      if (!allow_list || (low32(2) & opening_to_write) == O_RDONLY) return 0;
    } else if (name == "open") {
      if (!allow_list || (low32(1) & opening_to_write) == O_RDONLY) return 0;
    } else if (name == "openat2" || name == "creat") {
      if (!allow_list) return 0;
    }
  }
  if (name == "socket" && (plan.deny_sockets || (plan.deny_unix_sockets && args[0] == AF_UNIX) ||
                           (plan.deny_ip_sockets && (args[0] == AF_INET || args[0] == AF_INET6)))) {
    return EACCES;
  }
  if (plan.deny_new_processes) {
    if (name == "fork" || name == "vfork") return EAGAIN;
    std::uint32_t const mask =
        CLONE_THREAD | (plan.policy == syscall_policy::deny_list ? seccomp_detail::clone_namespace_flags : 0U);
    if (name == "clone" && (low32(0) & mask) == 0) return EAGAIN;
  }
  return plan.refused_errno;
}

inline std::vector<std::string> denied_syscalls() {
  std::vector<std::string> names(std::begin(seccomp_detail::deny_list_names),
                                 std::end(seccomp_detail::deny_list_names));
  names.insert(names.end(), {"clone(CLONE_NEW*)", "clone3(always ENOSYS)", "personality(other than 0, 0xffffffff)",
                             "ioctl(TIOCSTI)", "ioctl(TIOCLINUX)", "mremap(old size 0: a second mapping)"});
  return names;
}

inline std::vector<std::string> allowed_syscalls() {
  std::vector<std::string> names(std::begin(seccomp_detail::allow_list_names),
                                 std::end(seccomp_detail::allow_list_names));
  names.insert(names.end(),
               {"mremap(old size not 0)", "clone(CLONE_THREAD, no CLONE_NEW*)", "kill(own pid)", "tgkill(own pid)",
                "openat(read-only, no O_CREAT/O_TRUNC/O_TMPFILE)", "open(read-only, same)",
                "ioctl(FIONREAD, FIONBIO, FIOCLEX, FIONCLEX, TCGETS)", "sendto(no address)", "socketpair(AF_UNIX)",
                "prlimit64(pid 0, reading only)", "prctl(PR_SET_NAME, PR_GET_NAME)"});
  return names;
}

}  // namespace isolate::detail::sandbox

#endif
