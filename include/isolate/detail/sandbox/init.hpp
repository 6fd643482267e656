// PID 1 of a sandboxed worker's namespaces. It does what needs the
// namespace's root (a /proc of its own, so the host's processes are out of
// sight), then starts the worker proper as PID 2 and stays behind, running
// no plugin code: it reaps every process orphaned into the namespace, and
// when PID 2 ends it tells the host how, through a pipe only it holds, and
// exits, which makes the kernel kill whatever is left in the namespace.
//
// PID 2, not PID 1, runs the plugin because the kernel shields a PID 1 from
// signals it does not handle: a plugin's raise(SIGSEGV) or the SIGXCPU of a
// CPU limit would be ignored there.
#ifndef ISOLATE_DETAIL_SANDBOX_INIT_HPP
#define ISOLATE_DETAIL_SANDBOX_INIT_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/system_call.hpp"

#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace isolate::detail::sandbox {

// What PID 1 tells the host about PID 2 (written once, in one write()).
struct init_report {
  std::int32_t code = 0;    // CLD_EXITED, CLD_KILLED or CLD_DUMPED
  std::int32_t status = 0;  // exit status or signal
  std::int64_t user_us = 0, system_us = 0;  // CPU time of PID 2 and what it reaped
  std::int64_t max_rss_kb = 0;              // its peak resident memory
};

// How the namespace's /proc turned out, for PID 2's report.
enum class proc_view : int { own, hidden, hosts };
inline proc_view namespace_proc = proc_view::hosts;

// A /proc showing only the namespace's processes. Where the kernel refuses
// a new proc mount (a container whose /proc has masked parts), a tmpfs over
// /proc hides the host's; failing both, the host's stays visible.
inline proc_view mount_own_proc() noexcept {
  if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return proc_view::hosts;
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0) return proc_view::own;
  if (::mount("tmpfs", "/proc", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=0") == 0) {
    return proc_view::hidden;
  }
  return proc_view::hosts;
}

// Reaps every child this process gets (orphans too, when it is a PID 1)
// until `worker` ends, reports how on `status_fd` and exits. Keeps only the
// pipe to the host (and the standard streams) meanwhile.
[[noreturn]] inline void report_when_ended(pid_t worker, int status_fd) noexcept {
  ::close_range(3, static_cast<unsigned>(status_fd) - 1, 0);
  ::close_range(static_cast<unsigned>(status_fd) + 1, ~0U, 0);
  for (;;) {
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    rusage usage{};
    // waitid has no rusage in glibc's wrapper; the system call does.
    const long rc = retry_on_eintr([&] {
      return ::syscall(SYS_waitid, P_ALL, 0, &info, WEXITED | __WALL, &usage);
    });
    if (rc < 0) ::_exit(127);  // no child left: cannot happen while PID 2 is unreaped
    if (info.si_pid != worker) continue;  // an orphan: reaped, nothing more
    init_report report;
    report.code = info.si_code;
    report.status = info.si_status;
    report.user_us = usage.ru_utime.tv_sec * 1'000'000 + usage.ru_utime.tv_usec;
    report.system_us = usage.ru_stime.tv_sec * 1'000'000 + usage.ru_stime.tv_usec;
    report.max_rss_kb = usage.ru_maxrss;
    (void)retry_on_eintr([&] { return ::write(status_fd, &report, sizeof report); });
    ::_exit(0);
  }
}

// Forks: returns in the child, which goes on to do the work; the parent
// stays behind (report_when_ended). Never returns in the parent.
inline void fork_and_report(int status_fd) {
  // Nothing may trace the parent or read its memory.
  ::prctl(PR_SET_DUMPABLE, 0);
  const pid_t worker = ::fork();
  if (worker == 0) {
    ::close(status_fd);
    return;
  }
  if (worker < 0) ::_exit(127);
  report_when_ended(worker, status_fd);
}

// Called first thing in the worker's main when it is PID 1 of new
// namespaces. Returns in PID 2 (the caller goes on as the worker); never
// returns in PID 1. `status_fd` is the pipe to the host.
inline void become_init(int status_fd) {
  namespace_proc = mount_own_proc();
  fork_and_report(status_fd);
}

}  // namespace isolate::detail::sandbox

#endif
