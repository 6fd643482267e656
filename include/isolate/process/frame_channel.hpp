// Moves whole frames between the host and a worker, over the shared-memory
// rings (the fast path) or over a socket (no shared memory). A frame bigger
// than one ring record is streamed as consecutive records; the receiver
// copies every frame out of shared memory before anything parses it, so a
// peer cannot change bytes after they were checked.
#ifndef ISOLATE_PROCESS_FRAME_CHANNEL_HPP
#define ISOLATE_PROCESS_FRAME_CHANNEL_HPP

#include "isolate/detail/config.hpp"
#include "isolate/error.hpp"
#include "isolate/process/control_channel.hpp"
#include "isolate/process/unique_fd.hpp"
#include "isolate/shm/region.hpp"
#include "isolate/shm/ring.hpp"
#include "isolate/wire/buffer.hpp"
#include "isolate/wire/frame.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <span>
#include <string>

namespace isolate::detail {

enum class channel_status { ok, closed, timed_out, corrupted };

class frame_channel {
 public:
  using clock = std::chrono::steady_clock;

  frame_channel() = default;

  // Rings in `region`, laid out by shm::duplex_layout; `side` is which end we are.
  static frame_channel over_rings(shm::region region, std::size_t capacity, shm::duplex_side side,
                                  shm::wait_policy policy, std::size_t max_message_size) {
    std::error_code ec;
    auto ends = shm::duplex_layout::attach(region.bytes(), capacity, side, ec, policy);
    if (ec) throw error(errc::protocol_error, "cannot attach the shared-memory rings: " + ec.message());
    frame_channel channel;
    channel.region_ = std::move(region);
    channel.writer_ = std::move(ends.writer);
    channel.reader_ = std::move(ends.reader);
    channel.max_frame_ = wire::header_size + max_message_size;
    return channel;
  }

  static frame_channel over_socket(unique_fd socket, std::size_t max_message_size) {
    frame_channel channel;
    channel.socket_ = std::move(socket);
    channel.max_frame_ = wire::header_size + max_message_size;
    return channel;
  }

  frame_channel(frame_channel&& other) noexcept { *this = std::move(other); }
  frame_channel& operator=(frame_channel&& other) noexcept {
    region_ = std::move(other.region_);
    writer_ = std::move(other.writer_);
    reader_ = std::move(other.reader_);
    socket_ = std::move(other.socket_);
    max_frame_ = other.max_frame_;
    return *this;
  }

  bool uses_shared_memory() const noexcept { return static_cast<bool>(region_); }

  // Sends one frame. Safe to call from several threads (frames never interleave).
  channel_status send(std::span<const std::byte> frame, clock::time_point deadline) {
    std::lock_guard lock(send_mutex_);
    if (!region_) return send_socket(frame, deadline);
    const std::size_t record = writer_.max_record_size();
    do {
      const std::size_t chunk = std::min(frame.size(), record);
      std::error_code ec;
      auto span = writer_.reserve(chunk, deadline, ec);
      if (ec) return status_of(ec);
      std::memcpy(span.data(), frame.data(), chunk);
      writer_.commit(chunk);
      frame = frame.subspan(chunk);
    } while (!frame.empty());
    return channel_status::ok;
  }

  // Receives the next frame into `out`. One thread receives at a time.
  // A frame that breaks the format is `corrupted` (the peer is not trusted again).
  channel_status receive(wire::buffer& out, clock::time_point deadline) {
    if (!region_) return receive_socket(out, deadline);
    out.clear();
    std::size_t expected = 0;
    for (;;) {
      std::error_code ec;
      auto record = reader_.read(deadline, ec);
      if (ec) return status_of(ec);
      out.append(record.data(), record.size());  // copied before it is looked at
      reader_.release();
      if (expected == 0) {
        if (out.size() < wire::header_size) return channel_status::corrupted;
        std::uint32_t payload = 0;
        std::memcpy(&payload, out.data(), sizeof payload);
        expected = wire::header_size + payload;
        if (expected > max_frame_) return channel_status::corrupted;
      }
      if (out.size() == expected) return channel_status::ok;
      if (out.size() > expected) return channel_status::corrupted;
    }
  }

  // Wakes and fails every blocked send/receive, now and later. Any thread.
  void close() noexcept {
    if (region_) {
      writer_.close();
      reader_.close();
    } else if (socket_) {
      ::shutdown(socket_.get(), SHUT_RDWR);
    }
  }

 private:
  static channel_status status_of(std::error_code ec) {
    if (ec == shm::errc::timed_out) return channel_status::timed_out;
    if (ec == shm::errc::closed) return channel_status::closed;
    return channel_status::corrupted;
  }

  static channel_status socket_status(std::error_code ec) {
    if (ec == std::errc::timed_out) return channel_status::timed_out;
    if (ec == std::errc::message_size) return channel_status::corrupted;
    return channel_status::closed;
  }

  channel_status send_socket(std::span<const std::byte> frame, clock::time_point deadline) {
    std::error_code ec;
    write_message(socket_.get(), 0, frame, time_left(deadline), ec);
    return ec ? socket_status(ec) : channel_status::ok;
  }

  channel_status receive_socket(wire::buffer& out, clock::time_point deadline) {
    std::error_code ec;
    auto message = read_message(socket_.get(), max_frame_, time_left(deadline), ec);
    if (ec) return socket_status(ec);
    out.assign(message.body);
    return channel_status::ok;
  }

  shm::region region_;
  shm::ring_writer writer_;
  shm::ring_reader reader_;
  unique_fd socket_;
  std::size_t max_frame_ = 0;
  std::mutex send_mutex_;
};

}  // namespace isolate::detail

#endif
