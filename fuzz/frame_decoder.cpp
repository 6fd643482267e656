// Fuzzes how frames are taken apart: wire::parse and parse_header on
// arbitrary bytes, frame_channel::receive reassembling frames from arbitrary
// socket bytes or arbitrary ring records, and the error frames' payload
// (wire::rethrow_encoded) of every frame that parses.
//
// Input: the mode (u8: 0 parse, 1 socket, 2 rings), the largest payload
// accepted (u16), the ring capacity (u8: 64 << (n % 6) bytes), then for
// parse the bytes, for a socket the bytes the peer sends, for rings the
// records the peer writes, each a length (u16) and its bytes.
//
// Promises checked: parse accepts only a known kind whose size matches the
// bytes and the limit; receive returns only whole frames (a header and as
// many payload bytes as it says, within the limit), each the next bytes the
// peer sent, and stops (corrupted, closed or timed out) without waiting past
// its deadline; an error frame's payload decodes within its allocation
// budget to an exception (isolate::error, remote_error or a standard type).
#include "allocation_meter.hpp"

#include "support.hpp"

#include <isolate/detail/codec.hpp>
#include <isolate/detail/process/frame_channel.hpp>
#include <isolate/wire/exception_codec.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include <sys/socket.h>

namespace {

using namespace isolate_fuzz;
namespace wire = isolate::wire;
namespace d = isolate::detail;
namespace shm = isolate::shm;

// An error frame's payload must become an exception, within its budget.
void check_error_payload(std::span<const std::byte> payload) {
  const std::size_t before = isolate_fuzz::bytes_requested.load();
  try {
    d::decoding([&] { wire::rethrow_encoded(payload); });
  } catch (const cereal::Exception& e) {
    broken(std::string("a Cereal exception left an error frame's decoding: ") + e.what());
  } catch (const std::exception&) {
    // isolate::error (malformed), remote_error, or a registered type: all expected.
  } catch (...) {
    broken("an error frame's payload became something not derived from std::exception");
  }
  require_within_budget(isolate_fuzz::bytes_requested.load() - before, payload.size(), "rethrow_encoded");
}

void check_parse(std::span<const std::byte> bytes, std::size_t max_payload) {
  wire::frame_view frame;
  try {
    frame = wire::parse(bytes, max_payload);
  } catch (const isolate::error& e) {
    require(e.code() == isolate::errc::protocol_error || e.code() == isolate::errc::message_too_large,
            std::string("wire::parse failed with an unexpected code: ") + e.what());
    return;
  }
  require(wire::is_known(frame.header.kind), "wire::parse accepted an unknown kind");
  require(frame.header.size == frame.payload.size() && frame.payload.size() <= max_payload &&
              frame.payload.data() == bytes.data() + wire::header_size,
          "wire::parse accepted a frame whose size does not match its bytes or its limit");
  if (frame.header.kind == wire::frame_kind::error) check_error_payload(frame.payload);
}

// Receives every frame the channel has, checking each against `sent` (what
// the peer sent, frame bytes only) from `cursor` on; `framing` is the bytes
// before each frame that are not part of it (the socket's 8-byte header).
void receive_all(d::frame_channel& channel, std::span<const std::byte> sent, std::size_t framing,
                 std::size_t max_payload) {
  std::size_t cursor = 0;
  for (int frames = 0; frames < 4096; ++frames) {
    wire::buffer frame;
    // Everything the peer sends is there already: waiting could find no more.
    const auto deadline = d::frame_channel::clock::now();
    const auto status = channel.receive(frame, deadline);
    if (status != d::channel_status::ok) return;
    require(frame.size() >= wire::header_size, "receive returned a frame shorter than its header");
    wire::frame_header header;
    std::memcpy(&header, frame.data(), wire::header_size);
    require(header.size == frame.size() - wire::header_size, "receive returned a frame its header does not describe");
    require(header.size <= max_payload, "receive returned a frame over the limit");
    cursor += framing;
    require(cursor + frame.size() <= sent.size() &&
                std::equal(frame.data(), frame.data() + frame.size(), sent.begin() + static_cast<std::ptrdiff_t>(cursor)),
            "receive returned bytes other than the next the peer sent");
    cursor += frame.size();
    check_parse(frame.bytes(), max_payload);
  }
  broken("receive returned more frames than the peer could have sent");
}

void fuzz_socket(std::span<const std::byte> stream, std::size_t max_payload) {
  std::error_code ec;
  auto [writer, reader] = d::make_socket_pair(ec);
  require(!ec, "cannot make a socket pair: " + ec.message());
  std::size_t sent = 0;
  while (sent < stream.size()) {
    const ssize_t n = ::send(writer.get(), stream.data() + sent, stream.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0) break;  // the socket's buffer is full: fuzz what fit
    sent += static_cast<std::size_t>(n);
  }
  ::shutdown(writer.get(), SHUT_WR);
  auto channel = d::frame_channel::over_socket(std::move(reader), max_payload);
  receive_all(channel, stream.first(sent), d::control_header_size, max_payload);
}

void fuzz_rings(input& in, std::size_t capacity, std::size_t max_payload) {
  auto region = shm::region::create(shm::duplex_layout::bytes_needed(capacity), "isolate-fuzz");
  std::error_code ec;
  shm::duplex_layout::format(region.bytes(), capacity, ec);
  require(!ec, "cannot format the rings: " + ec.message());
  auto host = shm::duplex_layout::attach(region.bytes(), capacity, shm::duplex_side::host, ec);
  require(!ec, "cannot attach the host's end: " + ec.message());
  std::vector<std::byte> sent;
  while (!in.empty()) {
    const auto record = in.take_bytes(in.take<std::uint16_t>() % (host.writer.max_record_size() + 1));
    if (!host.writer.try_write({}, record, ec)) break;  // the ring is full
    sent.insert(sent.end(), record.begin(), record.end());
  }
  shm::wait_policy no_spin{std::chrono::nanoseconds{0}, false};
  auto channel = d::frame_channel::over_rings(std::move(region), capacity, shm::duplex_side::worker, no_spin,
                                              max_payload);
  receive_all(channel, sent, 0, max_payload);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  input in(data, size);
  const auto mode = in.take<std::uint8_t>() % 3;
  const std::size_t max_payload = in.take<std::uint16_t>();
  const std::size_t capacity = std::size_t{64} << (in.take<std::uint8_t>() % 6);
  switch (mode) {
    case 0: {
      const auto bytes = in.rest();
      try {
        const auto header = wire::parse_header(bytes, max_payload);
        require(wire::is_known(header.kind) && header.size <= max_payload &&
                    header.size >= bytes.size() - wire::header_size,
                "wire::parse_header accepted a header that breaks its checks");
      } catch (const isolate::error&) {
      }
      check_parse(bytes, max_payload);
      break;
    }
    case 1: fuzz_socket(in.rest(), max_payload); break;
    case 2: fuzz_rings(in, capacity, max_payload); break;
  }
  return 0;
}
