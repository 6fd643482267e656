// The worker program of the process transport: it receives the plugin's path
// and the shared memory from the host, loads the plugin, and serves calls
// until the host says stop or goes away. One worker binary serves every
// plugin: it knows no interface, only the table the plugin exports.
//
//   // isolate_worker.cpp (isolate_add_plugin() generates this file)
//   #include <isolate/worker.hpp>
//   ISOLATE_WORKER_MAIN();
#ifndef ISOLATE_WORKER_HPP
#define ISOLATE_WORKER_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/process/worker.hpp"
#include "isolate/detail/sandbox/init_program.hpp"

#include <malloc.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace isolate {

// The worker program's main.
inline int worker_main(int argc, char** argv) {
  // Die with the host, whatever way it goes.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  int control = -1;
  int init_status = -1;
  pid_t parent = 0;
  bool output_in_lines = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--isolate-control-fd=")) control = std::atoi(arg.substr(21).data());
    if (arg.starts_with("--isolate-parent=")) parent = static_cast<pid_t>(std::atoi(arg.substr(17).data()));
    if (arg.starts_with("--isolate-init=")) init_status = std::atoi(arg.substr(15).data());
    // PID 2 started by isolate-init (init_program.hpp): how it found /proc.
    if (arg.starts_with(detail::sandbox::proc_argument)) {
      detail::sandbox::namespace_proc = detail::sandbox::parse_proc_argument(argv[i] + sizeof detail::sandbox::proc_argument - 1);
    }
    if (arg == "--isolate-output=lines") output_in_lines = true;
  }
  // In a sandbox: PID 1 stays behind here, and PID 2 goes on as the worker.
  if (init_status >= 0 && ::getpid() == 1) detail::sandbox::become_init(init_status);
  // The host reads stdout from a pipe, line by line (process::options::on_output):
  // flushed at each line, as on a terminal, so that a worker that crashes
  // has sent what it printed before (stdio fully buffers a pipe).
  if (output_in_lines) std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (control < 0) {
    std::fputs("isolate-worker runs plugins for isolate::process; it is started by the host, not by hand.\n", stderr);
    return detail::worker_exit_usage;
  }
  if (parent != 0 && ::getppid() != parent) return 1;  // the host died before PR_SET_PDEATHSIG took effect
  ::signal(SIGPIPE, SIG_IGN);
  // Large messages are decoded into fresh buffers on every call. glibc maps
  // each allocation over 32 MiB anew and unmaps it on free, so every such call
  // would fault in every page again; keep them in the heap and keep the heap.
  // The worker is isolate's own process, so this is ours to choose.
  ::mallopt(M_MMAP_MAX, 0);
  ::mallopt(M_TRIM_THRESHOLD, 256 << 20);
  return detail::worker(control).run();
}

}  // namespace isolate

// AddressSanitizer's hook at the start of a report, which must be defined
// once in the program: under a memory limit it lets the report be written
// (sandbox/worker_limits.hpp, room_for_sanitizer_report).
#if defined(__SANITIZE_ADDRESS__)
#define ISOLATE_DETAIL_SANITIZER_HOOKS() \
  extern "C" void __asan_on_error() { ::isolate::detail::sandbox::room_for_sanitizer_report(); }
#else
#define ISOLATE_DETAIL_SANITIZER_HOOKS()
#endif

// The worker's global operator new, plain and aligned (worker_limits.hpp,
// allocate_or_count): it counts allocations that fail, so that a plugin which
// catches bad_alloc at its memory limit is still reported. new[] and the
// nothrow forms of the C++ runtime call these two. Not under a sanitizer,
// whose runtime has its own.
#if ISOLATE_DETAIL_COUNTS_ALLOCATIONS
#define ISOLATE_DETAIL_OPERATOR_NEW() \
  void* operator new(std::size_t size) { return ::isolate::detail::sandbox::allocate_or_count(size); } \
  void* operator new(std::size_t size, std::align_val_t alignment) { \
    return ::isolate::detail::sandbox::allocate_aligned_or_count(size, alignment); \
  }
#else
#define ISOLATE_DETAIL_OPERATOR_NEW()
#endif

#define ISOLATE_WORKER_MAIN() \
  ISOLATE_DETAIL_SANITIZER_HOOKS() \
  ISOLATE_DETAIL_OPERATOR_NEW() \
  int main(int argc, char** argv) { return ::isolate::worker_main(argc, argv); } \
  static_assert(true, "")

#endif
