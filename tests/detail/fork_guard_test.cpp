#include "isolate/detail/fork_guard.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <sys/wait.h>
#include <unistd.h>

using isolate::detail::fork_guard;

TEST_CASE("a fork_guard is not forked in the process that made it") {
  const fork_guard guard;
  CHECK_FALSE(guard.forked());
}

TEST_CASE("a fork_guard is forked in a child, and one made in the child is not") {
  const fork_guard guard;
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const fork_guard made_here;
    int status = 0;
    if (!guard.forked()) status |= 1;
    if (made_here.forked()) status |= 2;
    // A grandchild: forked again for both.
    const pid_t grandchild = ::fork();
    if (grandchild == 0) ::_exit(guard.forked() && made_here.forked() ? 0 : 1);
    int grand_status = 0;
    if (grandchild < 0 || ::waitpid(grandchild, &grand_status, 0) != grandchild || !WIFEXITED(grand_status) ||
        WEXITSTATUS(grand_status) != 0) {
      status |= 4;
    }
    ::_exit(status);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK_FALSE(guard.forked());  // the parent is unchanged
}
