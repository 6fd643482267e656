// Moves whole frames between the host and a worker, over the shared-memory
// rings (the fast path) or over a socket (no shared memory). A frame bigger
// than one ring record is streamed as consecutive records. The receiver
// copies every frame out of shared memory before anything parses it, so a
// peer cannot change bytes after they were checked; except that a large
// call (in the worker) or a large reply (in the host's calling thread) may be
// decoded straight from the ring (ring_payload), with an archive that copies
// each value out before checking it.
#ifndef ISOLATE_DETAIL_PROCESS_FRAME_CHANNEL_HPP
#define ISOLATE_DETAIL_PROCESS_FRAME_CHANNEL_HPP

#include "isolate/detail/config.hpp"
#include "isolate/error.hpp"
#include "isolate/detail/process/control_channel.hpp"
#include "isolate/detail/deadline.hpp"
#include "isolate/detail/process/unique_fd.hpp"
#include "isolate/shm/region.hpp"
#include "isolate/shm/ring.hpp"
#include "isolate/detail/link.hpp"
#include "isolate/wire/buffer.hpp"
#include "isolate/wire/frame.hpp"
#include "isolate/wire/stream.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>
#include <mutex>
#include <span>
#include <string>
#include <utility>

namespace isolate::detail {

enum class channel_status { ok, closed, timed_out, corrupted };

// A large frame still in the ring, read record by record while its payload
// is decoded (frame_channel::receive): a call's arguments in the worker, or
// in the host the reply to the call its reading thread made itself. The
// first record, which starts with the frame header, is held until the
// decoding moves past it.
class ring_payload final : public wire::chunk_source {
 public:
  using clock = std::chrono::steady_clock;

  // Takes large call frames (the worker's use).
  ring_payload() = default;
  // Takes the large reply to call `call_id` only (the host's use); the
  // records after the first must arrive before `deadline`.
  ring_payload(std::uint64_t call_id, clock::time_point deadline) noexcept
      : kind_(wire::frame_kind::reply), reply_to_(call_id), deadline_(deadline) {}

  // Whether this frame is one to stream.
  bool wants(const wire::frame_header& header) const noexcept {
    if (header.kind != kind_ || header.size < wire::large_payload) return false;
    return kind_ == wire::frame_kind::call || (header.call_id == reply_to_ && header.service == 0);
  }

  bool active() const noexcept { return reader_ != nullptr; }
  // The header and the first bytes of the payload, in shared memory.
  std::span<const std::byte> first() const noexcept { return first_; }
  // Why the frame could not be read to its end (after end() returned false).
  channel_status failure() const noexcept { return failure_; }
  const char* failure_reason() const noexcept { return failure_reason_; }

  std::span<const std::byte> next() override {
    finish();
    if (left_ == 0) return {};
    std::error_code ec;
    auto record = reader_->read(deadline_, ec);
    if (ec == shm::errc::timed_out) {
      broken(channel_status::timed_out, "the rest of a large frame did not arrive in time");
      throw error(errc::timeout, failure_reason_);
    }
    if (ec == shm::errc::closed) {
      broken(channel_status::closed, "the channel closed while a large frame was arriving");
      throw error(errc::plugin_closed, failure_reason_);
    }
    if (ec) {
      broken(channel_status::corrupted, "the shared-memory ring holds invalid data in the middle of a large frame");
      throw error(errc::protocol_error, failure_reason_);
    }
    holding_ = true;
    if (record.size() > left_) {
      broken(channel_status::corrupted, "a ring record runs past the end of its frame");
      throw error(errc::protocol_error, failure_reason_);
    }
    left_ -= record.size();
    return record;
  }
  void finish() noexcept override {
    if (holding_) reader_->release();
    holding_ = false;
  }
  // Skips the records nobody read (when decoding failed) and lets go of the
  // ring. False when the frame cannot be skipped: the channel is unusable
  // (failure() says how).
  bool end() noexcept {
    try {
      while (failure_ == channel_status::ok && left_ > 0) next();
    } catch (const error&) {
    }
    finish();
    reader_ = nullptr;
    return failure_ == channel_status::ok;
  }

 private:
  friend class frame_channel;
  void begin(shm::ring_reader& reader, std::span<const std::byte> first, std::size_t left) noexcept {
    reader_ = &reader;
    first_ = first;
    left_ = left;
    holding_ = true;
    failure_ = channel_status::ok;
    failure_reason_ = "";
  }
  void broken(channel_status status, const char* reason) noexcept {
    if (failure_ != channel_status::ok) return;
    failure_ = status;
    failure_reason_ = reason;
  }

  wire::frame_kind kind_ = wire::frame_kind::call;
  std::uint64_t reply_to_ = 0;
  clock::time_point deadline_ = clock::time_point::max();
  shm::ring_reader* reader_ = nullptr;
  std::span<const std::byte> first_;
  std::size_t left_ = 0;  // payload bytes in records not read yet
  bool holding_ = false;  // a record is read and not released
  channel_status failure_ = channel_status::ok;
  const char* failure_reason_ = "";
};

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
    incoming_ = std::move(other.incoming_);
    expected_ = std::exchange(other.expected_, 0);
    socket_header_ = other.socket_header_;
    header_got_ = std::exchange(other.header_got_, 0);
    body_got_ = std::exchange(other.body_got_, 0);
    bytes_sent_.store(other.bytes_sent_.exchange(0, std::memory_order_relaxed), std::memory_order_relaxed);
    bytes_received_.store(other.bytes_received_.exchange(0, std::memory_order_relaxed), std::memory_order_relaxed);
    return *this;
  }

  bool uses_shared_memory() const noexcept { return static_cast<bool>(region_); }
  // Whether a thread is sending now (it holds the send lock, and may be
  // waiting for room in the ring). For diagnostics and tests.
  bool sending() const noexcept { return sending_.load(std::memory_order_relaxed); }

  // Bytes of the frames sent and received whole so far, headers included
  // (for telemetry; readable from any thread).
  std::uint64_t bytes_sent() const noexcept { return bytes_sent_.load(std::memory_order_relaxed); }
  std::uint64_t bytes_received() const noexcept { return bytes_received_.load(std::memory_order_relaxed); }

  // Sends one frame. Safe to call from several threads (frames never
  // interleave); waiting for another sender counts against the deadline too.
  channel_status send(std::span<const std::byte> frame, clock::time_point deadline) {
    std::unique_lock lock(send_mutex_, std::defer_lock);
    if (!lock_until(lock, deadline)) return channel_status::timed_out;
    const sending_mark marked(sending_);
    if (!region_) return counted(bytes_sent_, send_socket(frame, deadline), frame.size());
    const std::size_t record = writer_.max_record_size();
    add(bytes_sent_, frame.size());
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

  // Sends a call with a large payload, writing it straight into the ring
  // (gathered into a buffer first over a socket). If the arguments' own
  // serialisation throws, the frame is still completed (with zeros: the
  // receiver answers with an error), so the ring stays in step; `thrown` gets
  // the exception, for the caller once the answer is in.
  channel_status send(const streamed_call& call, std::uint64_t call_id, clock::time_point deadline,
                      std::exception_ptr& thrown) {
    if (!region_) {
      wire::buffer frame;
      try {
        call.encode(frame);
      } catch (...) {
        thrown = std::current_exception();
        wire::begin_frame(frame);
        frame.resize(wire::header_size + call.payload_size());
        std::memset(frame.data() + wire::header_size, 0, call.payload_size());
        wire::finish_frame(frame, wire::frame_kind::call, call.method(), 0);
      }
      wire::set_call_id(frame, call_id);
      return send(frame.bytes(), deadline);
    }
    const wire::frame_header header{static_cast<std::uint32_t>(call.payload_size()), wire::frame_kind::call, 0,
                                    call.method(), call_id};
    return send_streamed(header, deadline, [&](wire::output_archive& archive) { call.write_payload(archive); }, thrown);
  }

  // Sends one frame over the rings, its payload written straight into them
  // by `write(archive)` (header.size bytes). If `write` throws, the frame is
  // still completed (with zeros), so the ring stays in step, and `thrown`
  // gets the exception.
  template <class Write>
  channel_status send_streamed(const wire::frame_header& header, clock::time_point deadline, Write&& write,
                               std::exception_ptr& thrown) {
    std::unique_lock lock(send_mutex_, std::defer_lock);
    if (!lock_until(lock, deadline)) return channel_status::timed_out;
    const sending_mark marked(sending_);
    ring_sink sink(writer_, wire::header_size + header.size, deadline);
    try {
      sink.write(&header, wire::header_size);
      wire::output_archive archive(sink);
      write(archive);
    } catch (const ring_sink::failed&) {
      return status_of(sink.failure());
    } catch (...) {
      thrown = std::current_exception();
    }
    return counted(bytes_sent_, status_of(sink.close()), wire::header_size + header.size);
  }

  // Receives the next frame into `out`. One thread receives at a time.
  // A frame that breaks the format is `corrupted` (the peer is not trusted again).
  // A frame cut short by the deadline is kept: the next receive goes on with it.
  // With `large`, a frame it wants (ring_payload::wants: a large call, or a
  // large reply to one call) is not copied: `large` becomes active and
  // streams it from the ring (`out` is left empty); the caller must end() it
  // before receiving again.
  channel_status receive(wire::buffer& out, clock::time_point deadline, ring_payload* large = nullptr) {
    if (!region_) return receive_socket(out, deadline);
    for (;;) {
      std::error_code ec;
      auto record = reader_.read(deadline, ec);
      if (ec) return status_of(ec);
      if (expected_ == 0) {
        if (record.size() < wire::header_size) return channel_status::corrupted;
        wire::frame_header header;
        std::memcpy(&header, record.data(), wire::header_size);
        const std::size_t expected = wire::header_size + header.size;
        if (expected > max_frame_ || record.size() > expected) return channel_status::corrupted;
        if (large != nullptr && large->wants(header)) {
          out.clear();
          large->begin(reader_, record, expected - record.size());
          add(bytes_received_, expected);
          return channel_status::ok;
        }
        if (record.size() == expected) {  // the usual case: the whole frame in one record
          out.assign(record);  // copied before it is looked at
          reader_.release();
          add(bytes_received_, expected);
          return channel_status::ok;
        }
        incoming_.clear();
        incoming_.reserve(expected);
        expected_ = expected;
      }
      if (record.size() > expected_ - incoming_.size()) return channel_status::corrupted;
      incoming_.append(record.data(), record.size());  // copied before it is looked at
      reader_.release();
      if (incoming_.size() == expected_) return take_incoming(out);
    }
  }

  // The inbound ring, for threads that take turns receiving (reading_turns.hpp); null over a socket.
  shm::ring_reader* inbound_ring() noexcept { return region_ ? &reader_ : nullptr; }

  // In a child of fork(): closes this process's descriptors of the channel
  // and touches nothing else (the rings and socket are the parent's).
  void close_descriptors_after_fork() noexcept {
    region_.close_descriptor();
    socket_.reset();
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
    if (!ec) return channel_status::ok;
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

  // As read_message, resumable: what arrived before the deadline is kept in
  // socket_header_ and incoming_ for the next call.
  channel_status receive_socket(wire::buffer& out, clock::time_point deadline) {
    std::error_code ec;
    if (header_got_ < socket_header_.size()) {
      read_resumable(socket_.get(), socket_header_, header_got_, deadline, ec);
      if (ec) return socket_status(ec);
      const auto [type, length] = decode_control_header(socket_header_);
      // As over rings: a frame has at least its header, and no more than the maximum.
      if (length < wire::header_size || length > max_frame_) return channel_status::corrupted;
      incoming_.clear();
      incoming_.resize(length);
      expected_ = length;
      body_got_ = 0;
    }
    read_resumable(socket_.get(), std::span(incoming_.data(), expected_), body_got_, deadline, ec);
    if (ec) return socket_status(ec);
    header_got_ = 0;
    // The frame's own header must describe the bytes that came, as over rings.
    wire::frame_header header;
    std::memcpy(&header, incoming_.data(), wire::header_size);
    if (wire::header_size + header.size != expected_) return channel_status::corrupted;
    return take_incoming(out);
  }

  // A counter only one thread at a time changes (the sender holding the
  // send lock, or the one receiver): no locked instruction needed.
  static void add(std::atomic<std::uint64_t>& counter, std::uint64_t n) noexcept {
    if constexpr (!ISOLATE_TELEMETRY) return;
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  static channel_status counted(std::atomic<std::uint64_t>& counter, channel_status status, std::uint64_t n) noexcept {
    if (status == channel_status::ok) add(counter, n);
    return status;
  }

  // The frame in incoming_ is whole: hand it over, and start the next one.
  channel_status take_incoming(wire::buffer& out) noexcept {
    add(bytes_received_, incoming_.size());
    std::swap(out, incoming_);
    incoming_.clear();
    expected_ = 0;
    return channel_status::ok;
  }

  // Writes one frame into consecutive ring records as an archive produces it.
  class ring_sink final : public wire::byte_sink {
   public:
    struct failed {};  // the ring failed: failure() says how

    ring_sink(shm::ring_writer& writer, std::size_t frame_size, clock::time_point deadline)
        : writer_(writer), left_(frame_size), deadline_(deadline) {}
    void write(const void* data, std::size_t size) override {
      auto from = static_cast<const std::byte*>(data);
      while (size != 0) {
        if (room_.empty()) {
          if (left_ == 0) return;  // more bytes than announced: the receiver sees a malformed payload
          open_record();
        }
        const std::size_t n = std::min(size, room_.size());
        std::memcpy(room_.data(), from, n);
        room_ = room_.subspan(n);
        from += n;
        size -= n;
      }
    }
    // Completes the frame (zeros where the archive wrote too little); the ring's error, if any.
    std::error_code close() {
      try {
        static constexpr std::byte zeros[256]{};
        while (left_ != 0 || !room_.empty()) {
          if (room_.empty()) open_record();
          const std::size_t n = std::min(room_.size(), sizeof zeros);
          std::memcpy(room_.data(), zeros, n);
          room_ = room_.subspan(n);
        }
      } catch (const failed&) {
        return failure_;
      }
      if (open_) writer_.commit(reserved_);
      open_ = false;
      return failure_;
    }
    std::error_code failure() const noexcept { return failure_; }

   private:
    // Records of this size let the receiver copy one while the next is being
    // written, and stay in the caches the two cores share.
    static constexpr std::size_t record_bytes = std::size_t{64} << 10;

    void open_record() {
      if (open_) writer_.commit(reserved_);
      open_ = false;
      reserved_ = std::min({left_, record_bytes, writer_.max_record_size()});
      room_ = writer_.reserve(reserved_, deadline_, failure_);
      if (failure_) throw failed{};
      open_ = true;
      left_ -= reserved_;
    }

    shm::ring_writer& writer_;
    std::size_t left_;  // bytes of the frame not yet in a record
    clock::time_point deadline_;
    std::span<std::byte> room_;
    std::size_t reserved_ = 0;
    bool open_ = false;
    std::error_code failure_;
  };

  shm::region region_;
  shm::ring_writer writer_;
  shm::ring_reader reader_;
  unique_fd socket_;
  std::size_t max_frame_ = 0;
  // A frame being received (by the one receiving thread), kept across a deadline.
  wire::buffer incoming_;
  std::size_t expected_ = 0;  // its size; 0: none begun
  std::array<std::byte, control_header_size> socket_header_{};
  std::size_t header_got_ = 0, body_got_ = 0;  // over a socket: how much of each has arrived
  std::timed_mutex send_mutex_;  // one frame at a time; timed, so a sender keeps its deadline
  // Set by the sender holding the send lock: plain stores, no locked
  // instruction on the call's path (only that sender writes it).
  std::atomic<bool> sending_{false};
  std::atomic<std::uint64_t> bytes_sent_{0}, bytes_received_{0};  // see add()

  struct sending_mark {
    explicit sending_mark(std::atomic<bool>& flag) noexcept : flag_(flag) { flag_.store(true, std::memory_order_relaxed); }
    ~sending_mark() { flag_.store(false, std::memory_order_relaxed); }
    std::atomic<bool>& flag_;
  };
};

}  // namespace isolate::detail

#endif
