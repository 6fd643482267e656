// Large payloads are not gathered into one buffer: the sender's archive writes
// them straight into the channel (a byte_sink), and the receiver's archive
// reads them piece by piece from it (a chunk_source). Each byte is then copied
// once on each side, and the two copies overlap in time.
#ifndef ISOLATE_WIRE_STREAM_HPP
#define ISOLATE_WIRE_STREAM_HPP

#include "isolate/detail/config.hpp"

#include <cstddef>
#include <span>

namespace isolate::wire {

struct frame_header;   // wire/frame.hpp
class output_archive;  // wire/archive.hpp

// Payloads of at least this many bytes go straight into (and out of) the
// channel; smaller ones are cheaper to gather into a buffer first.
inline constexpr std::size_t large_payload = std::size_t{16} << 10;

// Where an output archive writes, when not into a buffer.
class byte_sink {
 public:
  virtual void write(const void* data, std::size_t size) = 0;
  // True for a sink that only counts: what is written is not sent anywhere.
  virtual bool counts_only() const noexcept { return false; }

 protected:
  ~byte_sink() = default;
};

// Counts what an archive would write: the size of a payload, before writing it.
class counting_sink final : public byte_sink {
 public:
  void write(const void*, std::size_t size) override { bytes_ += size; }
  bool counts_only() const noexcept override { return true; }
  std::size_t bytes() const noexcept { return bytes_; }

 private:
  std::size_t bytes_ = 0;
};

// The rest of a payload that arrives in pieces. next() gives back the piece
// it returned before (which is then no longer readable) and returns the
// following one, or an empty span when there is none; it throws isolate::error
// when the channel fails. finish() gives back the last piece.
class chunk_source {
 public:
  virtual std::span<const std::byte> next() = 0;
  virtual void finish() noexcept = 0;

 protected:
  ~chunk_source() = default;
};

// Where a plugin's stub may send a large result straight into the channel
// instead of gathering it into its reply buffer (the worker's ring). Called
// at most once per call, on the thread that runs it.
class reply_stream {
 public:
  // Sends one frame: `header`, then the header.size payload bytes that
  // `write(archive, value)` writes. False when the channel failed.
  virtual bool send(const frame_header& header, void (*write)(output_archive& archive, const void* value),
                    const void* value) = 0;

 protected:
  ~reply_stream() = default;
};

// A payload being received: `first` holds its first bytes; when `rest` is set,
// the remaining `size - first.size()` bytes come from it.
struct inbound_payload {
  std::span<const std::byte> first;
  std::size_t size = 0;
  chunk_source* rest = nullptr;
};

}  // namespace isolate::wire

#endif
