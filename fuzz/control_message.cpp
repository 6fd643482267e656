// Fuzzes the control channel's framing (detail/process/control_channel.hpp):
// arbitrary bytes arrive on a Unix socket and are read as messages with
// read_message, read_message_with_fds and async_read_message.
//
// Input: the largest body accepted (u16), then the bytes the peer sends.
//
// Promises checked: each reader returns exactly the messages a plain model
// of the format finds (8-byte header: type, body length; then the body), in
// order, then stops with message_size for a body over the limit or eof for a
// stream that ends (even mid-message); no body is allocated before its
// length is checked (allocation within the limit plus the header).
#include "allocation_meter.hpp"

#include "support.hpp"

#include <isolate/detail/process/control_channel.hpp>

#include <asio/io_context.hpp>

#include <cerrno>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

namespace {

using namespace isolate_fuzz;
namespace d = isolate::detail;
using namespace std::chrono_literals;

struct outcome {
  std::vector<d::control_message> messages;
  std::error_code end;  // why reading stopped
};

// The format, read the plainest way.
outcome model(std::span<const std::byte> stream, std::size_t max_size) {
  outcome out;
  while (stream.size() >= d::control_header_size) {
    std::uint32_t type, length;
    std::memcpy(&type, stream.data(), 4);
    std::memcpy(&length, stream.data() + 4, 4);
    stream = stream.subspan(d::control_header_size);
    if (length > max_size) {
      out.end = std::make_error_code(std::errc::message_size);
      return out;
    }
    if (length > stream.size()) break;
    out.messages.push_back({type, {stream.begin(), stream.begin() + length}});
    stream = stream.subspan(length);
  }
  out.end = asio::error::eof;
  return out;
}

// A socket pair whose reading end has `stream` waiting, then end of file.
struct held_stream {
  d::unique_fd socket;  // the reading end
  std::size_t sent;     // how many bytes of the stream fit in the socket
};
held_stream socket_holding(std::span<const std::byte> stream) {
  std::error_code ec;
  auto [writer, reader] = d::make_socket_pair(ec);
  if (ec) broken("cannot make a socket pair: " + ec.message());
  std::size_t sent = 0;
  while (sent < stream.size()) {
    const ssize_t n = ::send(writer.get(), stream.data() + sent, stream.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0) break;  // the socket's buffer is full: fuzz what fit
    sent += static_cast<std::size_t>(n);
  }
  ::shutdown(writer.get(), SHUT_WR);
  return {std::move(reader), sent};
}

void require_same(const outcome& expected, const outcome& got, const char* reader) {
  const std::string who = reader;
  require(got.messages.size() == expected.messages.size(),
          who + " read " + std::to_string(got.messages.size()) + " messages where the format holds " +
              std::to_string(expected.messages.size()));
  for (std::size_t i = 0; i < got.messages.size(); ++i) {
    require(got.messages[i].type == expected.messages[i].type && got.messages[i].body == expected.messages[i].body,
            who + " read message " + std::to_string(i) + " differently from the format");
  }
  require(got.end == expected.end, who + " stopped with '" + got.end.message() + "' where the format says '" +
                                       expected.end.message() + "'");
}

// Reads messages until one fails, checking each read's allocation.
template <class Read>
outcome read_all(Read&& read, std::size_t max_size, const char* reader) {
  outcome out;
  for (;;) {
    std::error_code ec;
    const std::size_t before = isolate_fuzz::bytes_requested.load();
    auto message = read(ec);
    const std::size_t allocated = isolate_fuzz::bytes_requested.load() - before;
    require(allocated <= max_size + 4096, std::string(reader) + " allocated " + std::to_string(allocated) +
                                              " bytes for a message of at most " + std::to_string(max_size));
    if (ec) {
      out.end = ec;
      return out;
    }
    out.messages.push_back(std::move(message));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  input in(data, size);
  const std::size_t max_size = in.take<std::uint16_t>();
  const auto stream = in.rest();

  {
    auto held = socket_holding(stream);
    const outcome expected = model(stream.first(held.sent), max_size);
    require_same(expected,
                 read_all([&](std::error_code& ec) { return d::read_message(held.socket.get(), max_size, 1s, ec); },
                          max_size, "read_message"),
                 "read_message");
  }
  {
    auto held = socket_holding(stream);
    const outcome expected = model(stream.first(held.sent), max_size);
    std::vector<d::unique_fd> fds;
    require_same(expected, read_all([&](std::error_code& ec) {
                   auto message = d::read_message_with_fds(held.socket.get(), max_size, 1, fds, 1s, ec);
                   require(fds.empty(), "read_message_with_fds returned descriptors nobody sent");
                   return message;
                 }, max_size, "read_message_with_fds"),
                 "read_message_with_fds");
  }
  {
    auto held = socket_holding(stream);
    const outcome expected = model(stream.first(held.sent), max_size);
    asio::io_context context;
    asio::local::stream_protocol::socket endpoint(context, asio::local::stream_protocol(), held.socket.release());
    require_same(expected, read_all([&](std::error_code& ec) {
                   d::control_message got;
                   d::async_read_message(endpoint, max_size, [&](std::error_code e, d::control_message message) {
                     ec = e;
                     got = std::move(message);
                   });
                   context.restart();
                   context.run();
                   return got;
                 }, max_size, "async_read_message"),
                 "async_read_message");
  }
  return 0;
}
