#include "isolate/detail/sandbox/seccomp.hpp"

#include "isolate/detail/sandbox/landlock.hpp"

#include "sandbox_child.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <dlfcn.h>
#include <sched.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

extern "C" char** environ;  // NOLINT: POSIX declares it nowhere in C++ headers

using namespace isolate_test;
namespace sandbox = isolate::detail::sandbox;

namespace {

// An errno no kernel path returns for the calls under test: seeing it proves
// the filter answered, not the kernel.
constexpr int marker = EHWPOISON;

// A field of /proc/self/status ("Seccomp", "NoNewPrivs"), or -1.
long status_field(std::string_view name) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with(name) && line.size() > name.size() && line[name.size()] == ':') {
      return std::strtol(line.c_str() + name.size() + 1, nullptr, 10);
    }
  }
  return -1;
}

// Applies the plan and reports its error as "ec"; true when it was applied.
bool apply(child_report const& out, sandbox::seccomp_plan const& plan) {
  std::error_code ec;
  sandbox::apply_seccomp(plan, ec);
  out.put("ec", ec.value());
  return !ec;
}

// clone() with `flags` and fork semantics otherwise.
long clone_errno(unsigned long flags) {
  long const pid = ::syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) ::_exit(0);
  if (pid > 0) ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
  return errno_of(pid);
}

// 0 when posix_spawn started /bin/true (a vfork-style clone in glibc), else its error.
long spawn_errno() {
  pid_t pid;
  char arg0[] = "true";
  char* argv[] = {arg0, nullptr};
  int const err = ::posix_spawn(&pid, "/bin/true", nullptr, nullptr, argv, environ);
  if (err == 0) ::waitpid(pid, nullptr, 0);
  return err;
}

long socket_errno(int family, int type) {
  int const fd = ::socket(family, type | SOCK_CLOEXEC, 0);
  if (fd >= 0) ::close(fd);
  return errno_of(fd);
}

long socketpair_errno() {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return errno;
  // And the pair carries data.
  long const err = ::write(pair[0], "x", 1) == 1 && ::read(pair[1], pair, 1) == 1 ? 0 : -1;
  ::close(pair[0]);
  ::close(pair[1]);
  return err;
}

long open_errno(char const* path, int flags) {
  int const fd = ::open(path, flags | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);
  return errno_of(fd);
}

volatile std::sig_atomic_t signal_seen = 0;

}  // namespace

TEST_CASE("the lists name system calls libseccomp (or we) can resolve, and none is on both") {
  namespace d = sandbox::seccomp_detail;
  std::set<std::string_view> denied;
  for (char const* name : d::deny_list_names) {
    INFO(name);
    CHECK(d::resolve(name) != __NR_SCMP_ERROR);
    CHECK(denied.insert(name).second);
  }
  for (char const* name : d::allow_list_names) {
    INFO(name);
    CHECK(d::resolve(name) != __NR_SCMP_ERROR);
    CHECK(denied.count(name) == 0);
  }
  std::vector<std::string> const report = sandbox::denied_syscalls();
  CHECK(std::find(report.begin(), report.end(), "ptrace") != report.end());
  CHECK(std::find(report.begin(), report.end(), "clone3(always ENOSYS)") != report.end());
  CHECK(sandbox::allowed_syscalls().size() > std::size(d::allow_list_names));
}

TEST_CASE("no plan, no filter; an impossible refused_errno is refused before anything is loaded") {
  child_outcome const r = in_child([](child_report const& out) {
    std::error_code ec;
    sandbox::apply_seccomp({}, ec);
    out.put("none_ec", ec.value());
    out.put("none_mode", status_field("Seccomp"));
    sandbox::seccomp_plan zero;
    zero.policy = sandbox::syscall_policy::deny_list;
    zero.refused_errno = 0;  // a "refusal" that reads as success
    sandbox::apply_seccomp(zero, ec);
    out.put("zero_ec", ec.value());
    zero.refused_errno = 4096;
    sandbox::apply_seccomp(zero, ec);
    out.put("large_ec", ec.value());
    out.put("mode", status_field("Seccomp"));
  });
  REQUIRE(r.exited_cleanly());
  CHECK(r["none_ec"] == 0);
  CHECK(r["none_mode"] == 0);
  CHECK(r["zero_ec"] == EINVAL);
  CHECK(r["large_ec"] == EINVAL);
  CHECK(r["mode"] == 0);
}

TEST_CASE("deny_sockets: socket() fails with EACCES for every family, socketpair(AF_UNIX) works") {
  child_outcome const control = in_child([](child_report const& out) {
    out.put("inet", socket_errno(AF_INET, SOCK_STREAM));
    out.put("unix", socket_errno(AF_UNIX, SOCK_STREAM));
  });
  child_outcome const r = in_child([](child_report const& out) {
    sandbox::seccomp_plan plan;
    plan.deny_sockets = true;
    apply(out, plan);
    out.put("mode", status_field("Seccomp"));
    out.put("no_new_privs", status_field("NoNewPrivs"));
    out.put("inet", socket_errno(AF_INET, SOCK_STREAM));
    out.put("inet_udp", socket_errno(AF_INET, SOCK_DGRAM));
    out.put("inet6", socket_errno(AF_INET6, SOCK_STREAM));
    out.put("unix", socket_errno(AF_UNIX, SOCK_STREAM));
    out.put("netlink", socket_errno(AF_NETLINK, SOCK_RAW));
    out.put("packet", socket_errno(AF_PACKET, SOCK_RAW));
    out.put("socketpair", socketpair_errno());
    // io_uring could open a socket without socket(); it is refused too.
    out.put("io_uring", errno_of(::syscall(SYS_io_uring_setup, 1, nullptr)));
    out.put("fork", fork_errno());
  });
  REQUIRE(control.exited_cleanly());
  CHECK(control["inet"] == 0);
  CHECK(control["unix"] == 0);
  REQUIRE(r.exited_cleanly());
  CHECK(r["ec"] == 0);
  CHECK(r["mode"] == 2);  // SECCOMP_MODE_FILTER
  CHECK(r["no_new_privs"] == 1);
  CHECK(r["inet"] == EACCES);
  CHECK(r["inet_udp"] == EACCES);
  CHECK(r["inet6"] == EACCES);
  CHECK(r["unix"] == EACCES);
  CHECK(r["netlink"] == EACCES);
  CHECK(r["packet"] == EACCES);
  CHECK(r["socketpair"] == 0);
  CHECK(r["io_uring"] == EPERM);
  CHECK(r["fork"] == 0);
}

TEST_CASE("deny_new_processes: fork, posix_spawn and clone refused with EAGAIN, clone3 ENOSYS; threads work") {
  child_outcome const r = in_child([](child_report const& out) {
    sandbox::seccomp_plan plan;
    plan.deny_new_processes = true;
    apply(out, plan);
    out.put("fork", fork_errno());
    out.put("spawn", spawn_errno());
    out.put("clone", clone_errno(0));
    out.put("vfork", errno_of(::syscall(SYS_vfork)));  // refused, so no child shares this stack
    out.put("clone3", clone3_errno());
    // glibc 2.34+ tries clone3 for every thread and falls back to clone on ENOSYS.
    out.put("thread", thread_errno());
    out.put("thread_again", thread_errno());
    out.put("socket", socket_errno(AF_INET, SOCK_STREAM));
  });
  REQUIRE(r.exited_cleanly());
  CHECK(r["ec"] == 0);
  CHECK(r["fork"] == EAGAIN);
  CHECK(r["spawn"] == EAGAIN);
  CHECK(r["clone"] == EAGAIN);
  CHECK(r["vfork"] == EAGAIN);
  CHECK(r["clone3"] == ENOSYS);
  CHECK(r["thread"] == 0);
  CHECK(r["thread_again"] == 0);
  CHECK(r["socket"] == 0);
}

TEST_CASE("deny_list: no ptrace, no reading another process's memory, no new user namespace") {
  idle_process const victim;  // outside the sandbox: the parent's other child
  static long parent_value = 0x15014715;
  auto const probe = [&](bool filtered) {
    return in_child([&](child_report const& out) {
      if (filtered) {
        sandbox::seccomp_plan plan;
        plan.policy = sandbox::syscall_policy::deny_list;
        apply(out, plan);
      }
      // The victim, not the parent: a successful attach would stop the test process.
      out.put("ptrace_attach", errno_of(::ptrace(PTRACE_ATTACH, victim.pid(), nullptr, nullptr)));
      long value = 0;
      iovec local{&value, sizeof value};
      iovec remote{&parent_value, sizeof parent_value};
      out.put("vm_readv", errno_of(::process_vm_readv(::getppid(), &local, 1, &remote, 1, 0)));
      out.put("vm_writev", errno_of(::process_vm_writev(::getppid(), &local, 1, &remote, 1, 0)));
      out.put("unshare_user", errno_of(::unshare(CLONE_NEWUSER)));
      out.put("clone_user", clone_errno(CLONE_NEWUSER));
      out.put("clone_net", clone_errno(CLONE_NEWNET));
      out.put("fork", fork_errno());
      out.put("thread", thread_errno());
    });
  };
  child_outcome const control = probe(false);
  child_outcome const r = probe(true);

  REQUIRE(control.exited_cleanly());
  CHECK(control["ptrace_attach"] == 0);
  CHECK(control["vm_readv"] == 0);
  CHECK(control["unshare_user"] == 0);
  REQUIRE(r.exited_cleanly());
  CHECK(r["ec"] == 0);
  CHECK(r["ptrace_attach"] == EPERM);
  CHECK(r["vm_readv"] == EPERM);
  CHECK(r["vm_writev"] == EPERM);
  CHECK(r["unshare_user"] == EPERM);
  CHECK(r["clone_user"] == EPERM);
  CHECK(r["clone_net"] == EPERM);
  CHECK(r["fork"] == 0);  // deny_new_processes was not asked for
  CHECK(r["thread"] == 0);
}

TEST_CASE("deny_list: every name on it is refused with refused_errno") {
  // vhangup takes no argument to make harmless: were its rule missing, it
  // would hang up the terminal of whoever runs the test. All others get -1s.
  namespace d = sandbox::seccomp_detail;
  child_outcome const r = in_child([](child_report const& out) {
    sandbox::seccomp_plan plan;
    plan.policy = sandbox::syscall_policy::deny_list;
    plan.refused_errno = marker;
    if (!apply(out, plan)) return;  // unfiltered, the calls below would reach the kernel
    for (char const* name : d::deny_list_names) {
      int const number = d::resolve(name);
      if (number < 0 || std::string_view(name) == "vhangup") continue;  // < 0: not a call on this architecture
      out.put(name, errno_of(::syscall(number, -1L, -1L, -1L, -1L, -1L, -1L)));
    }
  });
  REQUIRE(r.exited_cleanly());
  CHECK(r["ec"] == 0);
  for (char const* name : d::deny_list_names) {
    if (d::resolve(name) < 0 || std::string_view(name) == "vhangup") continue;
    INFO(name);
    CHECK(r[name] == marker);
  }
}

TEST_CASE("deny_list: clone3 ENOSYS, personality flags, terminal injection (even with junk in the upper bits)") {
  int pipe_fds[2];
  REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
  child_outcome const r = in_child([&](child_report const& out) {
    sandbox::seccomp_plan plan;
    plan.policy = sandbox::syscall_policy::deny_list;
    plan.refused_errno = marker;
    apply(out, plan);
    out.put("clone3", clone3_errno());
    out.put("personality_query", errno_of(::personality(0xffffffff)));
    out.put("personality_linux", errno_of(::personality(PER_LINUX)));
    out.put("personality_no_aslr", errno_of(::personality(ADDR_NO_RANDOMIZE)));
    out.put("personality_exec", errno_of(::personality(READ_IMPLIES_EXEC)));
    out.put("personality_high", errno_of(::syscall(SYS_personality, 0xffffffffUL << 32 | ADDR_NO_RANDOMIZE)));
    char c = 'x';
    // On a pipe, not a terminal: if the rule were missing the kernel would say ENOTTY, and type nothing.
    out.put("tiocsti", errno_of(::ioctl(pipe_fds[0], TIOCSTI, &c)));
    out.put("tiocsti_high", errno_of(::syscall(SYS_ioctl, pipe_fds[0], 1UL << 32 | TIOCSTI, &c)));
    out.put("tioclinux", errno_of(::ioctl(pipe_fds[0], TIOCLINUX, &c)));
    int available = 0;
    out.put("fionread", errno_of(::ioctl(pipe_fds[0], FIONREAD, &available)));
  });
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  REQUIRE(r.exited_cleanly());
  CHECK(r["ec"] == 0);
  CHECK(r["clone3"] == ENOSYS);
  CHECK(r["personality_query"] == 0);
  CHECK(r["personality_linux"] == 0);
  CHECK(r["personality_no_aslr"] == marker);
  CHECK(r["personality_exec"] == marker);
  CHECK(r["personality_high"] == marker);
  CHECK(r["tiocsti"] == marker);
  CHECK(r["tiocsti_high"] == marker);
  CHECK(r["tioclinux"] == marker);
  CHECK(r["fionread"] == 0);
}

TEST_CASE("a system call of another ABI (i386 int 0x80, x32) kills the process with SIGSYS") {
#if defined(__x86_64__)
  auto const int80_getpid = [] {
    long result;
    __asm__ volatile("int $0x80" : "=a"(result) : "a"(20L) : "memory");  // 20: getpid in the i386 table
    return result;
  };
  auto const x32_getpid = [] { return ::syscall(0x40000000L | SYS_getpid); };
  for (auto const policy : {sandbox::syscall_policy::deny_list, sandbox::syscall_policy::allow_list}) {
    INFO("policy " << static_cast<int>(policy));
    child_outcome const unfiltered = in_child([&](child_report const& out) { out.put("pid", int80_getpid()); });
    child_outcome const int80 = in_child([&](child_report const& out) {
      sandbox::seccomp_plan plan;
      plan.policy = policy;
      apply(out, plan);
      out.put("pid", int80_getpid());
    });
    child_outcome const x32 = in_child([&](child_report const& out) {
      sandbox::seccomp_plan plan;
      plan.policy = policy;
      apply(out, plan);
      out.put("pid", x32_getpid());
    });
    if (unfiltered.exited_cleanly()) {
      CHECK(int80["ec"] == 0);
      CHECK(int80.killed_by(SIGSYS));
    } else {
      MESSAGE("skipped the int 0x80 check: this kernel runs no i386 system calls (ia32 emulation off)");
    }
    CHECK(x32["ec"] == 0);
    CHECK(x32.killed_by(SIGSYS));
  }
#else
  MESSAGE("skipped: the other-ABI checks are written for x86_64");
#endif
}

TEST_CASE("allow_list: threads, futexes and dlopen work; the rest is refused with refused_errno") {
  char directory[] = "/tmp/isolate-seccomp-XXXXXX";
  REQUIRE(::mkdtemp(directory) != nullptr);
  std::string const existing = std::string(directory) + "/existing";
  std::ofstream(existing) << "content";
  std::string const created = std::string(directory) + "/created";

  child_outcome const r = in_child([&](child_report const& out) {
    std::signal(SIGUSR1, [](int) { signal_seen = 1; });
    pid_t const parent = ::getppid();
    sandbox::seccomp_plan plan;
    plan.policy = sandbox::syscall_policy::allow_list;
    apply(out, plan);
    out.put("mode", status_field("Seccomp"));

    // What a plugin's computation needs.
    void* const handle = ::dlopen(ISOLATE_TEST_SANDBOX_PROBE, RTLD_NOW | RTLD_LOCAL);
    out.put("dlopen", handle != nullptr);
    if (handle != nullptr) {
      auto const probe = reinterpret_cast<long (*)(int, int)>(::dlsym(handle, "isolate_sandbox_probe"));
      out.put("probe", probe != nullptr ? probe(1000, 4) : -1);
    }
    out.put("thread", thread_errno());
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    out.put("raise", errno_of(::raise(SIGUSR1)));
    out.put("signal_seen", signal_seen);
    out.put("kill_self", errno_of(::kill(::getpid(), 0)));
    out.put("read_only_open", open_errno(existing.c_str(), O_RDONLY));
    out.put("socketpair", socketpair_errno());
    out.put("eventfd", errno_of(::eventfd(0, EFD_CLOEXEC)));
    out.put("memfd", errno_of(::memfd_create("isolate-test", MFD_CLOEXEC)));
    int pipe_fds[2];
    out.put("pipe", errno_of(::pipe2(pipe_fds, O_CLOEXEC)));
    int available = 0;
    out.put("fionread", errno_of(::ioctl(pipe_fds[0], FIONREAD, &available)));
    out.put("set_name", errno_of(::prctl(PR_SET_NAME, "sandboxed", 0, 0, 0)));
    rlimit limit{};
    out.put("getrlimit", errno_of(::getrlimit(RLIMIT_NOFILE, &limit)));

    // What reaches outside, or changes the machine.
    out.put("kill_parent", errno_of(::kill(parent, 0)));
    out.put("socket", socket_errno(AF_UNIX, SOCK_STREAM));
    out.put("open_write", open_errno(existing.c_str(), O_WRONLY));
    out.put("open_create", open_errno(created.c_str(), O_RDONLY | O_CREAT));
    out.put("open_truncate", open_errno(existing.c_str(), O_RDONLY | O_TRUNC));
    out.put("open_tmpfile", open_errno(directory, O_TMPFILE | O_RDWR));
    out.put("mkdir", errno_of(::mkdir(created.c_str(), 0700)));
    out.put("unlink", errno_of(::unlink(existing.c_str())));
    out.put("fork", fork_errno());
    out.put("clone3", clone3_errno());
    char* argv[] = {nullptr};
    out.put("execve", errno_of(::execve("/bin/true", argv, environ)));
    out.put("ptrace", errno_of(::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr)));
    out.put("tiocsti", errno_of(::ioctl(pipe_fds[0], TIOCSTI, "x")));
    out.put("dumpable", errno_of(::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)));
    out.put("setrlimit", errno_of(::setrlimit(RLIMIT_NOFILE, &limit)));
  });
  std::error_code ec;
  std::filesystem::remove_all(directory, ec);

  REQUIRE(r.exited_cleanly());
  CHECK(r["ec"] == 0);
  CHECK(r["mode"] == 2);
  CHECK(r["dlopen"] == 1);
  CHECK(r["probe"] == 499500 + (4 << 20));
  CHECK(r["thread"] == 0);
  CHECK(r["raise"] == 0);
  CHECK(r["signal_seen"] == 1);
  CHECK(r["kill_self"] == 0);
  CHECK(r["read_only_open"] == 0);
  CHECK(r["socketpair"] == 0);
  CHECK(r["eventfd"] == 0);
  CHECK(r["memfd"] == 0);
  CHECK(r["pipe"] == 0);
  CHECK(r["fionread"] == 0);
  CHECK(r["set_name"] == 0);
  CHECK(r["getrlimit"] == 0);

  CHECK(r["kill_parent"] == EPERM);
  CHECK(r["socket"] == EPERM);
  CHECK(r["open_write"] == EPERM);
  CHECK(r["open_create"] == EPERM);
  CHECK(r["open_truncate"] == EPERM);
  CHECK(r["open_tmpfile"] == EPERM);
  CHECK(r["mkdir"] == EPERM);
  CHECK(r["unlink"] == EPERM);
  CHECK(r["fork"] == EPERM);
  CHECK(r["clone3"] == ENOSYS);
  CHECK(r["execve"] == EPERM);
  CHECK(r["ptrace"] == EPERM);
  CHECK(r["tiocsti"] == EPERM);
  CHECK(r["dumpable"] == EPERM);
  CHECK(r["setrlimit"] == EPERM);
}

TEST_CASE("allow_list with deny_sockets and deny_new_processes: their errnos win over refused_errno") {
  child_outcome const r = in_child([](child_report const& out) {
    sandbox::seccomp_plan plan;
    plan.policy = sandbox::syscall_policy::allow_list;
    plan.deny_sockets = plan.deny_new_processes = true;
    plan.refused_errno = marker;
    apply(out, plan);
    out.put("socket", socket_errno(AF_INET, SOCK_STREAM));
    out.put("fork", fork_errno());
    out.put("spawn", spawn_errno());
    out.put("clone3", clone3_errno());
    out.put("thread", thread_errno());
    out.put("mkdir", errno_of(::mkdir("/tmp/isolate-seccomp-never", 0700)));
  });
  REQUIRE(r.exited_cleanly());
  CHECK(r["ec"] == 0);
  CHECK(r["socket"] == EACCES);
  CHECK(r["fork"] == EAGAIN);
  CHECK(r["spawn"] == EAGAIN);
  CHECK(r["clone3"] == ENOSYS);
  CHECK(r["thread"] == 0);
  CHECK(r["mkdir"] == marker);
}

TEST_CASE("a thread started before the filter is filtered too (TSYNC)") {
  child_outcome const r = in_child([](child_report const& out) {
    std::atomic<int> stage{0};
    long from_thread = -1;
    std::thread early([&] {
      while (stage.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      from_thread = errno_of(::syscall(SYS_bpf, -1L, 0L, 0L));
    });
    sandbox::seccomp_plan plan;
    plan.policy = sandbox::syscall_policy::deny_list;
    plan.refused_errno = marker;
    apply(out, plan);
    stage = 1;
    early.join();
    out.put("thread_bpf", from_thread);
  });
  REQUIRE(r.exited_cleanly());
  CHECK(r["ec"] == 0);
  CHECK(r["thread_bpf"] == marker);
}

TEST_CASE("the worker's order: Landlock, then the allow-list, then dlopen of the plugin opened before") {
  int const abi = sandbox::landlock_abi();
  if (abi < 1) MESSAGE("Landlock is unavailable here: this case runs with seccomp alone");
  int const library = ::open(ISOLATE_TEST_SANDBOX_PROBE, O_RDONLY | O_CLOEXEC);
  REQUIRE(library >= 0);
  child_outcome const r = in_child([&](child_report const& out) {
    sandbox::landlock_plan landlock;
    landlock.restrict_filesystem = landlock.scope_signals = landlock.scope_abstract_unix = landlock.deny_tcp = true;
    landlock.read_fds = {library};
    std::error_code ec;
    sandbox::landlock_report const report = sandbox::apply_landlock(landlock, ec);
    out.put("landlock_ec", ec.value());
    out.put("filesystem", report.filesystem);
    sandbox::seccomp_plan seccomp;
    seccomp.policy = sandbox::syscall_policy::allow_list;
    seccomp.deny_sockets = seccomp.deny_new_processes = true;
    apply(out, seccomp);
    void* const handle = ::dlopen(ISOLATE_TEST_SANDBOX_PROBE, RTLD_NOW | RTLD_LOCAL);
    out.put("dlopen", handle != nullptr);
    if (handle == nullptr) return;
    auto const probe = reinterpret_cast<long (*)(int, int)>(::dlsym(handle, "isolate_sandbox_probe"));
    out.put("probe", probe != nullptr ? probe(1000, 4) : -1);
    out.put("other_file", open_errno("/etc/passwd", O_RDONLY));
  });
  ::close(library);
  REQUIRE(r.exited_cleanly());
  CHECK(r["landlock_ec"] == 0);
  CHECK(r["ec"] == 0);
  CHECK(r["dlopen"] == 1);
  CHECK(r["probe"] == 499500 + (4 << 20));
  if (abi >= 1) {
    CHECK(r["filesystem"] == 1);
    CHECK(r["other_file"] == EACCES);  // Landlock's answer: seccomp lets read-only opens through
  }
}
