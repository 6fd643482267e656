#include "isolate/detail/process/unique_fd.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <fcntl.h>
#include <unistd.h>

#include <system_error>
#include <utility>

using isolate::detail::duplicate_fd;
using isolate::detail::make_pipe;
using isolate::detail::unique_fd;

namespace {

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }
bool is_cloexec(int fd) { return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

}  // namespace

TEST_CASE("a unique_fd closes its descriptor once, in its last owner") {
  std::error_code ec;
  auto [read_end, write_end] = make_pipe(ec);
  REQUIRE_FALSE(ec);
  const int fd = read_end.get();
  REQUIRE(is_open(fd));
  {
    unique_fd moved(std::move(read_end));
    CHECK_FALSE(read_end);
    CHECK(read_end.get() == -1);
    CHECK(moved.get() == fd);
    unique_fd assigned;
    assigned = std::move(moved);
    CHECK(assigned.get() == fd);
    assigned = std::move(assigned);  // self-move keeps it
    CHECK(assigned.get() == fd);
    CHECK(is_open(fd));
  }
  CHECK_FALSE(is_open(fd));
}

TEST_CASE("release() gives the descriptor up; reset() closes the old one") {
  std::error_code ec;
  auto [read_end, write_end] = make_pipe(ec);
  REQUIRE_FALSE(ec);
  const int fd = read_end.release();
  CHECK_FALSE(read_end);
  CHECK(is_open(fd));
  const int other = write_end.get();
  write_end.reset(fd);
  CHECK_FALSE(is_open(other));
  CHECK(write_end.get() == fd);
  write_end.reset();
  CHECK_FALSE(is_open(fd));
  CHECK_FALSE(write_end);
}

TEST_CASE("make_pipe and duplicate_fd give close-on-exec descriptors") {
  std::error_code ec;
  auto [read_end, write_end] = make_pipe(ec);
  REQUIRE_FALSE(ec);
  CHECK(is_cloexec(read_end.get()));
  CHECK(is_cloexec(write_end.get()));

  auto copy = duplicate_fd(write_end.get(), ec, 100);
  REQUIRE_FALSE(ec);
  CHECK(copy.get() >= 100);
  CHECK(is_cloexec(copy.get()));
  const char byte = 'x';
  REQUIRE(::write(copy.get(), &byte, 1) == 1);
  char got = 0;
  REQUIRE(::read(read_end.get(), &got, 1) == 1);
  CHECK(got == 'x');

  auto none = duplicate_fd(-1, ec);
  CHECK(ec == std::errc::bad_file_descriptor);
  CHECK_FALSE(none);
}
