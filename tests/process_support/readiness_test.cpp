#include "isolate/detail/process/readiness.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <chrono>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

using namespace std::chrono_literals;
using isolate::detail::deadline_clock;
using isolate::detail::wait_ready;

namespace {
struct pipe_fds {
  int read_end = -1, write_end = -1;
  pipe_fds() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    read_end = fds[0];
    write_end = fds[1];
  }
  ~pipe_fds() {
    if (read_end >= 0) ::close(read_end);
    if (write_end >= 0) ::close(write_end);
  }
};
}  // namespace

TEST_CASE("ready at once when the descriptor is") {
  pipe_fds p;
  std::error_code ec = std::make_error_code(std::errc::io_error);
  CHECK(wait_ready(p.write_end, POLLOUT, deadline_clock::now() + 10s, ec));
  CHECK_FALSE(ec);
  const char byte = 1;
  REQUIRE(::write(p.write_end, &byte, 1) == 1);
  CHECK(wait_ready(p.read_end, POLLIN, deadline_clock::time_point::max(), ec));
  CHECK_FALSE(ec);
}

TEST_CASE("timed_out at the deadline when nothing comes") {
  pipe_fds p;
  std::error_code ec;
  const auto started = deadline_clock::now();
  CHECK_FALSE(wait_ready(p.read_end, POLLIN, started + 30ms, ec));
  CHECK(ec == std::errc::timed_out);
  CHECK(deadline_clock::now() - started >= 30ms);
  CHECK_FALSE(wait_ready(p.read_end, POLLIN, started - 1s, ec));  // already passed: no wait at all
  CHECK(ec == std::errc::timed_out);
}

TEST_CASE("woken by data arriving from another thread") {
  pipe_fds p;
  std::thread writer([&] {
    const char byte = 2;
    (void)::write(p.write_end, &byte, 1);
  });
  std::error_code ec;
  CHECK(wait_ready(p.read_end, POLLIN, deadline_clock::now() + 20s, ec));
  CHECK_FALSE(ec);
  writer.join();
}

TEST_CASE("a hangup counts as ready, for the read to report; a closed descriptor is EBADF") {
  pipe_fds p;
  ::close(p.write_end);
  p.write_end = -1;
  std::error_code ec;
  CHECK(wait_ready(p.read_end, POLLIN, deadline_clock::now() + 10s, ec));
  CHECK_FALSE(ec);

  const int closed = p.read_end;
  ::close(closed);
  p.read_end = -1;
  CHECK_FALSE(wait_ready(closed, POLLIN, deadline_clock::now() + 10s, ec));
  CHECK(ec == std::errc::bad_file_descriptor);
}
