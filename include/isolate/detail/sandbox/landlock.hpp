// Landlock for the worker: the kernel's own allow-list of files, TCP ports and
// IPC peers, applied by the worker to itself right after exec.
//
//   landlock_plan plan;
//   plan.restrict_filesystem = true;
//   plan.read_paths = {"/usr/lib", "/etc/ld.so.cache"};
//   plan.read_fds = {library_fd};
//   plan.scope_signals = plan.scope_abstract_unix = plan.deny_tcp = true;
//   std::error_code ec;
//   landlock_report const report = apply_landlock(plan, ec);
//   // ec: the kernel refused; report: what this kernel enforces from now on
//
// Call it while the process has one thread: landlock_restrict_self restricts
// the calling thread only (threads started afterwards inherit the domain).
// Apply it before a seccomp allow-list, which refuses the landlock syscalls.
//
// What Landlock (ABI 1 to 7) does not cover, so other layers must:
// - Executable mappings: EXECUTE governs execve only; any readable file can
//   be mmap'ed or mprotect'ed PROT_EXEC (seccomp cannot see the file either).
// - Descriptors opened before the domain, or received later over a socket:
//   they keep the access they were opened with. That is how read_fds and the
//   host's memfds work; it is also why the worker must close what the plugin
//   should not have.
// - Metadata: stat, access, readlink, chdir and path walks anywhere; chmod,
//   chown, utimes, setxattr, flock on any file that DAC allows.
// - Sockets other than TCP: UDP, raw, SCTP, netlink are not restricted (use a
//   network namespace or seccomp's deny_sockets); connect() and sendto() to a
//   pathname UNIX socket are not either (MAKE_SOCK only covers bind creating
//   the socket file); abstract UNIX sockets only with the ABI 6 scope.
// - Signals before ABI 6. ptrace, process_vm_readv and /proc/<pid>/mem of a
//   process outside the domain are refused at every ABI, but processes in the
//   same domain (the plugin's own children, its other threads) stay reachable.
// - System V IPC and POSIX message queues (mq_open walks no path).
// - Before ABI 2 a rename or link into another directory is always refused;
//   truncate() is unrestricted before ABI 3, device ioctls before ABI 5.
// - Rights added after ABI 7 (the newest this header knows) stay allowed until
//   this header learns them.
#ifndef ISOLATE_DETAIL_SANDBOX_LANDLOCK_HPP
#define ISOLATE_DETAIL_SANDBOX_LANDLOCK_HPP

#include "isolate/detail/config.hpp"

#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cerrno>

#if __has_include(<linux/landlock.h>)
#include <linux/landlock.h>
#endif

namespace isolate::detail::sandbox {

// 0 when Landlock is unavailable (kernel older than 5.13, or the LSM is not
// enabled at boot); otherwise the ABI version, 1 to 7 on kernels up to 6.18.
inline int landlock_abi() noexcept;

struct landlock_plan {
  bool restrict_filesystem = false;      // false: no filesystem rules at all (scopes/net only)
  std::vector<std::string> read_paths;   // dirs or files: read (+ read dir, + execute)
  std::vector<std::string> write_paths;  // dirs or files: read + write + create/remove/rename/truncate,
                                         // never execute nor device nodes
  std::vector<int> read_fds;             // open files or dirs granted read + execute (e.g. the plugin library)
  bool scope_signals = false;            // ABI >= 6: no signals to processes outside the domain
  bool scope_abstract_unix = false;      // ABI >= 6: no connecting to abstract unix sockets outside
  bool deny_tcp = false;                 // ABI >= 4: no TCP bind/connect
};

// What is enforced after apply_landlock: a feature asked for but false here is
// one this kernel's ABI lacks (the caller decides whether that is fatal).
struct landlock_report {
  int abi = 0;
  bool filesystem = false, signals = false, abstract_unix = false, tcp = false;
  std::vector<std::string> missing_paths;  // read or write paths that do not exist (skipped); looked
                                           // for only when filesystem rules are applied
  std::string refused_rule;                // on a kernel refusal of a rule: its path, or "fd N"
};

// Restricts this process (its calling thread and every thread or process it
// starts later) to the plan. On error (`ec`) nothing was applied.
inline landlock_report apply_landlock(landlock_plan const& plan, std::error_code& ec);

// The kernel's values, checked against <linux/landlock.h> where that header
// has them: Debian 12's header is from Linux 6.1 and stops at ABI 2.
namespace landlock_uapi {

inline constexpr std::uint32_t create_ruleset_version = 1U << 0;

inline constexpr std::uint64_t fs_execute = 1ULL << 0;      // ABI 1
inline constexpr std::uint64_t fs_write_file = 1ULL << 1;   // ABI 1
inline constexpr std::uint64_t fs_read_file = 1ULL << 2;    // ABI 1
inline constexpr std::uint64_t fs_read_dir = 1ULL << 3;     // ABI 1
inline constexpr std::uint64_t fs_remove_dir = 1ULL << 4;   // ABI 1
inline constexpr std::uint64_t fs_remove_file = 1ULL << 5;  // ABI 1
inline constexpr std::uint64_t fs_make_char = 1ULL << 6;    // ABI 1
inline constexpr std::uint64_t fs_make_dir = 1ULL << 7;     // ABI 1
inline constexpr std::uint64_t fs_make_reg = 1ULL << 8;     // ABI 1
inline constexpr std::uint64_t fs_make_sock = 1ULL << 9;    // ABI 1
inline constexpr std::uint64_t fs_make_fifo = 1ULL << 10;   // ABI 1
inline constexpr std::uint64_t fs_make_block = 1ULL << 11;  // ABI 1
inline constexpr std::uint64_t fs_make_sym = 1ULL << 12;    // ABI 1
inline constexpr std::uint64_t fs_refer = 1ULL << 13;       // ABI 2 (Linux 5.19)
inline constexpr std::uint64_t fs_truncate = 1ULL << 14;    // ABI 3 (Linux 6.2)
inline constexpr std::uint64_t fs_ioctl_dev = 1ULL << 15;   // ABI 5 (Linux 6.10)

inline constexpr std::uint64_t net_bind_tcp = 1ULL << 0;     // ABI 4 (Linux 6.7)
inline constexpr std::uint64_t net_connect_tcp = 1ULL << 1;  // ABI 4

inline constexpr std::uint64_t scope_abstract_unix_socket = 1ULL << 0;  // ABI 6 (Linux 6.12)
inline constexpr std::uint64_t scope_signal = 1ULL << 1;                // ABI 6

inline constexpr int rule_path_beneath = 1;  // ABI 1

#ifdef LANDLOCK_CREATE_RULESET_VERSION
static_assert(create_ruleset_version == LANDLOCK_CREATE_RULESET_VERSION);
static_assert(fs_execute == LANDLOCK_ACCESS_FS_EXECUTE && fs_make_sym == LANDLOCK_ACCESS_FS_MAKE_SYM);
#endif
#ifdef LANDLOCK_ACCESS_FS_REFER
static_assert(fs_refer == LANDLOCK_ACCESS_FS_REFER);
#endif
#ifdef LANDLOCK_ACCESS_FS_TRUNCATE
static_assert(fs_truncate == LANDLOCK_ACCESS_FS_TRUNCATE);
#endif
#ifdef LANDLOCK_ACCESS_FS_IOCTL_DEV
static_assert(fs_ioctl_dev == LANDLOCK_ACCESS_FS_IOCTL_DEV);
#endif
#ifdef LANDLOCK_ACCESS_NET_BIND_TCP
static_assert(net_bind_tcp == LANDLOCK_ACCESS_NET_BIND_TCP && net_connect_tcp == LANDLOCK_ACCESS_NET_CONNECT_TCP);
#endif
#ifdef LANDLOCK_SCOPE_SIGNAL
static_assert(scope_signal == LANDLOCK_SCOPE_SIGNAL &&
              scope_abstract_unix_socket == LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET);
#endif

// struct landlock_ruleset_attr as of ABI 6. The kernel takes a size and
// insists that bytes past the fields it knows are zero, so one struct serves
// every ABI as long as the fields an older kernel lacks stay 0.
struct ruleset_attr {
  std::uint64_t handled_access_fs = 0;   // ABI 1
  std::uint64_t handled_access_net = 0;  // ABI 4
  std::uint64_t scoped = 0;              // ABI 6
};

// struct landlock_path_beneath_attr: packed, 12 bytes.
struct __attribute__((packed)) path_beneath_attr {
  std::uint64_t allowed_access = 0;
  std::int32_t parent_fd = -1;
};
static_assert(sizeof(path_beneath_attr) == 12);

// Landlock's syscalls have the same numbers on every architecture but alpha.
#ifdef SYS_landlock_create_ruleset
inline constexpr long sys_create_ruleset = SYS_landlock_create_ruleset;
inline constexpr long sys_add_rule = SYS_landlock_add_rule;
inline constexpr long sys_restrict_self = SYS_landlock_restrict_self;
#else
inline constexpr long sys_create_ruleset = 444;
inline constexpr long sys_add_rule = 445;
inline constexpr long sys_restrict_self = 446;
#endif

}  // namespace landlock_uapi

namespace landlock_detail {

namespace v = landlock_uapi;

// What each kind of grant allows, before masking by ABI and by file type.
inline constexpr std::uint64_t read_rights = v::fs_read_file | v::fs_read_dir | v::fs_execute;
// Everything but EXECUTE (what the plugin writes it cannot execve) and device
// nodes (nothing in a sandbox should create them).
inline constexpr std::uint64_t write_rights = v::fs_read_file | v::fs_read_dir | v::fs_write_file | v::fs_remove_dir |
                                              v::fs_remove_file | v::fs_make_dir | v::fs_make_reg | v::fs_make_sock |
                                              v::fs_make_fifo | v::fs_make_sym | v::fs_refer | v::fs_truncate |
                                              v::fs_ioctl_dev;
// The rights that make sense on a file rather than a directory; the kernel
// refuses a rule on a file that carries any other.
inline constexpr std::uint64_t file_rights =
    v::fs_execute | v::fs_write_file | v::fs_read_file | v::fs_truncate | v::fs_ioctl_dev;

// Every filesystem right the running ABI knows: handled means denied unless granted.
inline std::uint64_t fs_rights_of(int abi) noexcept {
  if (abi < 1) return 0;
  std::uint64_t rights = (v::fs_make_sym << 1) - 1;  // ABI 1: bits 0 to 12
  if (abi >= 2) rights |= v::fs_refer;
  if (abi >= 3) rights |= v::fs_truncate;
  if (abi >= 5) rights |= v::fs_ioctl_dev;
  return rights;
}

// What the plan asks for that this ABI can enforce; all zero: nothing to do.
inline v::ruleset_attr handled_by(landlock_plan const& plan, int abi) noexcept {
  v::ruleset_attr attr;
  if (plan.restrict_filesystem) attr.handled_access_fs = fs_rights_of(abi);
  if (plan.deny_tcp && abi >= 4) attr.handled_access_net = v::net_bind_tcp | v::net_connect_tcp;
  if (plan.scope_signals && abi >= 6) attr.scoped |= v::scope_signal;
  if (plan.scope_abstract_unix && abi >= 6) attr.scoped |= v::scope_abstract_unix_socket;
  return attr;
}

// Closes a descriptor once; keeps this header free of the process layer.
class scoped_fd {
 public:
  explicit scoped_fd(int fd) noexcept : fd_(fd) {}
  scoped_fd(scoped_fd const&) = delete;
  scoped_fd& operator=(scoped_fd const&) = delete;
  ~scoped_fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

// Grants `rights` (within `handled`) beneath what `fd` refers to: the
// hierarchy under a directory, or the file itself with its file rights only.
// Returns 0 or an errno.
inline int add_rule(int ruleset, int fd, std::uint64_t rights, std::uint64_t handled) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno;
  if (!S_ISDIR(st.st_mode)) rights &= file_rights;
  v::path_beneath_attr rule;
  rule.allowed_access = rights & handled;
  rule.parent_fd = fd;
  if (rule.allowed_access == 0) return 0;  // the kernel refuses an empty grant (ENOMSG)
  if (::syscall(v::sys_add_rule, ruleset, v::rule_path_beneath, &rule, 0U) != 0) return errno;
  return 0;
}

// As add_rule, for a path; one that does not exist is listed, not an error.
inline int add_path_rule(int ruleset, std::string const& path, std::uint64_t rights, std::uint64_t handled,
                         landlock_report& report) {
  // O_PATH: no read permission needed, and opening a FIFO this way does not block.
  scoped_fd const fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (fd.get() < 0) {
    int const err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      report.missing_paths.push_back(path);
      return 0;
    }
    report.refused_rule = path;
    return err;
  }
  int const err = add_rule(ruleset, fd.get(), rights, handled);
  if (err != 0) report.refused_rule = path;
  return err;
}

inline int add_filesystem_rules(int ruleset, landlock_plan const& plan, std::uint64_t handled,
                                landlock_report& report) {
  for (std::string const& path : plan.read_paths) {
    if (int const err = add_path_rule(ruleset, path, read_rights, handled, report)) return err;
  }
  for (std::string const& path : plan.write_paths) {
    if (int const err = add_path_rule(ruleset, path, write_rights, handled, report)) return err;
  }
  for (int const fd : plan.read_fds) {
    if (int const err = add_rule(ruleset, fd, read_rights, handled)) {
      report.refused_rule = "fd " + std::to_string(fd);
      return err;
    }
  }
  return 0;
}

// Enters the domain. The kernel requires CAP_SYS_ADMIN (in the process's user
// namespace) or no_new_privs, so that a setuid program cannot be run under
// rules it does not expect; no_new_privs is set only when the first try says
// it is needed. Returns 0 or an errno.
inline int restrict_self(int ruleset) noexcept {
  if (::syscall(v::sys_restrict_self, ruleset, 0U) == 0) return 0;
  if (errno != EPERM) return errno;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  if (::syscall(v::sys_restrict_self, ruleset, 0U) == 0) return 0;
  return errno;
}

}  // namespace landlock_detail

inline int landlock_abi() noexcept {
  long const abi = ::syscall(landlock_uapi::sys_create_ruleset, nullptr, 0, landlock_uapi::create_ruleset_version);
  // ENOSYS: kernel without Landlock; EOPNOTSUPP: built in but not enabled at boot.
  return abi > 0 ? static_cast<int>(abi) : 0;
}

inline landlock_report apply_landlock(landlock_plan const& plan, std::error_code& ec) {
  namespace d = landlock_detail;
  ec.clear();
  landlock_report report;
  report.abi = landlock_abi();
  landlock_uapi::ruleset_attr const attr = d::handled_by(plan, report.abi);
  if (attr.handled_access_fs == 0 && attr.handled_access_net == 0 && attr.scoped == 0) return report;

  d::scoped_fd const ruleset(static_cast<int>(::syscall(landlock_uapi::sys_create_ruleset, &attr, sizeof attr, 0U)));
  if (ruleset.get() < 0) {
    ec.assign(errno, std::system_category());
    return report;
  }
  // No TCP rule: with both TCP rights handled, every port is refused.
  int err =
      attr.handled_access_fs != 0 ? d::add_filesystem_rules(ruleset.get(), plan, attr.handled_access_fs, report) : 0;
  if (err == 0) err = d::restrict_self(ruleset.get());
  if (err != 0) {
    ec.assign(err, std::system_category());
    return report;
  }
  report.filesystem = attr.handled_access_fs != 0;
  report.tcp = attr.handled_access_net != 0;
  report.signals = (attr.scoped & landlock_uapi::scope_signal) != 0;
  report.abstract_unix = (attr.scoped & landlock_uapi::scope_abstract_unix_socket) != 0;
  return report;
}

}  // namespace isolate::detail::sandbox

#endif
