#include "isolate/detail/sandbox/spawn.hpp"

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <system_error>

namespace sandbox = isolate::detail::sandbox;

TEST_CASE("a sandboxed child that dies before it is told to start fails its spawn, and never kills the host") {
  sandbox::namespaced_spawn_options options;
  options.program = "/bin/true";
  options.discard_output = true;
  bool killed = false;
  // The child waits for its "go" (after its id maps): it dies first here, so
  // the go finds nobody to read it. Written to a pipe, that was a SIGPIPE
  // for the whole host.
  options.before_start = [&](pid_t pid) {
    if (::kill(pid, SIGKILL) != 0) return std::error_code(errno, std::system_category());
    siginfo_t info{};
    // Dead, and left unreaped for the spawn to adopt.
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT | __WALL) != 0) {
      return std::error_code(errno, std::system_category());
    }
    killed = true;
    return std::error_code();
  };
  std::error_code ec;
  auto child = sandbox::spawn_in_namespaces(options, ec);
  if (!killed) {
    MESSAGE("no child in new namespaces here (" << ec.message() << "): nothing to check");
    return;
  }
  CHECK(ec == std::error_code(EPIPE, std::system_category()));
}
