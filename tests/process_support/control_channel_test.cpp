#include "isolate/detail/process/control_channel.hpp"

#include "child_fixture.hpp"

#include <asio/io_context.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <tuple>

using namespace isolate_test;

namespace {

constexpr std::size_t max_size = 1 << 20;

void write_raw_header(int fd, std::uint32_t type, std::uint32_t length) {
  std::uint32_t const header[2] = {type, length};
  REQUIRE(::write(fd, header, sizeof header) == static_cast<ssize_t>(sizeof header));
}

using async_result = std::pair<std::error_code, control_message>;

// One async_read_message on `socket`, driven to completion on `io`.
async_result read_async(asio::io_context& io, asio::local::stream_protocol::socket& socket, std::size_t limit) {
  std::optional<async_result> result;
  async_read_message(socket, limit, [&](std::error_code ec, control_message m) { result.emplace(ec, std::move(m)); });
  io.restart();
  io.run_for(patience);
  REQUIRE(result.has_value());
  return std::move(*result);
}

}  // namespace

TEST_CASE("messages make the round trip") {
  socket_pair pair;
  write_message(pair.a.get(), 7, bytes_of("hello"), patience);
  write_message(pair.a.get(), 8, {}, patience);
  auto first = read_message(pair.b.get(), max_size, patience);
  CHECK(first.type == 7);
  CHECK(text_of(first.body) == "hello");
  auto second = read_message(pair.b.get(), max_size, patience);
  CHECK(second.type == 8);
  CHECK(second.body.empty());
}

TEST_CASE("a child echoes messages, large ones included") {
  auto [channel, child] = spawn_connected({"echo"});
  std::string const big(4 << 20, 'q');  // larger than both socket buffers together
  std::string const texts[] = {"one", "", "three", big};
  std::uint32_t type = 10;
  for (auto const& text : texts) {
    write_message(channel.get(), type, bytes_of(text), patience);
    auto reply = read_message(channel.get(), big.size(), patience);
    CHECK(reply.type == type);
    CHECK(text_of(reply.body) == text);
    ++type;
  }
  write_message(channel.get(), 98, {}, patience);  // asks it to exit
  auto status = child.wait_exit(patience);
  REQUIRE(status);
  CHECK(status->exited_with(0));
}

TEST_CASE("a length over the limit is rejected without reading or allocating it") {
  socket_pair pair;
  std::error_code ec;
  SUBCASE("4 GiB") {
    write_raw_header(pair.a.get(), 1, 0xFFFF'FFFFu);
    auto m = read_message(pair.b.get(), max_size, patience, ec);
    CHECK(ec == std::errc::message_size);
    CHECK(m.body.empty());
  }
  SUBCASE("one byte over") {
    write_raw_header(pair.a.get(), 1, max_size + 1);
    read_message(pair.b.get(), max_size, patience, ec);
    CHECK(ec == std::errc::message_size);
  }
  SUBCASE("exactly the limit is fine") {
    std::vector<std::byte> body(1000, std::byte{3});
    std::thread writer([&] { write_message(pair.a.get(), 1, body, patience); });
    auto m = read_message(pair.b.get(), 1000, patience, ec);
    writer.join();
    CHECK(!ec);
    CHECK(m.body == body);
  }
  SUBCASE("asynchronously") {
    asio::io_context io;
    asio::local::stream_protocol::socket socket(io, asio::local::stream_protocol(), pair.b.release());
    write_raw_header(pair.a.get(), 1, 0xFFFF'FFFFu);
    auto [async_ec, m] = read_async(io, socket, max_size);
    CHECK(async_ec == std::errc::message_size);
  }
}

TEST_CASE("a peer that dies mid-conversation gives eof") {
  SUBCASE("between messages (synchronous read)") {
    auto [channel, child] = spawn_connected({"echo"});
    write_message(channel.get(), 1, bytes_of("ping"), patience);
    CHECK(text_of(read_message(channel.get(), max_size, patience).body) == "ping");
    write_message(channel.get(), 99, {}, patience);  // it aborts
    std::error_code ec;
    read_message(channel.get(), max_size, patience, ec);
    CHECK(ec == asio::error::eof);
    auto status = child.wait_exit(patience);
    REQUIRE(status);
    CHECK(status->killed_by(SIGABRT));
  }
  SUBCASE("in the middle of a frame") {
    auto [channel, child] = spawn_connected({"partial-frame"});
    std::error_code ec;
    read_message(channel.get(), max_size, patience, ec);
    CHECK(ec == asio::error::eof);
  }
  SUBCASE("while an async read and an exit wait are outstanding") {
    // The host's shape: one read always pending, plus the exit watch.
    auto [channel, child] = spawn_connected({"echo"});
    asio::io_context io;
    asio::local::stream_protocol::socket socket(io, asio::local::stream_protocol(), channel.release());
    std::optional<std::error_code> read_ec;
    std::optional<exit_status> exit;
    async_read_message(socket, max_size, [&](std::error_code ec, control_message) { read_ec = ec; });
    child.async_wait_exit(io.get_executor(), [&](std::error_code ec, exit_status s) {
      CHECK(!ec);
      exit = s;
    });
    write_message(socket, 99, {}, patience);
    io.run_for(patience);
    REQUIRE(read_ec.has_value());
    CHECK(*read_ec == asio::error::eof);
    REQUIRE(exit.has_value());
    CHECK(exit->describe() == "killed by signal 6 (SIGABRT)");
  }
}

TEST_CASE("a silent peer makes a read time out") {
  auto [channel, child] = spawn_connected({"silent"});
  std::error_code ec;
  auto const before = std::chrono::steady_clock::now();
  read_message(channel.get(), max_size, 200ms, ec);
  auto const waited = std::chrono::steady_clock::now() - before;
  CHECK(ec == std::errc::timed_out);
  CHECK(waited >= 200ms);
  CHECK(waited < 5s);
  channel.reset();  // the child sees eof and exits
  auto status = child.wait_exit(patience);
  REQUIRE(status);
  CHECK(status->exited_with(0));
}

TEST_CASE("writing fails cleanly") {
  socket_pair pair;
  std::error_code ec;
  SUBCASE("to a closed peer: an error, not SIGPIPE") {
    pair.b.reset();
    write_message(pair.a.get(), 1, bytes_of("anyone?"), patience, ec);
    CHECK(ec == std::errc::broken_pipe);
  }
  SUBCASE("to a peer that never reads: timed_out") {
    std::vector<std::byte> body(16 << 20);
    write_message(pair.a.get(), 1, body, 100ms, ec);
    CHECK(ec == std::errc::timed_out);
  }
  SUBCASE("the throwing form says what failed") {
    pair.b.reset();
    CHECK_THROWS_WITH_AS(write_message(pair.a.get(), 1, bytes_of("x"), patience),
                         doctest::Contains("cannot write to the control channel"), std::system_error);
  }
}

TEST_CASE("async_read_message reads frames in sequence, then eof") {
  socket_pair pair;
  asio::io_context io;
  asio::local::stream_protocol::socket socket(io, asio::local::stream_protocol(), pair.b.release());
  write_message(pair.a.get(), 1, bytes_of("first"), patience);
  write_message(pair.a.get(), 2, {}, patience);
  std::vector<std::byte> big(3 << 20, std::byte{9});
  std::thread writer([&] { write_message(pair.a.get(), 3, big, patience); });

  auto [ec1, m1] = read_async(io, socket, 8 << 20);
  CHECK(!ec1);
  CHECK(m1.type == 1);
  CHECK(text_of(m1.body) == "first");
  auto [ec2, m2] = read_async(io, socket, 8 << 20);
  CHECK(!ec2);
  CHECK(m2.type == 2);
  CHECK(m2.body.empty());
  auto [ec3, m3] = read_async(io, socket, 8 << 20);
  writer.join();
  CHECK(!ec3);
  CHECK(m3.type == 3);
  CHECK(m3.body == big);

  pair.a.reset();
  auto [ec4, m4] = read_async(io, socket, 8 << 20);
  CHECK(ec4 == asio::error::eof);
}

TEST_CASE("an outstanding async_read_message can be cancelled") {
  socket_pair pair;
  asio::io_context io;
  asio::local::stream_protocol::socket socket(io, asio::local::stream_protocol(), pair.b.release());
  std::optional<std::error_code> result;
  async_read_message(socket, max_size, [&](std::error_code ec, control_message) { result = ec; });
  io.poll();
  CHECK_FALSE(result.has_value());
  socket.cancel();
  io.run_for(patience);
  REQUIRE(result.has_value());
  CHECK(*result == asio::error::operation_aborted);
}
