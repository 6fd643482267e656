#include "isolate/detail/process/fd_passing.hpp"

#include "child_fixture.hpp"

#include <doctest/doctest.h>

#include <array>
#include <string>
#include <thread>
#include <tuple>

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>

using namespace isolate_test;

namespace {

unique_fd make_memfd(std::string_view content) {
  unique_fd fd(::memfd_create("isolate-test", MFD_CLOEXEC));
  REQUIRE(fd);
  REQUIRE(::write(fd.get(), content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  return fd;
}

std::string read_all(int fd) {
  std::string text(256, '\0');
  ssize_t const n = ::pread(fd, text.data(), text.size(), 0);
  REQUIRE(n >= 0);
  text.resize(static_cast<std::size_t>(n));
  return text;
}

// Sends `count` descriptors (copies of /dev/null) with one byte, as a hostile peer might.
void send_junk_fds(int socket, std::size_t count) {
  std::vector<unique_fd> junk;
  std::vector<int> raw;
  for (std::size_t i = 0; i < count; ++i) {
    junk.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    raw.push_back(junk.back().get());
  }
  std::byte const one[1] = {std::byte{'x'}};
  send_with_fds(socket, one, raw, patience);
}

}  // namespace

TEST_CASE("descriptors and payload make the round trip") {
  socket_pair pair;
  SUBCASE("one memfd") {
    auto memfd = make_memfd("shared region");
    int const fds[] = {memfd.get()};
    send_with_fds(pair.a.get(), bytes_of("hello"), fds, patience);

    std::array<std::byte, 5> payload;
    auto received = receive_with_fds(pair.b.get(), payload, 1, patience);
    REQUIRE(received.size() == 1);
    CHECK(text_of(payload) == "hello");
    CHECK(received[0].get() != memfd.get());
    CHECK((::fcntl(received[0].get(), F_GETFD) & FD_CLOEXEC) != 0);
    CHECK(read_all(received[0].get()) == "shared region");
  }
  SUBCASE("several descriptors, in order") {
    auto first = make_memfd("first");
    auto second = make_memfd("second");
    auto third = make_memfd("third");
    int const fds[] = {first.get(), second.get(), third.get()};
    send_with_fds(pair.a.get(), bytes_of("three fds"), fds, patience);

    std::array<std::byte, 9> payload;
    auto received = receive_with_fds(pair.b.get(), payload, 3, patience);
    REQUIRE(received.size() == 3);
    CHECK(read_all(received[0].get()) == "first");
    CHECK(read_all(received[1].get()) == "second");
    CHECK(read_all(received[2].get()) == "third");
  }
  SUBCASE("no descriptor, just the payload") {
    send_with_fds(pair.a.get(), bytes_of("plain"), {}, patience);
    std::array<std::byte, 5> payload;
    CHECK(receive_with_fds(pair.b.get(), payload, 0, patience).empty());
    CHECK(text_of(payload) == "plain");
  }
  SUBCASE("a payload larger than the socket buffer, with the fd on its first byte") {
    std::string big(1 << 20, 'z');
    auto memfd = make_memfd("big");
    int const fds[] = {memfd.get()};
    std::vector<std::byte> payload(big.size());
    std::thread sender([&] { send_with_fds(pair.a.get(), bytes_of(big), fds, patience); });
    auto received = receive_with_fds(pair.b.get(), payload, 1, patience);
    sender.join();
    REQUIRE(received.size() == 1);
    CHECK(text_of(payload) == big);
    CHECK(read_all(received[0].get()) == "big");
  }
}

TEST_CASE("a descriptor passed to a child process is usable there") {
  auto [channel, child] = spawn_connected({"recv-fd"});
  auto memfd = make_memfd("");
  int const fds[] = {memfd.get()};
  send_with_fds(channel.get(), bytes_of("from-hst"), fds, patience);
  auto ack = read_message(channel.get(), 64, patience);
  CHECK(ack.type == 4);
  CHECK(read_all(memfd.get()) == "from-hst");
  auto status = child.wait_exit(patience);
  REQUIRE(status);
  CHECK(status->exited_with(0));
}

TEST_CASE("garbage from the peer is rejected and no descriptor leaks") {
  socket_pair pair;
  int const baseline = open_fd_count();
  std::array<std::byte, 1> payload;
  std::error_code ec;

  SUBCASE("more descriptors than expected") {
    send_junk_fds(pair.a.get(), 3);
    auto received = receive_with_fds(pair.b.get(), payload, 1, patience, ec);
    CHECK(ec == std::errc::bad_message);
    CHECK(received.empty());
  }
  SUBCASE("far more than fit: the kernel truncates (MSG_CTRUNC)") {
    send_junk_fds(pair.a.get(), 200);
    auto received = receive_with_fds(pair.b.get(), payload, 1, patience, ec);
    CHECK(ec == std::errc::bad_message);
    CHECK(received.empty());
  }
  SUBCASE("fewer descriptors than expected") {
    send_junk_fds(pair.a.get(), 1);
    auto received = receive_with_fds(pair.b.get(), payload, 2, patience, ec);
    CHECK(ec == std::errc::bad_message);
  }
  SUBCASE("descriptors where none were expected") {
    send_junk_fds(pair.a.get(), 2);
    auto received = receive_with_fds(pair.b.get(), payload, 0, patience, ec);
    CHECK(ec == std::errc::bad_message);
  }
  SUBCASE("descriptors attached to a later part of the payload") {
    std::array<std::byte, 2> two;
    std::byte const first[1] = {std::byte{'a'}};
    send_with_fds(pair.a.get(), first, {}, patience);
    // The first byte is consumed alone before the second arrives.
    std::thread late([&] {
      pollfd p{pair.b.get(), POLLIN, 0};
      while (::poll(&p, 1, 0) == 1) std::this_thread::yield();
      send_junk_fds(pair.a.get(), 1);
    });
    auto received = receive_with_fds(pair.b.get(), two, 1, patience, ec);
    late.join();
    CHECK(ec == std::errc::bad_message);
  }
  SUBCASE("the peer closes") {
    pair.a.reset();
    receive_with_fds(pair.b.get(), payload, 1, patience, ec);
    CHECK(ec == asio::error::eof);
    pair.a = unique_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));  // keep the count level
  }
  SUBCASE("the peer is silent") {
    auto const before = std::chrono::steady_clock::now();
    receive_with_fds(pair.b.get(), payload, 1, 100ms, ec);
    CHECK(ec == std::errc::timed_out);
    CHECK(std::chrono::steady_clock::now() - before >= 100ms);
  }
  SUBCASE("the throwing form says what failed") {
    send_junk_fds(pair.a.get(), 2);
    CHECK_THROWS_WITH_AS(receive_with_fds(pair.b.get(), payload, 1, patience),
                         doctest::Contains("cannot receive file descriptors"), std::system_error);
  }
  CHECK(open_fd_count() == baseline);
}

TEST_CASE("invalid arguments are refused") {
  socket_pair pair;
  std::error_code ec;
  int const fds[] = {0};
  send_with_fds(pair.a.get(), {}, fds, patience, ec);
  CHECK(ec == std::errc::invalid_argument);
  std::vector<int> too_many(max_passed_fds + 1, 0);
  send_with_fds(pair.a.get(), bytes_of("x"), too_many, patience, ec);
  CHECK(ec == std::errc::invalid_argument);
  std::array<std::byte, 1> payload;
  receive_with_fds(pair.b.get(), {}, 1, patience, ec);
  CHECK(ec == std::errc::invalid_argument);
  receive_with_fds(pair.b.get(), payload, max_passed_fds + 1, patience, ec);
  CHECK(ec == std::errc::invalid_argument);
  send_with_fds(-1, bytes_of("x"), {}, patience, ec);
  CHECK(ec == std::errc::bad_file_descriptor);
}
