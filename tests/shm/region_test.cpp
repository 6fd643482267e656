#include "isolate/shm/region.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <cerrno>
#include <cstdio>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

using isolate::shm::errc;
using isolate::shm::region;

namespace {

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

// A memfd the way a careless or hostile peer might hand one over.
int raw_memfd(std::size_t size, unsigned flags, int seals) {
  int const fd = ::memfd_create("isolate-test", flags);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
  if (seals != 0) REQUIRE(::fcntl(fd, F_ADD_SEALS, seals) == 0);
  return fd;
}

}  // namespace

TEST_CASE("create maps a zero-filled, sealed memfd of the requested size") {
  std::error_code ec;
  region r = region::create(8192, "isolate-test", ec);
  REQUIRE_FALSE(ec);
  REQUIRE(r);
  CHECK(r.size() == 8192);
  CHECK(r.bytes().size() == 8192);
  CHECK(r.fd() >= 0);
  for (std::size_t i = 0; i < r.size(); ++i) REQUIRE(r.data()[i] == std::byte{0});

  int const seals = ::fcntl(r.fd(), F_GET_SEALS);
  CHECK((seals & region::required_seals) == region::required_seals);
  // The seals hold: nobody can shrink (SIGBUS) or grow the file any more.
  CHECK(::ftruncate(r.fd(), 4096) == -1);
  CHECK(errno == EPERM);
  CHECK(::ftruncate(r.fd(), 16384) == -1);
  CHECK(::fcntl(r.fd(), F_ADD_SEALS, F_SEAL_WRITE) == -1);
  // The fd does not leak into exec'd programs.
  CHECK((::fcntl(r.fd(), F_GETFD) & FD_CLOEXEC) != 0);
}

TEST_CASE("attach maps the same memory through its own fd") {
  region created = region::create(4096, "isolate-test");
  std::error_code ec;
  region attached = region::attach(created.fd(), 4096, ec);
  REQUIRE_FALSE(ec);
  REQUIRE(attached);
  CHECK(attached.size() == 4096);
  CHECK(attached.fd() != created.fd());
  CHECK(attached.data() != created.data());

  created.data()[100] = std::byte{42};
  CHECK(attached.data()[100] == std::byte{42});
  attached.data()[4095] = std::byte{7};
  CHECK(created.data()[4095] == std::byte{7});

  // The caller keeps its fd: attach duplicated it.
  int const original = created.fd();
  { region other = region::attach(original, 4096); }
  CHECK(fd_is_open(original));
}

TEST_CASE("attach rejects a size other than the expected one") {
  region created = region::create(4096, "isolate-test");
  std::error_code ec;
  region smaller = region::attach(created.fd(), 2048, ec);
  CHECK(ec == errc::bad_size);
  CHECK_FALSE(smaller);
  region larger = region::attach(created.fd(), 8192, ec);
  CHECK(ec == errc::bad_size);
  CHECK_FALSE(larger);
  CHECK_THROWS_AS(region::attach(created.fd(), 8192), std::system_error);
}

TEST_CASE("attach rejects files a peer could still resize") {
  std::error_code ec;

  SUBCASE("memfd without sealing") {
    int const fd = raw_memfd(4096, MFD_CLOEXEC, 0);
    region r = region::attach(fd, 4096, ec);
    CHECK(ec == errc::not_sealed);
    CHECK_FALSE(r);
    ::close(fd);
  }
  SUBCASE("memfd that allows sealing but is not sealed") {
    int const fd = raw_memfd(4096, MFD_CLOEXEC | MFD_ALLOW_SEALING, 0);
    CHECK_FALSE(region::attach(fd, 4096, ec));
    CHECK(ec == errc::not_sealed);
    ::close(fd);
  }
  SUBCASE("memfd sealed against growing only: it can still shrink") {
    int const fd = raw_memfd(4096, MFD_CLOEXEC | MFD_ALLOW_SEALING, F_SEAL_GROW);
    CHECK_FALSE(region::attach(fd, 4096, ec));
    CHECK(ec == errc::not_sealed);
    ::close(fd);
  }
  SUBCASE("memfd sealed against resizing but seals still addable") {
    int const fd = raw_memfd(4096, MFD_CLOEXEC | MFD_ALLOW_SEALING, F_SEAL_GROW | F_SEAL_SHRINK);
    CHECK_FALSE(region::attach(fd, 4096, ec));
    CHECK(ec == errc::not_sealed);
    ::close(fd);
  }
  SUBCASE("a regular file") {
    std::FILE* file = std::tmpfile();
    REQUIRE(file != nullptr);
    REQUIRE(::ftruncate(::fileno(file), 4096) == 0);
    CHECK_FALSE(region::attach(::fileno(file), 4096, ec));
    CHECK(ec == errc::not_sealed);
    std::fclose(file);
  }
  SUBCASE("a pipe") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    CHECK_FALSE(region::attach(fds[0], 4096, ec));
    CHECK(ec);
    ::close(fds[0]);
    ::close(fds[1]);
  }
  SUBCASE("a closed fd") {
    int const fd = raw_memfd(4096, MFD_CLOEXEC, 0);
    ::close(fd);
    CHECK_FALSE(region::attach(fd, 4096, ec));
    CHECK(ec == std::errc::bad_file_descriptor);
  }
  SUBCASE("a sealed memfd attaches") {
    int const fd = raw_memfd(4096, MFD_CLOEXEC | MFD_ALLOW_SEALING, region::required_seals);
    CHECK(region::attach(fd, 4096, ec));
    CHECK_FALSE(ec);
    ::close(fd);
  }
}

TEST_CASE("create rejects an empty region") {
  std::error_code ec;
  CHECK_FALSE(region::create(0, "isolate-test", ec));
  CHECK(ec == std::errc::invalid_argument);
  CHECK_THROWS_AS(region::create(0, "isolate-test"), std::system_error);
}

TEST_CASE("region is move-only and releases the fd when destroyed") {
  static_assert(!std::is_copy_constructible_v<region>);
  static_assert(std::is_nothrow_move_constructible_v<region>);

  region a = region::create(4096, "isolate-test");
  int const fd = a.fd();
  std::byte* const data = a.data();

  region b = std::move(a);
  CHECK_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  CHECK(a.fd() == -1);
  CHECK(b.fd() == fd);
  CHECK(b.data() == data);

  region c;
  c = std::move(b);
  CHECK(c.fd() == fd);
  CHECK(fd_is_open(fd));

  c = region{};
  CHECK_FALSE(fd_is_open(fd));
}
