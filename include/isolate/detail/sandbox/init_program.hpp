// isolate-init: PID 1 of a sandboxed worker's namespaces, as a program of
// its own. It mounts the namespace's /proc, starts the worker (PID 2) from
// a descriptor the host passed, and stays behind to reap and report
// (init.hpp). Why a program apart from the worker: a PID 1 that is a fork of
// the worker keeps a copy of every page the worker writes after the fork
// (the relocations of the C++ runtime, the heap of its start), about 200 KiB
// per plugin; this one is a small static program that touches a few pages,
// so a thousand sandboxed plugins do not pay for a thousand copies. Built
// next to isolate-worker by isolate_add_plugin; where it is missing, the
// worker is its own PID 1 (worker.hpp), as before.
//
//   isolate-init --isolate-init=<status fd> --isolate-worker-fd=<fd> -- <worker arguments>
//
// It links nothing but the C library, statically.
#ifndef ISOLATE_DETAIL_SANDBOX_INIT_PROGRAM_HPP
#define ISOLATE_DETAIL_SANDBOX_INIT_PROGRAM_HPP

#include "isolate/detail/sandbox/init.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

extern char** environ;

namespace isolate::detail::sandbox {

// The worker's argument telling it how /proc turned out (worker.hpp reads it).
inline constexpr char proc_argument[] = "--isolate-proc=";

inline const char* proc_argument_value(proc_view view) noexcept {
  switch (view) {
    case proc_view::own: return "--isolate-proc=own";
    case proc_view::hidden: return "--isolate-proc=hidden";
    case proc_view::hosts: break;
  }
  return "--isolate-proc=hosts";
}

inline proc_view parse_proc_argument(const char* value) noexcept {
  if (std::strcmp(value, "own") == 0) return proc_view::own;
  if (std::strcmp(value, "hidden") == 0) return proc_view::hidden;
  return proc_view::hosts;
}

inline int init_main(int argc, char** argv) {
  int status_fd = -1, worker_fd = -1, first = argc;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) {
      first = i + 1;
      break;
    }
    if (std::strncmp(argv[i], "--isolate-init=", 15) == 0) status_fd = std::atoi(argv[i] + 15);
    if (std::strncmp(argv[i], "--isolate-worker-fd=", 20) == 0) worker_fd = std::atoi(argv[i] + 20);
  }
  if (status_fd < 3 || worker_fd < 3 || ::getpid() != 1) {
    const char usage[] = "isolate-init is PID 1 of an isolate::process sandbox; the host starts it, not you.\n";
    (void)!::write(STDERR_FILENO, usage, sizeof usage - 1);
    return 2;
  }
  // Die with the host's launcher thread, as the worker does: the setting
  // the clone gave does not survive the exec of a process that holds
  // capabilities (in its namespace). Without it, a worker whose plugin
  // spins and ignores its closed control socket would outlive the host.
  // (A host gone before this took effect leaves a worker that finds its
  // control socket closed before any plugin code runs: it exits, and so
  // does this.)
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  const proc_view proc = mount_own_proc();
  // Nothing may trace PID 1 or read its memory.
  ::prctl(PR_SET_DUMPABLE, 0);
  // The worker's argv: its program, its arguments, how /proc turned out.
  const int count = argc - first;
  auto** args = static_cast<char**>(std::calloc(static_cast<std::size_t>(count) + 3, sizeof(char*)));
  if (args == nullptr) return 127;
  args[0] = const_cast<char*>("isolate-worker");
  for (int i = 0; i < count; ++i) args[i + 1] = argv[first + i];
  args[count + 1] = const_cast<char*>(proc_argument_value(proc));
  const pid_t worker = ::fork();
  if (worker == 0) {
    ::close(status_fd);
    // The worker does not keep a descriptor of its own program.
    ::fcntl(worker_fd, F_SETFD, FD_CLOEXEC);
    ::syscall(SYS_execveat, worker_fd, "", args, environ, AT_EMPTY_PATH);
    ::_exit(127);
  }
  if (worker < 0) return 127;
  std::free(args);
  ::close(worker_fd);
  report_when_ended(worker, status_fd);
}

}  // namespace isolate::detail::sandbox

#define ISOLATE_INIT_MAIN() \
  int main(int argc, char** argv) { return ::isolate::detail::sandbox::init_main(argc, argv); } \
  static_assert(true, "")

#endif
