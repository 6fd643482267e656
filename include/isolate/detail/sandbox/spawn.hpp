// Starting a worker inside new namespaces (user, PID, mount, IPC, UTS and,
// when asked, network), so that it sees nothing of the host's processes and
// nothing it starts can outlive it: it is PID 1 of its namespace, and when
// PID 1 dies the kernel kills everything else in it.
//
// posix_spawn cannot create namespaces, and fork() of a threaded host is not
// safe, so this is a clone() that shares the host's memory (as posix_spawn's
// own vfork-like clone does) and runs a small child function on a stack of
// its own until it execs. That function may only make system calls, raw
// ones: it runs in the host's address space, with the calling thread's TLS
// (so errno is not ours to write), and no sanitizer or lock may be touched.
//
// The user namespace's id maps are written by the host (the parent), while
// the child waits on a pipe: a root host maps the worker to nobody, which
// only a process with CAP_SETUID outside the namespace may do; an
// unprivileged host maps its own ids. Inside, the worker is uid 0 of its
// namespace (with capabilities there only, which it drops after setting up).
#ifndef ISOLATE_DETAIL_SANDBOX_SPAWN_HPP
#define ISOLATE_DETAIL_SANDBOX_SPAWN_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/process/child.hpp"
#include "isolate/detail/process/unique_fd.hpp"
#include "isolate/detail/system_call.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace isolate::detail::sandbox {

struct namespaced_spawn_options {
  std::string program;                           // executed by path, unless program_fd is set
  int program_fd = -1;                           // executed through the descriptor (execveat): the path may be out of the worker's reach
  std::vector<std::string> args;                 // argv[1..]; argv[0] is `program`
  std::vector<std::pair<int, int>> inherit_fds;  // (fd in parent, fd number in child), as spawn_options
  std::vector<std::string> env;                  // the whole environment
  std::string working_directory = "/";
  bool discard_output = false;                   // stdout and stderr to /dev/null (stdin always is)
  bool new_network = false;                      // a network namespace of its own, with no interface up
  // Run by the parent once the child exists and before it runs anything of
  // its own (it waits for its id maps): where it must be from its start (a cgroup).
  std::function<std::error_code(pid_t)> before_start;
};

namespace spawn_detail {

// A system call that does not touch errno (the child shares the caller's
// TLS) and that no sanitizer intercepts.
[[gnu::always_inline]] inline long raw_syscall(long number, long a = 0, long b = 0, long c = 0, long d = 0,
                                               long e = 0) noexcept {
#if defined(__x86_64__)
  long result;
  register long r10 asm("r10") = d;
  register long r8 asm("r8") = e;
  asm volatile("syscall"
               : "=a"(result)
               : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
               : "rcx", "r11", "memory");
  return result;
#elif defined(__aarch64__)
  register long x8 asm("x8") = number;
  register long x0 asm("x0") = a;
  register long x1 asm("x1") = b;
  register long x2 asm("x2") = c;
  register long x3 asm("x3") = d;
  register long x4 asm("x4") = e;
  asm volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
  return x0;
#else
#error "isolate's namespaced spawn needs a raw system call for this architecture"
#endif
}

// clone(2) without libc's wrapper: `fn(arg)` runs in the child on
// `stack_top`, and its return value is the child's exit status. No sanitizer
// intercepts it: TSan's clone interceptor runs its fork bookkeeping in the
// child, which with CLONE_VM rewrites the parent's own race-detector state
// (threat-model gap G3: every sandboxed start then showed false races).
// With CLONE_PIDFD the child's pidfd is stored at `pidfd`.
inline long raw_clone(unsigned long flags, void* stack_top, int* pidfd, int (*fn)(void*), void* arg) noexcept {
#if defined(__x86_64__)
  // clone(flags, stack, parent_tid, child_tid, tls); the child keeps every
  // register but rax (0), rcx and r11, so fn and arg wait in r12 and r13.
  long result;
  register long child_tid asm("r10") = 0;
  register long tls asm("r8") = 0;
  register int (*child_fn)(void*) asm("r12") = fn;
  register void* child_arg asm("r13") = arg;
  asm volatile(
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      "xor %%ebp, %%ebp\n\t"
      "mov %%r13, %%rdi\n\t"
      "call *%%r12\n\t"
      "mov %%eax, %%edi\n\t"
      "mov %[exit_group], %%eax\n\t"
      "syscall\n\t"
      "hlt\n\t"
      "1:"
      : "=a"(result)
      : "a"(SYS_clone), "D"(flags), "S"(stack_top), "d"(pidfd), "r"(child_tid), "r"(tls), "r"(child_fn),
        "r"(child_arg), [exit_group] "i"(SYS_exit_group)
      : "rcx", "r11", "memory");
  return result;
#elif defined(__aarch64__)
  // clone(flags, stack, parent_tid, tls, child_tid); fn and arg wait in
  // x19 and x20, which the child keeps. (Not run on this project's machines.)
  register long x8 asm("x8") = SYS_clone;
  register long x0 asm("x0") = static_cast<long>(flags);
  register void* x1 asm("x1") = stack_top;
  register int* x2 asm("x2") = pidfd;
  register long x3 asm("x3") = 0;
  register long x4 asm("x4") = 0;
  register int (*x19)(void*) asm("x19") = fn;
  register void* x20 asm("x20") = arg;
  asm volatile(
      "svc 0\n\t"
      "cbnz x0, 1f\n\t"
      "mov x0, x20\n\t"
      "blr x19\n\t"
      "mov x8, %[exit_group]\n\t"
      "svc 0\n\t"
      "1:"
      : "+r"(x0)
      : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x19), "r"(x20), [exit_group] "i"(SYS_exit_group)
      : "x30", "memory");
  return x0;
#else
#error "isolate's namespaced spawn needs a raw clone for this architecture"
#endif
}

// Everything the child needs, prepared by the parent, read-only for the child.
struct child_plan {
  int go_fd = -1;     // read end: one byte once the id maps are written; EOF if the parent gave up
  int go_write_fd = -1;  // the write end, which the child must not hold (else it never sees that EOF)
  int error_fd = -1;  // write end, close-on-exec: the child's errno if it fails before exec
  const std::pair<int, int>* dups = nullptr;  // sources already above every target
  std::size_t dup_count = 0;
  int first_free = 3;  // lowest fd number that is not a target
  int null_fd = -1;    // /dev/null
  bool discard_output = false;
  bool clear_groups = false;  // drop the supplementary groups (a root host's: only it may)
  const char* path = nullptr;
  int program_fd = -1;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* working_directory = nullptr;
};

[[noreturn, gnu::always_inline]] inline void child_fail(const child_plan& plan, long result) noexcept {
  const int err = static_cast<int>(-result);
  raw_syscall(SYS_write, plan.error_fd, reinterpret_cast<long>(&err), sizeof err);
  raw_syscall(SYS_exit_group, 127);
  __builtin_unreachable();
}

// The child: no libc call, no allocation, no sanitizer.
__attribute__((no_sanitize("address", "thread", "undefined"), noinline)) inline int child_main(void* arg) noexcept {
  const auto& plan = *static_cast<const child_plan*>(arg);
  // The host's handlers must not run here: every signal to its default.
  for (int sig = 1; sig < 65; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct {
      void* handler;
      unsigned long flags;
      void* restorer;
      std::uint64_t mask;
    } action{reinterpret_cast<void*>(SIG_DFL), 0, nullptr, 0};
    raw_syscall(SYS_rt_sigaction, sig, reinterpret_cast<long>(&action), 0, 8);
  }
  // Die with the launcher thread (the host). If the host went before this
  // took effect, the go pipe reads EOF below.
  raw_syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
  // The child has its own copy of the parent's descriptors (no CLONE_FILES):
  // while it held the write end, a parent that gave up would wait forever
  // for the error pipe, and the child forever for the go byte.
  raw_syscall(SYS_close, plan.go_write_fd);
  char go = 0;
  long r = 0;
  do r = raw_syscall(SYS_read, plan.go_fd, reinterpret_cast<long>(&go), 1);
  while (r == -EINTR);
  if (r != 1) raw_syscall(SYS_exit_group, 127);
  // Take the ids the maps gave: a map does not change the credentials a
  // process already has (a root host's child would still be root outside).
  if (plan.clear_groups && (r = raw_syscall(SYS_setgroups, 0, 0)) < 0) child_fail(plan, r);
  if ((r = raw_syscall(SYS_setresgid, 0, 0, 0)) < 0) child_fail(plan, r);
  if ((r = raw_syscall(SYS_setresuid, 0, 0, 0)) < 0) child_fail(plan, r);
  for (std::size_t i = 0; i < plan.dup_count; ++i) {
    if ((r = raw_syscall(SYS_dup3, plan.dups[i].first, plan.dups[i].second, 0)) < 0) child_fail(plan, r);
  }
  if ((r = raw_syscall(SYS_dup3, plan.null_fd, 0, 0)) < 0) child_fail(plan, r);
  if (plan.discard_output) {
    if ((r = raw_syscall(SYS_dup3, plan.null_fd, 1, 0)) < 0) child_fail(plan, r);
    if ((r = raw_syscall(SYS_dup3, plan.null_fd, 2, 0)) < 0) child_fail(plan, r);
  }
  // Everything above the targets closes at exec (the error pipe stays usable until then).
  if ((r = raw_syscall(SYS_close_range, plan.first_free, ~0U, CLOSE_RANGE_CLOEXEC)) < 0) child_fail(plan, r);
  if ((r = raw_syscall(SYS_chdir, reinterpret_cast<long>(plan.working_directory))) < 0) child_fail(plan, r);
  std::uint64_t none = 0;
  raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&none), 0, 8);
  if (plan.program_fd >= 0) {
    r = raw_syscall(SYS_execveat, plan.program_fd, reinterpret_cast<long>(""), reinterpret_cast<long>(plan.argv),
                    reinterpret_cast<long>(plan.envp), AT_EMPTY_PATH);
  } else {
    r = raw_syscall(SYS_execve, reinterpret_cast<long>(plan.path), reinterpret_cast<long>(plan.argv),
                    reinterpret_cast<long>(plan.envp));
  }
  child_fail(plan, r);
}

// Writes `text` into /proc/<pid>/<file>.
inline std::error_code write_proc_file(pid_t pid, const char* file, const std::string& text) {
  const std::string path = "/proc/" + std::to_string(pid) + "/" + file;
  return write_whole_file(path.c_str(), text);
}

// The id the worker runs as outside its namespace when the host is root:
// nobody, who owns nothing (a root-owned file is not the worker's to write).
inline constexpr unsigned root_host_worker_id = 65534;

// The worker is uid and gid 0 in its namespace; outside, the host's own ids,
// or nobody's for a root host (which may map any id). An unprivileged host
// must give up setgroups() in the namespace to map its group.
inline std::error_code write_id_maps(pid_t pid, bool root) {
  const unsigned uid = root ? root_host_worker_id : ::geteuid();
  const unsigned gid = root ? root_host_worker_id : ::getegid();
  if (!root) {
    if (auto ec = write_proc_file(pid, "setgroups", "deny")) return ec;
  }
  if (auto ec = write_proc_file(pid, "uid_map", "0 " + std::to_string(uid) + " 1\n")) return ec;
  return write_proc_file(pid, "gid_map", "0 " + std::to_string(gid) + " 1\n");
}

// Signals blocked in this thread while the child shares its memory (a
// handler of the host must not run on the child's stack), restored after.
class signals_blocked {
 public:
  signals_blocked() noexcept {
    sigset_t all;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &saved_);
  }
  ~signals_blocked() { ::pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  signals_blocked(const signals_blocked&) = delete;
  signals_blocked& operator=(const signals_blocked&) = delete;

 private:
  sigset_t saved_;
};

}  // namespace spawn_detail

// Starts `options.program` in new namespaces. Fails with EPERM (or ENOSPC,
// EINVAL) where the kernel or its configuration refuses user namespaces.
inline child_process spawn_in_namespaces(const namespaced_spawn_options& options, std::error_code& ec) {
  using namespace spawn_detail;
  ec.clear();
  int highest_target = 2;
  for (auto [from, to] : options.inherit_fds) highest_target = std::max(highest_target, to);
  // Copies numbered above every target, so that no dup onto a target can
  // overwrite the source of a later one (as child_process::spawn does).
  std::vector<unique_fd> sources;
  std::vector<std::pair<int, int>> dups;
  for (auto [from, to] : options.inherit_fds) {
    sources.push_back(duplicate_fd(from, ec, highest_target + 1));
    if (ec) return {};
    dups.emplace_back(sources.back().get(), to);
  }
  unique_fd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null_fd) {
    ec = last_system_error();
    return {};
  }
  int go[2], errors[2];
  // A socket pair, not a pipe: the "go" is sent with MSG_NOSIGNAL, so a child
  // that died before reading it costs an EPIPE here, not the host's life.
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) != 0) {
    ec = last_system_error();
    return {};
  }
  unique_fd go_read(go[0]), go_write(go[1]);
  if (::pipe2(errors, O_CLOEXEC) != 0) {
    ec = last_system_error();
    return {};
  }
  unique_fd error_read(errors[0]), error_write(errors[1]);

  std::vector<char*> argv{const_cast<char*>(options.program.c_str())};
  for (const auto& a : options.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  child_plan plan;
  plan.go_fd = go_read.get();
  plan.go_write_fd = go_write.get();
  plan.error_fd = error_write.get();
  plan.dups = dups.data();
  plan.dup_count = dups.size();
  plan.first_free = highest_target + 1;
  plan.null_fd = null_fd.get();
  plan.discard_output = options.discard_output;
  const bool root = ::geteuid() == 0;
  plan.clear_groups = root;
  plan.path = options.program.c_str();
  plan.program_fd = options.program_fd;
  plan.argv = argv.data();
  plan.envp = envp.data();
  plan.working_directory = options.working_directory.c_str();

  constexpr std::size_t stack_size = 64 * 1024;
  void* stack = ::mmap(nullptr, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    ec = last_system_error();
    return {};
  }
  int flags = CLONE_VM | CLONE_PIDFD | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS |
              SIGCHLD;
  if (options.new_network) flags |= CLONE_NEWNET;
  int pidfd = -1;
  long cloned = -1;
  {
    const signals_blocked blocked;
    cloned = spawn_detail::raw_clone(static_cast<unsigned long>(flags), static_cast<char*>(stack) + stack_size,
                                     &pidfd, &spawn_detail::child_main, &plan);
  }
  if (cloned < 0) {
    ec.assign(static_cast<int>(-cloned), std::system_category());
    ::munmap(stack, stack_size);
    return {};
  }
  const auto pid = static_cast<pid_t>(cloned);
  unique_fd owned_pidfd(pidfd);
  error_write.reset();
  go_read.reset();
  // The child waits for the maps; whatever happens next, it ends up exec'd or dead.
  ec = write_id_maps(pid, root);
  if (!ec && options.before_start) ec = options.before_start(pid);
  const char one = 1;
  if (!ec && retry_on_eintr([&] { return ::send(go_write.get(), &one, 1, MSG_NOSIGNAL); }) != 1) {
    ec = last_system_error();
  }
  go_write.reset();  // EOF: a child still waiting gives up
  int child_errno = 0;
  const auto got = retry_on_eintr([&] { return ::read(error_read.get(), &child_errno, sizeof child_errno); });
  // EOF (0) means exec happened: the child no longer uses the stack.
  ::munmap(stack, stack_size);
  auto child = child_process::adopt(pid, std::move(owned_pidfd));
  if (!ec && got == static_cast<ssize_t>(sizeof child_errno)) ec.assign(child_errno, std::system_category());
  if (ec) return {};  // destroying `child` kills and reaps it
  return child;
}

}  // namespace isolate::detail::sandbox

#endif
