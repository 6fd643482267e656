// A worker program that completes the handshake correctly and then breaks
// the protocol on purpose, in the way named by the plugin path's file name
// (the host passes the path through; nothing is loaded):
//
//   serve           answers add(int, int) correctly (the baseline)
//   flood-events    on the first call, sends events to host service 1
//                   without pause (each costs the host more than the worker,
//                   so the ring never runs dry); the call is never answered
//   deaf            reads nothing after the handshake
//   exit-zero       exits with status 0 on the first call, unasked
//   close-channel   closes its channel on the first call, and lives on
//   garbage-reply   answers every call with a reply that does not decode
//   huge-reply      answers the first call with a frame header announcing
//                   the largest payload allowed, then nothing
//   torn-reply      answers the first call with a large reply whose second
//                   ring record runs past the size its header announced
//   big-control     on the first call, sends a control message larger than
//                   any the host reads, and does not answer
//   deaf-control    serves calls but never reads its control socket
//   silent          closes its control socket on hello, then sleeps
//   amplify         answers every call with a claim of 4 Mi strings in 4 MiB:
//                   decoded naively, 128 MiB of std::string made up front
//   deep            answers every call with a tree nested 100,000 deep
//   account-host    on the first call, sends host service 1 an event marked
//                   as an accounted call (only the host may ask for
//                   accounting), and does not answer
//   lifecycle-host  on the first call, sends host service 1 an event marked
//                   as a lifecycle frame (only the host runs on_load, on_stop),
//                   and does not answer
//   object-forge    on the first call, calls a host object (object_call) by
//                   an id the host never handed it, and does not answer
//   local-capability answers every call with a capability written as the
//                   host's own in-process form: a raw pointer
//   descriptors-lie on the first call, tells the host on its control socket
//                   that it holds more descriptors than its limit, and does
//                   not answer
//   tasks-lie       the same, of its tasks (processes and threads)
//   memory-lie      the same: allocations refused at a memory limit the
//                   host never set
//   unknown-control on the first call, sends a control message of a type
//                   the protocol does not have, and does not answer
//   doorbell-flood  rings the host's doorbell on its control socket without
//                   pause for as long as it lives, and answers every call
//   bell-storm      from the first call on, wakes the host's futex words in
//                   the rings without pause (resetting them between the
//                   host's store and its sleep) and scribbles both sides'
//                   side_state words; answers every call after 400 ms of it
//   (serve, too, answers an accounted call without the cost it asked for)
#include <isolate/detail/process/control_channel.hpp>
#include <isolate/detail/process/fd_passing.hpp>
#include <isolate/detail/process/frame_channel.hpp>
#include <isolate/detail/process/handshake.hpp>
#include <isolate/shm/futex.hpp>
#include <isolate/shm/region.hpp>
#include <isolate/shm/ring.hpp>
#include <isolate/wire/frame.hpp>

#include "hardy.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <thread>
#include <vector>

namespace {

using namespace isolate;
using namespace isolate::detail;
using clock_type = std::chrono::steady_clock;

[[noreturn]] void sleep_forever() {
  for (;;) ::pause();
}

// Spins rather than sleeps when the ring is full: a flood then refills the
// ring the moment the host frees a record, so it never runs dry.
frame_channel attach(const hello_message& hello, unique_fd fd) {
  if (!hello.shared_memory) return frame_channel::over_socket(std::move(fd), hello.max_message_size);
  auto region = shm::region::attach(fd.get(), shm::duplex_layout::bytes_needed(hello.ring_capacity));
  shm::wait_policy eager;
  eager.max_spin = std::chrono::seconds(1);
  eager.adaptive = false;
  return frame_channel::over_rings(std::move(region), hello.ring_capacity, shm::duplex_side::worker, eager,
                                   hello.max_message_size);
}

// The futex words and side_state lines of the rings in `region`, woken and
// scribbled over without pause, for as long as the worker lives.
void storm_bells(const shm::region& region, std::size_t capacity) {
  std::thread([&region, capacity] {
    std::byte* const base = region.data();
    auto* const sides = reinterpret_cast<shm::side_state*>(base);  // host's, then the worker's
    auto control = [&](int ring) {
      return reinterpret_cast<shm::detail::ring_control*>(base + 2 * sizeof(shm::side_state) +
                                                         ring * shm::ring::bytes_needed(capacity));
    };
    auto& reply_bell = control(1)->data_bell;  // the host sleeps here for a reply
    auto& room_bell = control(0)->space_bell;  // and here for room in its calls' ring
    for (std::uint32_t i = 0;; ++i) {
      for (auto* bell : {&reply_bell, &room_bell}) {
        bell->store(i % 2, std::memory_order_relaxed);
        shm::futex_wake(*bell);
      }
      for (int side = 0; side < 2; ++side) {
        sides[side].sleeping.store(i % 3 == 0 ? 1 : 0, std::memory_order_relaxed);
        sides[side].cpu.store(i, std::memory_order_relaxed);
      }
    }
  }).detach();
}

// A frame of `kind` answering `call`, with `payload`.
wire::buffer frame_of(wire::frame_kind kind, const wire::frame_header& call, std::span<const std::byte> payload,
                      std::uint8_t service = 0) {
  wire::buffer frame;
  wire::begin_frame(frame);
  frame.append(payload.data(), payload.size());
  wire::finish_frame(frame, kind, call.method, call.call_id, service);
  return frame;
}

wire::buffer sum_reply(const wire::buffer& call) {
  const auto view = wire::parse(call.bytes(), 1 << 20);
  int a = 0, b = 0;
  if (view.payload.size() == 8) {
    std::memcpy(&a, view.payload.data(), 4);
    std::memcpy(&b, view.payload.data() + 4, 4);
  }
  const int sum = a + b;
  return frame_of(wire::frame_kind::reply, view.header, std::as_bytes(std::span(&sum, 1)));
}

// An event to host service 1, method 0, carrying one string (Cereal: size, bytes).
wire::buffer note_event() {
  const std::string text(32 * 1024, 'f');
  const std::uint64_t size = text.size();
  wire::buffer payload;
  payload.append(&size, sizeof size);
  payload.append(text.data(), text.size());
  return frame_of(wire::frame_kind::event, wire::frame_header{}, payload.bytes(), 1);
}

}  // namespace

int main(int argc, char** argv) {
  int control = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--isolate-control-fd=")) control = std::atoi(arg.substr(21).data());
  }
  if (control < 0) return 2;
  ::signal(SIGPIPE, SIG_IGN);
  std::error_code ec;
  auto message = read_message(control, 64 * 1024, std::chrono::seconds(30), ec);
  if (ec) return 3;
  const auto hello = decode_message<hello_message>(message.body);
  const std::string mode = std::filesystem::path(hello.plugin_path).filename().string();
  if (mode == "silent") {
    ::close(control);
    sleep_forever();
  }
  std::byte mark{};
  auto fds = receive_with_fds(control, std::span<std::byte>(&mark, 1), 1, std::chrono::seconds(30), ec);
  if (ec || fds.empty()) return 3;
  shm::region spare_view;  // a second mapping of the rings, for bell-storm
  if (mode == "bell-storm" && hello.shared_memory) {
    spare_view = shm::region::attach(fds.front().get(), shm::duplex_layout::bytes_needed(hello.ring_capacity));
  }
  auto channel = attach(hello, std::move(fds.front()));
  write_message(control, static_cast<std::uint32_t>(control_type::limits_applied), encode_message(applied_message{}),
                std::chrono::seconds(5), ec);
  if (ec) return 3;
  write_message(control, static_cast<std::uint32_t>(control_type::ready), encode_message(ready_message{}),
                std::chrono::seconds(5), ec);
  if (ec) return 3;

  if (mode == "deaf") sleep_forever();
  // Every mode but deaf-control drains the control socket, as the real worker does.
  if (mode != "deaf-control") {
    std::thread([control] {
      for (;;) {
        std::error_code read_error;
        std::vector<unique_fd> passed;
        read_message_with_fds(control, 1 << 20, 1, passed, std::chrono::milliseconds::max(), read_error);
        if (read_error) std::_Exit(0);
      }
    }).detach();
  }

  if (mode == "doorbell-flood") {
    std::thread([control] {
      for (std::error_code flood_error; !flood_error;) {
        write_message(control, static_cast<std::uint32_t>(control_type::doorbell), {}, std::chrono::seconds(5),
                      flood_error);
      }
    }).detach();
  }

  const auto forever = clock_type::time_point::max();
  bool storming = false;  // bell-storm: started at the first call
  wire::buffer call;
  while (channel.receive(call, forever) == channel_status::ok) {
    if (mode == "unknown-control") {
      write_message(control, 99, {}, std::chrono::seconds(5), ec);
      sleep_forever();
    }
    if (mode == "exit-zero") std::_Exit(0);
    if (mode == "close-channel") {
      channel.close();
      sleep_forever();
    }
    if (mode == "big-control") {
      const std::vector<std::byte> body(64 * 1024);
      write_message(control, static_cast<std::uint32_t>(control_type::doorbell), body, std::chrono::seconds(5), ec);
      sleep_forever();
    }
    if (mode == "garbage-reply") {
      const std::byte three[3]{};
      const auto view = wire::parse(call.bytes(), hello.max_message_size);
      channel.send(frame_of(wire::frame_kind::reply, view.header, three).bytes(), forever);
      continue;
    }
    if (mode == "amplify" || mode == "deep") {
      const auto view = wire::parse(call.bytes(), hello.max_message_size);
      wire::buffer payload;
      if (mode == "amplify") {
        const std::uint64_t count = std::uint64_t{1} << 22;  // no more than the bytes that follow
        payload.append(&count, sizeof count);
        const std::vector<std::byte> rest(count);
        payload.append(rest.data(), rest.size());
      } else {
        const std::uint64_t one = 1, none = 0;
        for (int i = 0; i < 100'000; ++i) payload.append(&one, sizeof one);
        payload.append(&none, sizeof none);
      }
      channel.send(frame_of(wire::frame_kind::reply, view.header, payload.bytes()).bytes(), forever);
      continue;
    }
    if (mode == "huge-reply") {
      wire::frame_header header{};
      std::memcpy(&header, call.data(), wire::header_size);
      header.size = static_cast<std::uint32_t>(hello.max_message_size);
      header.kind = wire::frame_kind::reply;
      channel.send(std::as_bytes(std::span(&header, 1)), forever);
      sleep_forever();
    }
    if (mode == "torn-reply") {
      wire::frame_header header{};
      std::memcpy(&header, call.data(), wire::header_size);
      header.kind = wire::frame_kind::reply;
      header.size = static_cast<std::uint32_t>(2 * wire::large_payload);
      channel.send(std::as_bytes(std::span(&header, 1)), forever);  // a record of the header alone
      const std::vector<std::byte> more(4 * wire::large_payload);    // then one of twice what is left
      channel.send(more, forever);
      sleep_forever();
    }
    if (mode == "account-host") {
      auto event = note_event();
      event.data()[offsetof(wire::frame_header, kind)] = static_cast<std::byte>(wire::frame_kind::accounted_call);
      channel.send(event.bytes(), forever);
      sleep_forever();
    }
    if (mode == "lifecycle-host") {
      auto event = note_event();
      event.data()[offsetof(wire::frame_header, kind)] = static_cast<std::byte>(wire::frame_kind::lifecycle);
      channel.send(event.bytes(), forever);
      sleep_forever();
    }
    if (mode == "descriptors-lie" || mode == "tasks-lie" || mode == "memory-lie") {
      const auto type = mode == "tasks-lie"    ? control_type::tasks_full
                        : mode == "memory-lie" ? control_type::memory_refused
                                               : control_type::descriptors_full;
      write_message(control, static_cast<std::uint32_t>(type), encode_message(exhausted_message{1000, 10}),
                    std::chrono::seconds(5), ec);
      sleep_forever();
    }
    if (mode == "object-forge") {
      const std::uint64_t id = 0x1234'5678'9abc'def0ull;
      wire::buffer forged;
      wire::begin_frame(forged);
      forged.append(&id, sizeof id);
      wire::finish_frame(forged, wire::frame_kind::object_call, 0, 77);
      channel.send(forged.bytes(), forever);
      sleep_forever();
    }
    if (mode == "local-capability") {
      // Cereal's bytes of an isolate::capability: tag 2 (in-process), a
      // pointer the host would adopt as a std::shared_ptr*, the fingerprint.
      const auto view = wire::parse(call.bytes(), hello.max_message_size);
      wire::buffer payload;
      const std::uint8_t tag = 2;
      const std::uint64_t pointer = 0xdead'beef'0000ull;
      const std::uint64_t fingerprint = hardening_test::notes::isolate_meta::fingerprint;
      payload.append(&tag, 1);
      payload.append(&pointer, sizeof pointer);
      payload.append(&fingerprint, sizeof fingerprint);
      channel.send(frame_of(wire::frame_kind::reply, view.header, payload.bytes()).bytes(), forever);
      continue;
    }
    if (mode == "bell-storm") {
      if (!std::exchange(storming, true)) storm_bells(spare_view, hello.ring_capacity);
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
    }
    if (mode == "flood-events") {
      const auto event = note_event();
      for (;;) channel.send(event.bytes(), forever);
    }
    channel.send(sum_reply(call).bytes(), forever);
  }
  return 0;
}
