// Seccomp user notification: the refusals of a seccomp_plan with `notify` are
// answered, as they happen, by a supervisor in the host, which records each
// one as a refused_call (the system call and what it reached for: a socket
// family, an address, a path) even when the plugin survives the refusal.
//
// Worker side, after Landlock and before the plugin is loaded:
//
//   seccomp_plan plan;
//   plan.policy = syscall_policy::deny_list;
//   plan.deny_sockets = plan.notify = true;
//   std::error_code ec;
//   unique_fd listener = apply_seccomp_with_listener(plan, ec);
//   // if (listener): send it to the host (SCM_RIGHTS), then close it here
//
// Host side, with the descriptor received and the same plan:
//
//   seccomp_supervisor supervisor(std::move(listener), {.plan = plan});
//   // whenever supervisor.native_handle() is readable:
//   pending_step const step = supervisor.handle_pending();
//   for (refused_call const& call : supervisor.take_records()) report(call);
//
// What notification changes for the worker:
// - A refused call waits, interruptibly, until the supervisor answers it. A
//   host that holds the listener and does not read it stalls those calls
//   (only those; allowed calls never wait), so the host must supervise for as
//   long as the worker runs; the call timeout still bounds a stalled call.
// - When the last copy of the listener is closed (the host closed it or is
//   gone), the waiting call and every later refused one fail with ENOSYS
//   instead of their errno: still refused, never let through.
// - So the worker must close its own copy once sent, before the plugin runs:
//   kept, it would keep refused calls waiting forever after the host is gone,
//   and a plugin that found it could answer its own calls (CONTINUE: allow
//   them). Between loading and sending, the worker may make no refused call:
//   it would wait for itself.
// - One listener per process: the kernel refuses a second filter with one
//   (EBUSY), so a process loads a notifying plan once.
// - A signal that interrupts a waiting call withdraws its notification; with
//   SA_RESTART the call is made again, a new notification. The supervisor
//   records a call once it has answered it, so a restarted call is one record.
// - Threads, and children where the plan allows them, notify the same
//   listener; refused_call::pid tells which thread called.
// - Cost (seccomp_notify_test, 2-vCPU guest of LIMITS.md): a refusal answered
//   by the supervisor takes 5 us with both processes on one core, ~58 us when
//   the supervisor sleeps on the other (the wake-up), against 0.13 us for an
//   errno; an observed open 20 us (one core) to 85-100 us, against 2.7 us
//   unobserved under Landlock. Observe opens to diagnose, not by default.
//
// Integration (for the worker start, not done here): the worker loads its
// filter, sends the listener over the control socket with send_with_fds
// (process/fd_passing.hpp) as its first message after the sandbox is applied,
// closes it, and only then loads the plugin; the host receives it with
// receive_with_fds_between(…, 0, 1, …) (no descriptor: notification was not
// available, refusals keep their errno), builds a seccomp_supervisor with the
// plan it asked for, and watches native_handle() on its io_context as the
// class comment shows; records become the worker's violations.
#ifndef ISOLATE_DETAIL_SANDBOX_SECCOMP_NOTIFY_HPP
#define ISOLATE_DETAIL_SANDBOX_SECCOMP_NOTIFY_HPP

#include "isolate/detail/config.hpp"

#include "isolate/detail/process/unique_fd.hpp"
#include "isolate/detail/sandbox/seccomp.hpp"
#include "isolate/detail/system_call.hpp"

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include <cerrno>

namespace isolate::detail::sandbox {

// Whether this kernel and libseccomp can notify with every thread filtered
// (TSYNC): libseccomp's API level 6, which needs Linux 5.7 or later.
inline bool seccomp_notify_available() noexcept { return seccomp_api_get() >= 6; }

// Loads the plan into this process, as apply_seccomp, and returns the
// listener (close-on-exec) for the host. With plan.notify false, or where
// notification is not available, it loads the plan with errno answers
// instead and returns no listener: the refusals behave as they always have,
// and there is nothing to send. On error nothing was loaded.
inline unique_fd apply_seccomp_with_listener(seccomp_plan const& plan, std::error_code& ec);

// The plan apply_seccomp_with_listener loads for `plan` on this kernel
// (without seccomp user notification: refusals answered in the process).
inline seccomp_plan plan_as_loaded(seccomp_plan plan) noexcept;

// One refusal, as the supervisor answered it.
struct refused_call {
  pid_t pid = 0;         // the calling thread, in the supervisor's PID namespace (0: not visible from there)
  std::string syscall;   // libseccomp's name ("socket"), or "syscall N" for a number it does not know
  std::string argument;  // what the call reached for: "AF_INET SOCK_STREAM", "127.0.0.1:80", "/etc/passwd",
                         // "PTRACE_ATTACH pid 12", "flags 0x10000000"; "" when nothing is decoded for it.
                         // Read from the plugin's memory: what it showed, printable ASCII (other bytes as
                         // \xNN), at most seccomp_supervisor::max_argument bytes (then ending in "...")
  int error = 0;         // the errno it was answered with
};

struct supervisor_options {
  seccomp_plan plan;                    // the plan the worker loaded: which errno each refusal gets
  std::vector<std::string> read_paths;  // observe_opens: Landlock's trees (landlock_plan's read_paths
  std::vector<std::string> write_paths; // and write_paths); with none, every observed open goes through
  std::size_t max_records = 1024;       // kept until take_records(); later refusals are only counted
};

// What the supervisor has done since it was made.
struct supervisor_counts {
  std::uint64_t refused = 0;    // answered with an errno
  std::uint64_t continued = 0;  // observed opens let through (the kernel then makes the call, Landlock deciding)
  std::uint64_t withdrawn = 0;  // notifications whose thread died or was interrupted before the answer
  std::uint64_t dropped = 0;    // refusals answered but not recorded: max_records were waiting
};

// What one handle_pending() did.
struct pending_step {
  std::size_t handled = 0;  // notifications received (answered or withdrawn)
  bool more = false;        // the limit was reached with notifications still waiting: call again soon
  bool hung_up = false;     // no task uses the filter any more, or the listener is closed: stop watching
};

// The host's end of a worker's listener: receives its notifications, decodes
// each, answers it (the plan's errno, or for an observed open CONTINUE) and
// keeps a bounded record of the refusals.
//
// It never blocks: SECCOMP_IOCTL_NOTIF_RECV waits in the kernel even on a
// non-blocking descriptor, so each receive follows a poll() of zero timeout
// that saw a notification waiting. Only the supervisor reads the listener
// (the worker closed its copy), so a notification poll() saw is still there,
// or gone with its thread (ENOENT, counted as withdrawn); were another
// process to hold and read the listener too, a receive could wait for it.
// Every failure of the kernel's calls is counted or ends the step; none is
// thrown. Work per call is capped (`limit`), so a worker that floods it with
// refused calls from many threads cannot keep the host's thread.
//
// With Asio (edge-triggered epoll: a wait re-armed while notifications are
// still waiting would not complete, hence the post when `more`; `watch`
// holds a copy of the listener, so close it too when supervision ends, or
// refused calls keep waiting instead of failing with ENOSYS):
//
//   asio::posix::stream_descriptor watch(io, ::dup(supervisor.native_handle()));
//   std::function<void(std::error_code)> on_ready = [&](std::error_code ec) {
//     if (ec) return;
//     pending_step const step = supervisor.handle_pending();
//     if (step.hung_up) return;
//     if (step.more) asio::post(io, [&] { on_ready({}); });
//     else watch.async_wait(asio::posix::stream_descriptor::wait_read, on_ready);
//   };
//   watch.async_wait(asio::posix::stream_descriptor::wait_read, on_ready);
//
// Arguments are read from the worker's memory (process_vm_readv) and its
// /proc entries, which needs ptrace access to it: the host's own uid, or
// capabilities in the worker's user namespace. Where that is refused the
// argument reads "?" and observed opens go through unjudged.
//
// Thread safety: distinct objects, safe; one object, one thread at a time.
class seccomp_supervisor {
 public:
  static constexpr std::size_t max_argument = 256;  // bytes of refused_call::argument, "..." included

  explicit seccomp_supervisor(unique_fd listener, supervisor_options options = {});

  seccomp_supervisor(seccomp_supervisor&&) noexcept = default;
  seccomp_supervisor& operator=(seccomp_supervisor&&) noexcept = default;

  // The listener, to wait on until readable; -1 once closed.
  int native_handle() const noexcept { return listener_.get(); }

  // Answers up to `limit` waiting notifications and returns; never waits.
  // Throws only std::bad_alloc (a record's strings).
  pending_step handle_pending(std::size_t limit = 64);

  // The refusals recorded since the last call, oldest first.
  std::vector<refused_call> take_records() noexcept { return std::exchange(records_, {}); }

  supervisor_counts counts() const noexcept { return counts_; }

  // Closes the listener: the waiting refused calls and every later one fail
  // with ENOSYS. Safe to call twice.
  void close() noexcept { listener_.reset(); }

 private:
  struct tree {
    dev_t dev;
    ino_t ino;
    bool writable;
  };
  enum class verdict { inside, outside, unknown };

  void handle_one();
  verdict judge_open(pid_t pid, std::string_view name, std::uint64_t const (&args)[6]) const;

  unique_fd listener_;
  supervisor_options options_;
  std::vector<tree> trees_;
  std::vector<std::uint64_t> notification_;  // the kernel's struct seccomp_notif, at the kernel's size
  std::vector<std::uint64_t> response_;      // and its struct seccomp_notif_resp
  std::vector<refused_call> records_;
  supervisor_counts counts_;
};

namespace notify_detail {

// --- Reading the worker ---------------------------------------------------

// Reads up to `size` bytes at `address` in thread `pid`; returns how many it
// read, stopping at the first page that cannot be read. One remote iovec per
// page: process_vm_readv's partial transfers are documented per iovec.
inline std::size_t read_remote(pid_t pid, std::uint64_t address, void* out, std::size_t size) noexcept {
  if (pid <= 0 || address == 0 || size == 0) return 0;
  constexpr std::size_t max_pages = 4;
  std::size_t const page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  size = std::min(size, page * (max_pages - 1));
  iovec remote[max_pages];
  unsigned count = 0;
  for (std::uint64_t at = address, end = address + size; at < end && count < max_pages; ++count) {
    std::uint64_t const page_end = (at / page + 1) * page;
    std::uint64_t const stop = std::min(end, page_end);
    remote[count] = {reinterpret_cast<void*>(static_cast<std::uintptr_t>(at)), static_cast<std::size_t>(stop - at)};
    at = stop;
  }
  iovec local{out, size};
  ssize_t const n = retry_on_eintr([&] { return ::process_vm_readv(pid, &local, 1, remote, count, 0); });
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

// A NUL-terminated string in the worker's memory, of at most `max` bytes.
struct remote_string {
  std::string text;
  bool readable = false;  // some of it could be read
  bool complete = false;  // its NUL was found within `max` bytes
};

inline remote_string read_remote_string(pid_t pid, std::uint64_t address, std::size_t max) {
  remote_string s;
  if (address == 0) return s;
  s.text.resize(max);
  std::size_t const n = read_remote(pid, address, s.text.data(), max);
  s.readable = n > 0;
  std::size_t const end = s.text.find('\0');
  s.complete = end < n;
  s.text.resize(std::min(end, n));
  return s;
}

// --- Formatting -----------------------------------------------------------

// Appends `raw` as printable ASCII (other bytes and the backslash escaped),
// keeping `out` within `cap` bytes: cut, it ends with "...".
inline void append_printable(std::string& out, std::string_view raw, std::size_t cap, bool cut = false) {
  static constexpr char hex[] = "0123456789abcdef";
  for (unsigned char const c : raw) {
    char piece[4];
    std::size_t len = 0;
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      piece[len++] = static_cast<char>(c);
    } else {
      piece[len++] = '\\';
      piece[len++] = 'x';
      piece[len++] = hex[c >> 4];
      piece[len++] = hex[c & 0xf];
    }
    if (out.size() + len > cap - 3) {
      cut = true;
      break;
    }
    out.append(piece, len);
  }
  if (cut) out += "...";
}

inline std::string printable(std::string_view raw, std::size_t cap, bool cut = false) {
  std::string out;
  append_printable(out, raw, cap, cut);
  return out;
}

inline std::string hex_value(std::uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

struct named_value {
  int value;
  char const* name;
};

// clang-format off
inline constexpr named_value families[] = {
    {AF_UNIX, "AF_UNIX"}, {AF_INET, "AF_INET"}, {AF_INET6, "AF_INET6"}, {AF_NETLINK, "AF_NETLINK"},
    {AF_PACKET, "AF_PACKET"}, {AF_KEY, "AF_KEY"}, {AF_APPLETALK, "AF_APPLETALK"}, {AF_X25, "AF_X25"},
    {AF_CAN, "AF_CAN"}, {AF_TIPC, "AF_TIPC"}, {AF_BLUETOOTH, "AF_BLUETOOTH"}, {AF_ALG, "AF_ALG"},
    {AF_VSOCK, "AF_VSOCK"}, {AF_RDS, "AF_RDS"}, {AF_XDP, "AF_XDP"}, {AF_NFC, "AF_NFC"}, {AF_PPPOX, "AF_PPPOX"},
    {AF_LLC, "AF_LLC"}, {AF_IB, "AF_IB"}, {AF_MPLS, "AF_MPLS"}, {AF_KCM, "AF_KCM"}, {AF_QIPCRTR, "AF_QIPCRTR"},
    {AF_SMC, "AF_SMC"}, {AF_IEEE802154, "AF_IEEE802154"}, {AF_ISDN, "AF_ISDN"}, {AF_ATMPVC, "AF_ATMPVC"},
    {AF_ATMSVC, "AF_ATMSVC"}, {AF_NETROM, "AF_NETROM"}, {AF_AX25, "AF_AX25"}, {AF_ROSE, "AF_ROSE"},
};
inline constexpr named_value socket_types[] = {
    {SOCK_STREAM, "SOCK_STREAM"}, {SOCK_DGRAM, "SOCK_DGRAM"}, {SOCK_RAW, "SOCK_RAW"}, {SOCK_RDM, "SOCK_RDM"},
    {SOCK_SEQPACKET, "SOCK_SEQPACKET"}, {SOCK_DCCP, "SOCK_DCCP"}, {SOCK_PACKET, "SOCK_PACKET"},
};
inline constexpr named_value ptrace_requests[] = {
    {PTRACE_TRACEME, "PTRACE_TRACEME"}, {PTRACE_PEEKTEXT, "PTRACE_PEEKTEXT"}, {PTRACE_PEEKDATA, "PTRACE_PEEKDATA"},
    {PTRACE_POKETEXT, "PTRACE_POKETEXT"}, {PTRACE_POKEDATA, "PTRACE_POKEDATA"}, {PTRACE_GETREGS, "PTRACE_GETREGS"},
    {PTRACE_SETREGS, "PTRACE_SETREGS"}, {PTRACE_ATTACH, "PTRACE_ATTACH"}, {PTRACE_DETACH, "PTRACE_DETACH"},
    {PTRACE_SEIZE, "PTRACE_SEIZE"}, {PTRACE_INTERRUPT, "PTRACE_INTERRUPT"}, {PTRACE_CONT, "PTRACE_CONT"},
};
// The system calls whose refusal is worth a path, and which argument holds it.
struct path_argument {
  char const* syscall;
  unsigned index;
};
inline constexpr path_argument path_arguments[] = {
    {"open", 0}, {"creat", 0}, {"openat", 1}, {"openat2", 1}, {"execve", 0}, {"execveat", 1}, {"mount", 1},
    {"umount2", 0}, {"chroot", 0}, {"pivot_root", 0}, {"swapon", 0}, {"swapoff", 0}, {"acct", 0}, {"uselib", 0},
    {"chdir", 0}, {"mkdir", 0}, {"mkdirat", 1}, {"rmdir", 0}, {"unlink", 0}, {"unlinkat", 1}, {"rename", 0},
    {"renameat", 1}, {"renameat2", 1}, {"link", 0}, {"linkat", 1}, {"symlink", 1}, {"symlinkat", 2},
    {"mknod", 0}, {"mknodat", 1}, {"chmod", 0}, {"fchmodat", 1}, {"fchmodat2", 1}, {"chown", 0}, {"lchown", 0},
    {"fchownat", 1}, {"utimensat", 1}, {"futimesat", 1},
    {"truncate", 0}, {"access", 0}, {"faccessat", 1}, {"faccessat2", 1}, {"stat", 0}, {"lstat", 0},
    {"readlink", 0}, {"readlinkat", 1}, {"statfs", 0}, {"utimes", 0}, {"utime", 0}, {"setxattr", 0},
    {"lsetxattr", 0}, {"removexattr", 0}, {"inotify_add_watch", 1}, {"open_tree", 1}, {"fspick", 1},
    {"move_mount", 3}, {"name_to_handle_at", 1}, {"quotactl", 1},
};
// clang-format on

template <std::size_t N>
inline std::string name_of(named_value const (&table)[N], std::uint64_t value, char const* otherwise) {
  for (named_value const& entry : table) {
    if (static_cast<std::uint64_t>(static_cast<std::uint32_t>(entry.value)) == value) return entry.name;
  }
  return std::string(otherwise) + " " + std::to_string(value);
}

inline std::string socket_description(std::uint64_t family, std::uint64_t type) {
  std::string text = name_of(families, static_cast<std::uint32_t>(family), "family");
  std::uint32_t const kind = static_cast<std::uint32_t>(type) & 0xf;  // the kernel's SOCK_TYPE_MASK
  text += ' ';
  text += name_of(socket_types, kind, "type");
  if (type & SOCK_NONBLOCK) text += "|SOCK_NONBLOCK";
  if (type & SOCK_CLOEXEC) text += "|SOCK_CLOEXEC";
  return text;
}

// A socket address in the worker's memory: "1.2.3.4:80", "[::1]:443", a
// path, "@name" (abstract), "(unnamed)".
inline std::string address_description(pid_t pid, std::uint64_t address, std::uint64_t length, std::size_t cap) {
  if (address == 0) return "";
  sockaddr_storage storage{};
  std::size_t const wanted = static_cast<std::size_t>(std::min<std::uint64_t>(length, sizeof storage));
  std::size_t const got = read_remote(pid, address, &storage, wanted);
  if (got < sizeof(sa_family_t)) return "?";
  char text[INET6_ADDRSTRLEN + 16];
  switch (storage.ss_family) {
    case AF_INET: {
      if (got < sizeof(sockaddr_in)) break;
      sockaddr_in in;
      std::memcpy(&in, &storage, sizeof in);
      char host[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
      std::snprintf(text, sizeof text, "%s:%u", host, unsigned{ntohs(in.sin_port)});
      return text;
    }
    case AF_INET6: {
      if (got < sizeof(sockaddr_in6)) break;
      sockaddr_in6 in6;
      std::memcpy(&in6, &storage, sizeof in6);
      char host[INET6_ADDRSTRLEN];
      ::inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
      std::snprintf(text, sizeof text, "[%s]:%u", host, unsigned{ntohs(in6.sin6_port)});
      return text;
    }
    case AF_UNIX: {
      std::size_t const offset = offsetof(sockaddr_un, sun_path);
      if (got <= offset) return "(unnamed)";
      std::string_view path(reinterpret_cast<char const*>(&storage) + offset, got - offset);
      if (path[0] == '\0') return "@" + printable(path.substr(1), cap - 1);  // abstract: every byte counts
      return printable(path.substr(0, path.find('\0')), cap);
    }
    default:
      break;
  }
  return name_of(families, storage.ss_family, "family");
}

// The name libseccomp gives `number` on `arch`, else the newer calls this
// library knows, else "syscall N".
inline std::string syscall_name(std::uint32_t arch, int number) {
  if (char* raw = seccomp_syscall_resolve_num_arch(arch, number)) {
    std::string name(raw);
    std::free(raw);  // NOLINT: libseccomp allocates it with malloc
    return name;
  }
  for (seccomp_detail::newer_syscall const& s : seccomp_detail::newer_syscalls) {
    if (s.number == number) return s.name;
  }
  return "syscall " + std::to_string(number);
}

inline int path_index(std::string_view name) noexcept {
  for (path_argument const& p : path_arguments) {
    if (name == p.syscall) return static_cast<int>(p.index);
  }
  return -1;
}

// What a refused call reached for, from its registers and (behind pointers)
// the worker's memory.
inline std::string describe(pid_t pid, std::string_view name, std::uint64_t const (&args)[6], std::size_t cap) {
  if (name == "socket" || name == "socketpair") return socket_description(args[0], args[1]);
  if (name == "connect" || name == "bind") return address_description(pid, args[1], args[2], cap);
  if (name == "sendto") return address_description(pid, args[4], args[5], cap);
  if (name == "ptrace") {
    return name_of(ptrace_requests, args[0], "request") + " pid " + std::to_string(static_cast<int>(args[1]));
  }
  if (name == "clone" || name == "unshare") return "flags " + hex_value(args[0]);
  if (name == "kill" || name == "tgkill" || name == "tkill") return "pid " + std::to_string(static_cast<int>(args[0]));
  if (name == "ioctl") return "request " + hex_value(static_cast<std::uint32_t>(args[1]));
  if (name == "personality") return hex_value(static_cast<std::uint32_t>(args[0]));
  if (int const index = path_index(name); index >= 0) {
    remote_string const path = read_remote_string(pid, args[index], cap);
    if (!path.readable) return args[index] == 0 ? "" : "?";
    return printable(path.text, cap, !path.complete);
  }
  return "";
}

// --- Judging an observed open ---------------------------------------------

// Landlock's view of an open: the access it needs, by flags.
inline bool opens_to_write(std::uint64_t flags) noexcept {
  return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0 || (flags & (O_TMPFILE & ~O_DIRECTORY)) != 0;
}

inline unique_fd open_path(int dir, char const* path, int flags) noexcept {
  return unique_fd(retry_on_eintr([&] { return ::openat(dir, path, flags | O_PATH | O_CLOEXEC); }));
}

}  // namespace notify_detail

inline seccomp_plan plan_as_loaded(seccomp_plan plan) noexcept {
  if (!plan.notify || !seccomp_notify_available()) {
    plan.notify = plan.observe_opens = false;  // observing needs a listener; without one, opens are Landlock's
  }
  return plan;
}

inline unique_fd apply_seccomp_with_listener(seccomp_plan const& asked, std::error_code& ec) {
  ec.clear();
  if (!seccomp_detail::valid(asked)) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return {};
  }
  if (!seccomp_detail::needs_filter(asked)) return {};
  const seccomp_plan plan = plan_as_loaded(asked);
  if (!plan.notify) {
    if (!seccomp_detail::needs_filter(plan)) return {};
    if (int const err = seccomp_detail::load_plan(plan)) ec.assign(err, std::system_category());
    return {};
  }
  // From the load on, a refused call would wait for this very process: none
  // below (load_plan's listener() only reads libseccomp's state).
  int listener = -1;
  if (int const err = seccomp_detail::load_plan(plan, &listener)) {
    ec.assign(err, std::system_category());
    return {};
  }
  if (listener < 0) ec = std::make_error_code(std::errc::function_not_supported);  // loaded, yet no listener
  return unique_fd(listener);
}

inline seccomp_supervisor::seccomp_supervisor(unique_fd listener, supervisor_options options)
    : listener_(std::move(listener)), options_(std::move(options)) {
  // The kernel's structures may be larger than this header's (newer fields):
  // receive into its size, zeroed, as seccomp_unotify(2) asks.
  seccomp_notif_sizes sizes{};
  if (::syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0) sizes = {};
  auto const words = [](std::size_t bytes) { return (bytes + sizeof(std::uint64_t) - 1) / sizeof(std::uint64_t); };
  notification_.resize(words(std::max<std::size_t>(sizes.seccomp_notif, sizeof(seccomp_notif))));
  response_.resize(words(std::max<std::size_t>(sizes.seccomp_notif_resp, sizeof(seccomp_notif_resp))));
  // The trees by identity, as Landlock holds them: a path renamed later still names the same tree.
  auto const add_trees = [&](std::vector<std::string> const& paths, bool writable) {
    for (std::string const& path : paths) {
      unique_fd const fd = notify_detail::open_path(AT_FDCWD, path.c_str(), 0);
      struct stat st {};
      if (fd && ::fstat(fd.get(), &st) == 0) trees_.push_back({st.st_dev, st.st_ino, writable});
    }
  };
  add_trees(options_.read_paths, false);
  add_trees(options_.write_paths, true);
}

inline pending_step seccomp_supervisor::handle_pending(std::size_t limit) {
  pending_step step;
  while (listener_) {
    pollfd ready{listener_.get(), POLLIN, 0};
    int const n = retry_on_eintr([&] { return ::poll(&ready, 1, 0); });
    if (n <= 0) return step;  // nothing waiting (or poll itself failed: ENOMEM; the next wake-up retries)
    if ((ready.revents & POLLIN) == 0) {
      step.hung_up = true;  // POLLHUP: every task of the filter has exited; POLLNVAL: closed under us
      return step;
    }
    if (step.handled == limit) {
      step.more = true;
      return step;
    }
    handle_one();
    ++step.handled;
  }
  step.hung_up = true;
  return step;
}

inline void seccomp_supervisor::handle_one() {
  std::fill(notification_.begin(), notification_.end(), 0);
  if (retry_on_eintr([&] { return ::ioctl(listener_.get(), SECCOMP_IOCTL_NOTIF_RECV, notification_.data()); }) != 0) {
    ++counts_.withdrawn;  // ENOENT: the thread died (or was interrupted) between poll and receive
    return;
  }
  seccomp_notif call;
  std::memcpy(&call, notification_.data(), sizeof call);
  pid_t const pid = static_cast<pid_t>(call.pid);
  std::uint64_t args[6];
  std::copy(std::begin(call.data.args), std::end(call.data.args), args);

  refused_call record;
  record.pid = pid;
  record.syscall = notify_detail::syscall_name(call.data.arch, call.data.nr);
  record.error = notified_errno(options_.plan, record.syscall, args);
  bool go_on = false;
  if (record.error == 0) {
    // Observed, not refused by the filter. What was read to judge it may
    // change once answered (another thread rewriting the path, a symlink
    // swapped): CONTINUE makes the kernel read the path again and Landlock
    // decide on what it reads, so a race can only fool this record, never
    // the enforcement. Hence CONTINUE is answered only for calls the filter
    // itself allows (notified_errno 0), never to let a refusal through.
    verdict const v = judge_open(pid, record.syscall, args);
    go_on = v != verdict::outside;
    if (!go_on) record.error = EACCES;  // Landlock's own answer for a path outside its trees
  }
  if (!go_on) record.argument = notify_detail::describe(pid, record.syscall, args, max_argument);

  // What was read came from a pid: if the thread died meanwhile, the pid may
  // now be another process's and the reads are not this call's. A live
  // notification proves the thread was still there after the reads.
  std::uint64_t id = call.id;
  if (::ioctl(listener_.get(), SECCOMP_IOCTL_NOTIF_ID_VALID, &id) != 0) {
    ++counts_.withdrawn;
    return;
  }
  std::fill(response_.begin(), response_.end(), 0);
  seccomp_notif_resp response{};
  response.id = call.id;
  response.error = go_on ? 0 : -record.error;
  response.flags = go_on ? SECCOMP_USER_NOTIF_FLAG_CONTINUE : 0;
  std::memcpy(response_.data(), &response, sizeof response);
  if (retry_on_eintr([&] { return ::ioctl(listener_.get(), SECCOMP_IOCTL_NOTIF_SEND, response_.data()); }) != 0) {
    ++counts_.withdrawn;  // ENOENT: died or interrupted after the check; the call, if restarted, comes again
    return;
  }
  if (go_on) {
    ++counts_.continued;
    return;
  }
  ++counts_.refused;
  if (records_.size() >= options_.max_records) {
    ++counts_.dropped;
    return;
  }
  records_.push_back(std::move(record));
}

// Where the open would land, judged as Landlock does: from the file (or the
// directory it would be created in) up through its parents, looking for a
// tree by device and inode; `unknown` whenever the path cannot be followed
// as the kernel will (then the kernel and Landlock decide, unrecorded).
// Absolute paths start at the worker's root (/proc/<pid>/root), relative ones
// at its working directory or directory descriptor; symlinks met on the way
// resolve in the supervisor's mount namespace, the same tree as a worker's
// (spawn.hpp gives it a copy of the host's mounts).
inline seccomp_supervisor::verdict seccomp_supervisor::judge_open(pid_t pid, std::string_view name,
                                                                  std::uint64_t const (&args)[6]) const {
  using notify_detail::open_path;
  if (trees_.empty() || pid <= 0) return verdict::unknown;
  int dirfd = AT_FDCWD;
  std::uint64_t address = 0, flags = 0;
  if (name == "open") {
    address = args[0], flags = args[1];
  } else if (name == "creat") {
    address = args[0], flags = O_CREAT | O_WRONLY | O_TRUNC;
  } else if (name == "openat") {
    dirfd = static_cast<int>(args[0]), address = args[1], flags = args[2];
  } else if (name == "openat2") {
    // struct open_how: flags, mode, resolve. RESOLVE_IN_ROOT moves "/" to the directory: not followed here.
    std::uint64_t how[3] = {};
    if (args[3] < sizeof how || notify_detail::read_remote(pid, args[2], how, sizeof how) != sizeof how) {
      return verdict::unknown;
    }
    constexpr std::uint64_t resolve_in_root = 0x10;
    if (how[2] & resolve_in_root) return verdict::unknown;
    dirfd = static_cast<int>(args[0]), address = args[1], flags = how[0];
  } else {
    return verdict::unknown;
  }
  notify_detail::remote_string const path = notify_detail::read_remote_string(pid, address, PATH_MAX);
  if (!path.complete || path.text.empty()) return verdict::unknown;  // the kernel answers ENAMETOOLONG, EFAULT or ENOENT

  std::string const proc = "/proc/" + std::to_string(pid);
  std::string_view rest = path.text;
  std::string base_path;
  if (rest.front() == '/') {
    base_path = proc + "/root";
    rest.remove_prefix(std::min(rest.find_first_not_of('/'), rest.size()));
  } else {
    base_path = dirfd == AT_FDCWD ? proc + "/cwd" : proc + "/fd/" + std::to_string(dirfd);
  }
  unique_fd const base = open_path(AT_FDCWD, base_path.c_str(), O_DIRECTORY);
  if (!base) return verdict::unknown;

  bool write = notify_detail::opens_to_write(flags);
  // The directory the last component is in, and that component.
  std::size_t const slash = rest.find_last_of('/');
  std::string const directory = slash == std::string_view::npos ? "." : std::string(rest.substr(0, slash + 1));
  std::string const last = std::string(slash == std::string_view::npos ? rest : rest.substr(slash + 1));
  unique_fd const parent = open_path(base.get(), directory.c_str(), O_DIRECTORY);
  if (!parent) return verdict::unknown;

  unique_fd start;  // where the walk up begins
  struct stat target {};
  bool target_known = false;
  if (last.empty() || last == "." || last == "..") {
    start = open_path(parent.get(), last.empty() ? "." : last.c_str(), O_DIRECTORY);
  } else {
    unique_fd const file = open_path(parent.get(), last.c_str(), (flags & O_NOFOLLOW) != 0 ? O_NOFOLLOW : 0);
    if (!file) {
      struct stat link {};
      // Absent: created in `parent`, if O_CREAT (a dangling symlink would create elsewhere).
      if (errno != ENOENT || (flags & O_CREAT) == 0 ||
          ::fstatat(parent.get(), last.c_str(), &link, AT_SYMLINK_NOFOLLOW) == 0) {
        return verdict::unknown;
      }
      write = true;
      start = open_path(parent.get(), ".", O_DIRECTORY);
    } else if (::fstat(file.get(), &target) != 0) {
      return verdict::unknown;
    } else if (S_ISDIR(target.st_mode)) {
      start = open_path(file.get(), ".", O_DIRECTORY);
    } else {
      target_known = true;
      struct stat entry {};
      if (::fstatat(parent.get(), last.c_str(), &entry, AT_SYMLINK_NOFOLLOW) != 0) return verdict::unknown;
      if (entry.st_dev == target.st_dev && entry.st_ino == target.st_ino) {
        start = open_path(parent.get(), ".", O_DIRECTORY);
      } else {
        // A symlink to a file elsewhere: its directory, through the path the kernel gives the file.
        char link_path[PATH_MAX];
        std::string const self = "/proc/self/fd/" + std::to_string(file.get());
        ssize_t const n = ::readlink(self.c_str(), link_path, sizeof link_path - 1);
        if (n <= 0 || link_path[0] != '/') return verdict::unknown;
        std::string_view const resolved(link_path, static_cast<std::size_t>(n));
        std::string const dir(resolved.substr(0, resolved.find_last_of('/') + 1));
        start = open_path(AT_FDCWD, dir.c_str(), O_DIRECTORY);
      }
    }
  }
  if (!start) return verdict::unknown;

  auto const granted = [&](struct stat const& st) {
    return std::any_of(trees_.begin(), trees_.end(), [&](tree const& t) {
      return t.dev == st.st_dev && t.ino == st.st_ino && (t.writable || !write);
    });
  };
  if (target_known && granted(target)) return verdict::inside;
  unique_fd current = std::move(start);
  struct stat here {};
  if (::fstat(current.get(), &here) != 0) return verdict::unknown;
  // Bounded, as all work per notification: deeper than this (a plugin can nest
  // directories without end in a write tree) is left unjudged.
  for (int depth = 0; depth < 256; ++depth) {
    if (granted(here)) return verdict::inside;
    unique_fd up = open_path(current.get(), "..", O_DIRECTORY);
    struct stat above {};
    if (!up || ::fstat(up.get(), &above) != 0) return verdict::unknown;
    if (above.st_dev == here.st_dev && above.st_ino == here.st_ino) return verdict::outside;  // the root
    current = std::move(up);
    here = above;
  }
  return verdict::unknown;
}

}  // namespace isolate::detail::sandbox

#endif
