// The seam between the typed client (proxy side) and a transport that moves
// frames. A link takes a complete call frame and produces its reply frame,
// either blocking (call) or by completing a callback (call_async).
#ifndef ISOLATE_DETAIL_LINK_HPP
#define ISOLATE_DETAIL_LINK_HPP

#include "isolate/detail/config.hpp"
#include "isolate/wire/archive.hpp"
#include "isolate/wire/buffer.hpp"
#include "isolate/wire/frame.hpp"

#include <cstdint>

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <string>

namespace isolate::detail {

class buffer_resolver;   // shared_buffer.hpp
class capability_table;  // capability_table.hpp

// The timeout of the calls this thread makes now, instead of the plugin's
// default (set by plugin::with_timeout for one call).
inline thread_local std::optional<std::chrono::milliseconds> next_call_timeout;

// Receives the outcome of an asynchronous call, exactly once, on a transport thread.
class completion {
 public:
  virtual ~completion() = default;
  // `failure` is set when no reply could be had (the plugin died, the call timed out...);
  // otherwise `reply` holds the reply frame.
  virtual void complete(std::exception_ptr failure, wire::buffer& reply) noexcept = 0;
};

// A call with a large payload, which the transport writes straight into its
// channel instead of gathering it into a buffer first (see wire/stream.hpp).
class streamed_call {
 public:
  streamed_call(std::uint16_t method, std::size_t payload_size) noexcept : method_(method), size_(payload_size) {}
  std::uint16_t method() const noexcept { return method_; }
  std::size_t payload_size() const noexcept { return size_; }
  // Writes exactly payload_size() bytes.
  virtual void write_payload(wire::output_archive& archive) const = 0;
  // Gathers the whole call frame into `frame` (call id 0).
  void encode(wire::buffer& frame) const {
    wire::begin_frame(frame);
    frame.reserve(wire::header_size + size_);
    wire::output_archive archive(frame);
    write_payload(archive);
    wire::finish_frame(frame, wire::frame_kind::call, method_, 0);
  }

 protected:
  ~streamed_call() = default;

 private:
  std::uint16_t method_;
  std::size_t size_;
};

// Decodes a large reply where the transport receives it (the process
// transport's ring) instead of the transport gathering it into a buffer
// first: one pass over its bytes fewer, and no fresh buffer to fault in.
class reply_decoder {
 public:
  // Reads the reply's payload (it may arrive in pieces). May throw what
  // decoding throws; the transport then skips the rest of the frame.
  virtual void decode(const wire::inbound_payload& payload) = 0;

 protected:
  ~reply_decoder() = default;
};

class link {
 public:
  virtual ~link() = default;
  // Sends the call frame in `request` and blocks until its reply frame is in `reply`.
  // Throws isolate::error when the transport fails.
  virtual void call(wire::buffer& request, wire::buffer& reply) = 0;
  // As call(), for a large payload. By default it is gathered into a buffer.
  virtual void call_streamed(const streamed_call& request, wire::buffer& reply) {
    wire::buffer frame;
    request.encode(frame);
    call(frame, reply);
  }
  // As call() and call_streamed(), with a way to decode the reply where it
  // arrives: a transport may call `decoder` (once, on this thread, before it
  // returns) instead of filling `reply`, which is then left empty. By
  // default the reply is gathered into `reply`.
  virtual void call_decoding(wire::buffer& request, wire::buffer& reply, reply_decoder& /*decoder*/) {
    call(request, reply);
  }
  virtual void call_streamed_decoding(const streamed_call& request, wire::buffer& reply, reply_decoder& /*decoder*/) {
    call_streamed(request, reply);
  }
  virtual void call_async(wire::buffer request, std::unique_ptr<completion> done) = 0;
  // Largest payload the link carries, in either direction.
  virtual std::size_t max_message_size() const noexcept = 0;
  // Where the shared_buffers named by a reply are found; null: in this
  // process, for links that do not leave it.
  virtual buffer_resolver* shared_buffers() noexcept { return nullptr; }
  // A reply of this link did not decode (protocol_error): a link to another
  // process stops trusting the peer that sent it.
  virtual void reply_undecodable(const std::string& /*why*/) noexcept {}
  // Where the isolate::capability values of its calls and replies are
  // exported to and imported from; null: the link carries none.
  virtual capability_table* capabilities() noexcept { return nullptr; }
};

}  // namespace isolate::detail

#endif
