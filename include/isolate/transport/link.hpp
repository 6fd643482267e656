// The seam between the typed client (proxy side) and a transport that moves
// frames. A link takes a complete call frame and produces its reply frame,
// either blocking (call) or by completing a callback (call_async).
#ifndef ISOLATE_TRANSPORT_LINK_HPP
#define ISOLATE_TRANSPORT_LINK_HPP

#include "isolate/detail/config.hpp"
#include "isolate/wire/buffer.hpp"

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>

namespace isolate::detail {

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

class link {
 public:
  virtual ~link() = default;
  // Sends the call frame in `request` and blocks until its reply frame is in `reply`.
  // Throws isolate::error when the transport fails.
  virtual void call(wire::buffer& request, wire::buffer& reply) = 0;
  virtual void call_async(wire::buffer request, std::unique_ptr<completion> done) = 0;
  // Largest payload the link carries, in either direction.
  virtual std::size_t max_message_size() const noexcept = 0;
};

}  // namespace isolate::detail

#endif
