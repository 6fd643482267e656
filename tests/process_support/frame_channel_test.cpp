#include "isolate/detail/process/frame_channel.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include "isolate/detail/codec.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

using namespace std::chrono_literals;
namespace shm = isolate::shm;
namespace wire = isolate::wire;
using isolate::detail::channel_status;
using isolate::detail::frame_channel;
using isolate::detail::ring_payload;
using isolate::detail::unique_fd;
using clock_type = std::chrono::steady_clock;

namespace {

// Small rings, so that most frames span many records: a record holds at most
// capacity / 2 - 8 bytes.
constexpr std::size_t capacity = 4096;
constexpr std::size_t max_record = shm::ring::max_record_size(capacity);
constexpr std::size_t max_message = std::size_t{1} << 20;
// Long enough never to pass on a loaded machine; only a failing test waits for it.
constexpr auto patience = 20s;

clock_type::time_point soon() { return clock_type::now() + patience; }

// A frame of `payload` bytes whose contents depend on `seed`.
wire::buffer make_frame(std::size_t payload, std::uint64_t seed, wire::frame_kind kind = wire::frame_kind::reply) {
  wire::buffer frame;
  wire::begin_frame(frame);
  frame.resize(wire::header_size + payload);
  for (std::size_t i = 0; i < payload; ++i) {
    frame.data()[wire::header_size + i] = static_cast<std::byte>((i * 131 + seed * 7) & 0xff);
  }
  wire::finish_frame(frame, kind, static_cast<std::uint16_t>(seed & 0xffff), seed);
  return frame;
}

bool same_bytes(const wire::buffer& a, const wire::buffer& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

// Both ends of rings in one region, each with its own mapping, as host and
// worker have them; `raw` is a third attachment of the worker's side, for
// tests that write records by hand as a (misbehaving) peer would.
struct ring_pair {
  shm::region memory = shm::region::create(shm::duplex_layout::bytes_needed(capacity), "isolate-frame-channel-test");
  frame_channel host;
  frame_channel worker;

  ring_pair() {
    std::error_code ec;
    shm::duplex_layout::format(memory.bytes(), capacity, ec);
    REQUIRE_FALSE(ec);
    host = frame_channel::over_rings(shm::region::attach(memory.fd(), memory.size()), capacity,
                                     shm::duplex_side::host, {}, max_message);
    worker = frame_channel::over_rings(shm::region::attach(memory.fd(), memory.size()), capacity,
                                       shm::duplex_side::worker, {}, max_message);
  }

  // A raw writer of the worker->host ring (the worker channel must not write meanwhile).
  shm::ring_writer raw_worker_writer() {
    std::error_code ec;
    auto ends = shm::duplex_layout::attach(memory.bytes(), capacity, shm::duplex_side::worker, ec);
    REQUIRE_FALSE(ec);
    return std::move(ends.writer);
  }

  // The published write index of the host->worker ring.
  const std::atomic<std::uint64_t>& host_write_index() const {
    auto* control = reinterpret_cast<shm::detail::ring_control*>(memory.data() + 2 * sizeof(shm::side_state));
    return control->write_index;
  }
};

// Two channels over a connected socket pair.
struct socket_pair {
  frame_channel host;
  frame_channel worker;

  socket_pair() {
    std::error_code ec;
    auto [a, b] = isolate::detail::make_socket_pair(ec);
    REQUIRE_FALSE(ec);
    host = frame_channel::over_socket(std::move(a), max_message);
    worker = frame_channel::over_socket(std::move(b), max_message);
  }
};

// One end as a channel, the other a raw socket this test writes by hand.
struct socket_and_peer {
  frame_channel host;
  unique_fd peer;

  socket_and_peer() {
    std::error_code ec;
    auto [a, b] = isolate::detail::make_socket_pair(ec);
    REQUIRE_FALSE(ec);
    host = frame_channel::over_socket(std::move(a), max_message);
    peer = std::move(b);
  }

  void write_raw(const void* data, std::size_t size) {
    REQUIRE(::send(peer.get(), data, size, MSG_NOSIGNAL) == static_cast<ssize_t>(size));
  }
};

// Frames of these sizes, sent by one thread and received by another: from
// empty, through exactly one record, to many records (the ring holds two).
const std::vector<std::size_t> payload_sizes = {0,
                                                1,
                                                7,
                                                100,
                                                max_record - wire::header_size,
                                                max_record - wire::header_size + 1,
                                                max_record,
                                                3 * max_record + 5,
                                                wire::large_payload + 3,
                                                100'000,
                                                max_message};

void round_trip_many_sizes(frame_channel& sender, frame_channel& receiver) {
  std::atomic<bool> sent_all{true};
  std::thread producer([&] {
    for (std::size_t i = 0; i < payload_sizes.size(); ++i) {
      const auto frame = make_frame(payload_sizes[i], i);
      if (sender.send(frame.bytes(), soon()) != channel_status::ok) sent_all = false;
    }
  });
  for (std::size_t i = 0; i < payload_sizes.size(); ++i) {
    CAPTURE(payload_sizes[i]);
    wire::buffer out;
    REQUIRE(receiver.receive(out, soon()) == channel_status::ok);
    CHECK(same_bytes(out, make_frame(payload_sizes[i], i)));
  }
  producer.join();
  CHECK(sent_all);
}

}  // namespace

TEST_CASE("over rings, frames of every size arrive whole and in order, both ways") {
  ring_pair rings;
  CHECK(rings.host.uses_shared_memory());
  round_trip_many_sizes(rings.host, rings.worker);
  round_trip_many_sizes(rings.worker, rings.host);
}

TEST_CASE("over a socket, frames of every size arrive whole and in order, both ways") {
  socket_pair sockets;
  CHECK_FALSE(sockets.host.uses_shared_memory());
  round_trip_many_sizes(sockets.host, sockets.worker);
  round_trip_many_sizes(sockets.worker, sockets.host);
}

TEST_CASE("frames of several senders never interleave") {
  ring_pair rings;
  constexpr int senders = 3, frames_each = 20;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int s = 0; s < senders; ++s) {
    threads.emplace_back([&, s] {
      for (int i = 0; i < frames_each; ++i) {
        const std::uint64_t seed = static_cast<std::uint64_t>(s * 1000 + i);
        const auto frame = make_frame(2 * max_record + static_cast<std::size_t>(i), seed);
        if (rings.worker.send(frame.bytes(), soon()) != channel_status::ok) ++failures;
      }
    });
  }
  for (int n = 0; n < senders * frames_each; ++n) {
    wire::buffer out;
    REQUIRE(rings.host.receive(out, soon()) == channel_status::ok);
    const auto header = wire::parse_header(out.bytes(), max_message);
    const auto i = static_cast<std::size_t>(header.call_id % 1000);
    CHECK(same_bytes(out, make_frame(2 * max_record + i, header.call_id)));
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
}

TEST_CASE("over rings, a receive cut short by its deadline is resumed by the next, the frame intact") {
  ring_pair rings;
  auto writer = rings.raw_worker_writer();
  const auto frame = make_frame(2 * max_record + 40, 7);  // three records
  const auto bytes = frame.bytes();

  // The first record, header included, arrives; the rest does not, yet.
  std::error_code ec;
  REQUIRE(writer.try_write(bytes.first(max_record), {}, ec));
  wire::buffer out;
  const auto started = clock_type::now();
  CHECK(rings.host.receive(out, clock_type::now() + 50ms) == channel_status::timed_out);
  CHECK(clock_type::now() - started >= 50ms);

  // The second record; the deadline passes again before the third.
  REQUIRE(writer.try_write(bytes.subspan(max_record, max_record), {}, ec));
  CHECK(rings.host.receive(out, clock_type::now() + 20ms) == channel_status::timed_out);

  REQUIRE(writer.try_write(bytes.subspan(2 * max_record), {}, ec));
  REQUIRE(rings.host.receive(out, soon()) == channel_status::ok);
  CHECK(same_bytes(out, frame));

  // And the channel is in step for the next frame.
  const auto next = make_frame(10, 8);
  REQUIRE(writer.try_write(next.bytes(), {}, ec));
  REQUIRE(rings.host.receive(out, soon()) == channel_status::ok);
  CHECK(same_bytes(out, next));
}

TEST_CASE("over a socket, a receive cut short by its deadline is resumed by the next, the frame intact") {
  socket_and_peer ends;
  const auto frame = make_frame(5000, 9);
  const auto header = isolate::detail::encode_control_header(0, static_cast<std::uint32_t>(frame.size()));
  wire::buffer out;

  SUBCASE("cut inside the header") {
    ends.write_raw(header.data(), 3);
    CHECK(ends.host.receive(out, clock_type::now() + 30ms) == channel_status::timed_out);
    ends.write_raw(header.data() + 3, header.size() - 3);
    ends.write_raw(frame.data(), 1000);
  }
  SUBCASE("cut inside the frame") {
    ends.write_raw(header.data(), header.size());
    ends.write_raw(frame.data(), 1000);
  }
  CHECK(ends.host.receive(out, clock_type::now() + 30ms) == channel_status::timed_out);
  ends.write_raw(frame.data() + 1000, 2000);
  CHECK(ends.host.receive(out, clock_type::now() + 30ms) == channel_status::timed_out);
  ends.write_raw(frame.data() + 3000, frame.size() - 3000);
  REQUIRE(ends.host.receive(out, soon()) == channel_status::ok);
  CHECK(same_bytes(out, frame));

  const auto next = make_frame(3, 10);
  const auto next_header = isolate::detail::encode_control_header(0, static_cast<std::uint32_t>(next.size()));
  ends.write_raw(next_header.data(), next_header.size());
  ends.write_raw(next.data(), next.size());
  REQUIRE(ends.host.receive(out, soon()) == channel_status::ok);
  CHECK(same_bytes(out, next));
}

TEST_CASE("a sender blocked on a full ring holds the lock; another sender's deadline still holds") {
  ring_pair rings;
  // Nobody reads yet: the first sender fills the ring (two records) and waits for room.
  const auto big = make_frame(5 * max_record, 1);
  channel_status first = channel_status::corrupted;
  std::thread blocked([&] { first = rings.host.send(big.bytes(), clock_type::time_point::max()); });
  // The ring is full once the writer has published two whole records.
  const auto give_up = soon();
  while (rings.host_write_index().load(std::memory_order_acquire) < capacity && clock_type::now() < give_up) {
    std::this_thread::yield();
  }
  REQUIRE(rings.host_write_index().load() == capacity);

  const auto small = make_frame(8, 2);
  const auto started = clock_type::now();
  CHECK(rings.host.send(small.bytes(), clock_type::now() + 100ms) == channel_status::timed_out);
  const auto waited = clock_type::now() - started;
  CHECK(waited >= 100ms);
  CHECK(waited < patience);  // the first sender waits forever: the second did not wait for it
  CHECK(rings.host.sending());  // the first sender, still waiting for room

  // Reading lets the first sender finish; the timed-out frame was never sent.
  wire::buffer out;
  REQUIRE(rings.worker.receive(out, soon()) == channel_status::ok);
  CHECK(same_bytes(out, big));
  blocked.join();
  CHECK(first == channel_status::ok);
  CHECK(rings.worker.receive(out, clock_type::now() + 10ms) == channel_status::timed_out);
  REQUIRE(rings.host.send(small.bytes(), soon()) == channel_status::ok);
  REQUIRE(rings.worker.receive(out, soon()) == channel_status::ok);
  CHECK(same_bytes(out, small));
}

TEST_CASE("over rings, a frame header that breaks the format is corrupted") {
  ring_pair rings;
  auto writer = rings.raw_worker_writer();
  std::error_code ec;
  wire::buffer out;

  SUBCASE("a record shorter than a header") {
    const std::byte few[4]{};
    REQUIRE(writer.try_write(few, {}, ec));
  }
  SUBCASE("a frame bigger than the maximum message size") {
    auto frame = make_frame(16, 3);
    const std::uint32_t huge = max_message + 1;
    std::memcpy(frame.data() + offsetof(wire::frame_header, size), &huge, sizeof huge);
    REQUIRE(writer.try_write(frame.bytes(), {}, ec));
  }
  SUBCASE("a record longer than the frame its header announces") {
    auto frame = make_frame(16, 4);
    const std::uint32_t shorter = 8;
    std::memcpy(frame.data() + offsetof(wire::frame_header, size), &shorter, sizeof shorter);
    REQUIRE(writer.try_write(frame.bytes(), {}, ec));
  }
  SUBCASE("a continuation record running past the frame") {
    const auto frame = make_frame(max_record, 5);  // two records: max_record, then 16 bytes
    REQUIRE(writer.try_write(frame.bytes().first(max_record), {}, ec));
    REQUIRE(writer.try_write(frame.bytes().subspan(max_record), std::as_bytes(std::span("too long")), ec));
  }
  CHECK(rings.host.receive(out, soon()) == channel_status::corrupted);
}

TEST_CASE("over a socket, a frame longer than the maximum is corrupted") {
  socket_and_peer ends;
  const auto header =
      isolate::detail::encode_control_header(0, static_cast<std::uint32_t>(wire::header_size + max_message + 1));
  ends.write_raw(header.data(), header.size());
  wire::buffer out;
  CHECK(ends.host.receive(out, soon()) == channel_status::corrupted);
}

// Found by fuzz/frame_decoder: a socket frame shorter than its header was
// returned as a frame, where the rings call the same bytes corrupted.
TEST_CASE("over a socket, a frame that breaks the format is corrupted, as over rings") {
  socket_and_peer ends;
  SUBCASE("a frame shorter than a header") {
    const auto header = isolate::detail::encode_control_header(0, 4);
    const std::byte few[4]{};
    ends.write_raw(header.data(), header.size());
    ends.write_raw(few, sizeof few);
  }
  SUBCASE("a frame whose header announces another size than came") {
    auto frame = make_frame(16, 4);
    const std::uint32_t shorter = 8;
    std::memcpy(frame.data() + offsetof(wire::frame_header, size), &shorter, sizeof shorter);
    const auto header = isolate::detail::encode_control_header(0, static_cast<std::uint32_t>(frame.size()));
    ends.write_raw(header.data(), header.size());
    ends.write_raw(frame.data(), frame.size());
  }
  wire::buffer out;
  CHECK(ends.host.receive(out, soon()) == channel_status::corrupted);
}

TEST_CASE("over a socket, a peer that goes away closes the channel") {
  socket_and_peer ends;
  ends.peer.reset();
  wire::buffer out;
  CHECK(ends.host.receive(out, soon()) == channel_status::closed);
  CHECK(ends.host.send(make_frame(4, 1).bytes(), soon()) == channel_status::closed);
}

TEST_CASE("close() wakes a blocked receive, and every later one fails") {
  auto check = [](frame_channel& channel) {
    channel_status status = channel_status::ok;
    std::thread receiver([&] {
      wire::buffer out;
      status = channel.receive(out, clock_type::time_point::max());
    });
    channel.close();
    receiver.join();
    CHECK(status == channel_status::closed);
    wire::buffer out;
    CHECK(channel.receive(out, clock_type::time_point::max()) == channel_status::closed);
  };
  SUBCASE("rings") {
    ring_pair rings;
    check(rings.host);
  }
  SUBCASE("socket") {
    socket_pair sockets;
    check(sockets.host);
  }
}

TEST_CASE("close() wakes a send blocked on a full ring") {
  ring_pair rings;
  channel_status status = channel_status::ok;
  std::thread sender([&] { status = rings.host.send(make_frame(5 * max_record, 1).bytes(), clock_type::time_point::max()); });
  rings.host.close();
  sender.join();
  CHECK(status == channel_status::closed);
}

TEST_CASE("a large call is streamed from the ring, and the channel stays in step") {
  ring_pair rings;
  const std::string text(3 * wire::large_payload + 11, 'q');
  const std::uint16_t method = 3;
  const std::size_t payload = isolate::detail::payload_size(text);
  const isolate::detail::streamed_arguments<std::string> call(method, payload, text);

  std::exception_ptr thrown;
  channel_status sent = channel_status::corrupted;
  std::thread sender([&] { sent = rings.worker.send(call, 42, soon(), thrown); });

  wire::buffer out;
  ring_payload large;
  REQUIRE(rings.host.receive(out, soon(), &large) == channel_status::ok);
  REQUIRE(large.active());
  CHECK(out.size() == 0);
  wire::frame_header header;
  std::memcpy(&header, large.first().data(), wire::header_size);
  CHECK(header.kind == wire::frame_kind::call);
  CHECK(header.method == method);
  CHECK(header.call_id == 42);
  CHECK(header.size == payload);
  std::string received;
  isolate::detail::decode_values(wire::inbound_payload{large.first().subspan(wire::header_size), payload, &large},
                                 received);
  CHECK(received == text);
  CHECK(large.end());
  CHECK_FALSE(large.active());
  sender.join();
  CHECK(sent == channel_status::ok);
  CHECK_FALSE(thrown);

  // A frame after it arrives as usual.
  const auto next = make_frame(100, 6);
  REQUIRE(rings.worker.send(next.bytes(), soon()) == channel_status::ok);
  REQUIRE(rings.host.receive(out, soon(), &large) == channel_status::ok);
  CHECK_FALSE(large.active());
  CHECK(same_bytes(out, next));
}

TEST_CASE("a large call nobody decodes is skipped by end()") {
  ring_pair rings;
  const std::string text(2 * wire::large_payload, 'z');
  const std::size_t payload = isolate::detail::payload_size(text);
  const isolate::detail::streamed_arguments<std::string> call(1, payload, text);
  std::exception_ptr thrown;
  channel_status sent = channel_status::corrupted;
  std::thread sender([&] { sent = rings.worker.send(call, 1, soon(), thrown); });
  wire::buffer out;
  ring_payload large;
  REQUIRE(rings.host.receive(out, soon(), &large) == channel_status::ok);
  REQUIRE(large.active());
  CHECK(large.end());
  sender.join();
  CHECK(sent == channel_status::ok);
  const auto next = make_frame(5, 2);
  REQUIRE(rings.worker.send(next.bytes(), soon()) == channel_status::ok);
  REQUIRE(rings.host.receive(out, soon(), &large) == channel_status::ok);
  CHECK(same_bytes(out, next));
}
