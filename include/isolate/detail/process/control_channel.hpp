// Length-prefixed messages over the Unix stream socket that links the host
// and a worker. A frame is an 8-byte header, type then body length (both
// uint32 in native byte order: both ends run on the same machine), then the
// body. Lengths come from the peer and are checked before anything is allocated.
#ifndef ISOLATE_DETAIL_PROCESS_CONTROL_CHANNEL_HPP
#define ISOLATE_DETAIL_PROCESS_CONTROL_CHANNEL_HPP

#include "isolate/detail/config.hpp"

#include "isolate/detail/process/fd_passing.hpp"
#include "isolate/detail/process/readiness.hpp"
#include "isolate/detail/process/unique_fd.hpp"
#include "isolate/detail/system_call.hpp"
#include "isolate/detail/throw_error.hpp"

#include <asio/async_result.hpp>
#include <asio/buffer.hpp>
#include <asio/compose.hpp>
#include <asio/error.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/read.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

#include <sys/socket.h>
#include <sys/uio.h>
#include <cerrno>

namespace isolate::detail {

struct control_message {
  std::uint32_t type = 0;
  std::vector<std::byte> body;
};

inline constexpr std::size_t control_header_size = 8;


inline std::array<std::byte, control_header_size> encode_control_header(std::uint32_t type, std::uint32_t length) noexcept {
  std::array<std::byte, control_header_size> header;
  std::memcpy(header.data(), &type, 4);
  std::memcpy(header.data() + 4, &length, 4);
  return header;
}

inline std::pair<std::uint32_t, std::uint32_t> decode_control_header(
    std::span<std::byte const, control_header_size> header) noexcept {
  std::uint32_t type;
  std::uint32_t length;
  std::memcpy(&type, header.data(), 4);
  std::memcpy(&length, header.data() + 4, 4);
  return {type, length};
}

// Reads into out[got..] until it is full (ec clear) or the deadline passes
// (timed_out; `got` says how far it came, and a later call goes on from
// there); eof if the peer closes first.
inline void read_resumable(int fd, std::span<std::byte> out, std::size_t& got, deadline_clock::time_point deadline,
                           std::error_code& ec) {
  while (got < out.size()) {
    ssize_t const n = retry_on_eintr([&] { return ::recv(fd, out.data() + got, out.size() - got, MSG_DONTWAIT); });
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (n == 0) {
      ec = asio::error::eof;
      return;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait_ready(fd, POLLIN, deadline, ec)) return;
    } else {
      ec = last_system_error();
      return;
    }
  }
  ec.clear();
}

// Reads exactly out.size() bytes; eof if the peer closes first.
inline void read_exact(int fd, std::span<std::byte> out, deadline_clock::time_point deadline, std::error_code& ec) {
  std::size_t got = 0;
  read_resumable(fd, out, got, deadline, ec);
}

// A connected pair of close-on-exec Unix stream sockets: one end for the host,
// the other to hand to the worker through spawn_options::inherit_fds.
// (asio::local::connect_pair does not set close-on-exec.)
inline std::pair<unique_fd, unique_fd> make_socket_pair(std::error_code& ec) noexcept {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) {
    ec.assign(errno, std::system_category());
    return {};
  }
  ec.clear();
  return {unique_fd(fds[0]), unique_fd(fds[1])};
}

// Writes one frame, whole, before the deadline. On a timeout the frame may be
// half written: the channel is then out of step and should be dropped.
inline void write_message(int socket, std::uint32_t type, std::span<std::byte const> body,
                          std::chrono::milliseconds timeout, std::error_code& ec) {
  if (body.size() > std::numeric_limits<std::uint32_t>::max()) {
    ec = std::make_error_code(std::errc::message_size);
    return;
  }
  auto const deadline = deadline_after(timeout);
  auto const header = encode_control_header(type, static_cast<std::uint32_t>(body.size()));
  std::size_t const total = header.size() + body.size();
  std::size_t sent = 0;
  while (sent < total) {
    iovec iov[2];
    int count = 0;
    if (sent < header.size()) iov[count++] = {const_cast<std::byte*>(header.data() + sent), header.size() - sent};
    std::size_t const body_sent = sent > header.size() ? sent - header.size() : 0;
    if (body_sent < body.size())
      iov[count++] = {const_cast<std::byte*>(body.data() + body_sent), body.size() - body_sent};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(count);
    ssize_t const n = retry_on_eintr([&] { return ::sendmsg(socket, &msg, MSG_NOSIGNAL | MSG_DONTWAIT); });
    if (n >= 0) {
      sent += static_cast<std::size_t>(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait_ready(socket, POLLOUT, deadline, ec)) return;
    } else {
      ec = last_system_error();
      return;
    }
  }
  ec.clear();
}

// Reads one frame before the deadline. A body longer than `max_size` fails
// with message_size without reading or allocating it; a peer that closes
// gives asio::error::eof; a silent one timed_out.
inline control_message read_message(int socket, std::size_t max_size, std::chrono::milliseconds timeout,
                                    std::error_code& ec) {
  auto const deadline = deadline_after(timeout);
  std::array<std::byte, control_header_size> header;
  read_exact(socket, header, deadline, ec);
  if (ec) return {};
  auto const [type, length] = decode_control_header(header);
  if (length > max_size) {
    ec = std::make_error_code(std::errc::message_size);
    return {};
  }
  control_message message{type, std::vector<std::byte>(length)};
  read_exact(socket, message.body, deadline, ec);
  if (ec) return {};
  return message;
}

inline void write_message(int socket, std::uint32_t type, std::span<std::byte const> body,
                          std::chrono::milliseconds timeout) {
  std::error_code ec;
  write_message(socket, type, body, timeout, ec);
  throw_if_error(ec, "cannot write to the control channel");
}

inline control_message read_message(int socket, std::size_t max_size, std::chrono::milliseconds timeout) {
  std::error_code ec;
  auto message = read_message(socket, max_size, timeout, ec);
  throw_if_error(ec, "cannot read from the control channel");
  return message;
}

// The same on an Asio socket (its native handle). Do not mix with an
// asynchronous read or write in flight in the same direction.
inline void write_message(asio::local::stream_protocol::socket& socket, std::uint32_t type,
                          std::span<std::byte const> body, std::chrono::milliseconds timeout, std::error_code& ec) {
  write_message(socket.native_handle(), type, body, timeout, ec);
}

inline void write_message(asio::local::stream_protocol::socket& socket, std::uint32_t type,
                          std::span<std::byte const> body, std::chrono::milliseconds timeout) {
  std::error_code ec;
  write_message(socket, type, body, timeout, ec);
  throw_if_error(ec, "cannot write to the control channel");
}

inline control_message read_message(asio::local::stream_protocol::socket& socket, std::size_t max_size,
                                    std::chrono::milliseconds timeout, std::error_code& ec) {
  return read_message(socket.native_handle(), max_size, timeout, ec);
}

inline control_message read_message(asio::local::stream_protocol::socket& socket, std::size_t max_size,
                                    std::chrono::milliseconds timeout) {
  std::error_code ec;
  auto message = read_message(socket, max_size, timeout, ec);
  throw_if_error(ec, "cannot read from the control channel");
  return message;
}

// Writes one frame with `fds` attached to its first byte (SCM_RIGHTS), whole,
// before the deadline; the same caveat on a timeout as write_message.
inline void write_message_with_fds(int socket, std::uint32_t type, std::span<std::byte const> body,
                                   std::span<int const> fds, std::chrono::milliseconds timeout, std::error_code& ec) {
  if (body.size() > std::numeric_limits<std::uint32_t>::max() - control_header_size) {
    ec = std::make_error_code(std::errc::message_size);
    return;
  }
  auto const header = encode_control_header(type, static_cast<std::uint32_t>(body.size()));
  std::vector<std::byte> frame(header.begin(), header.end());
  frame.insert(frame.end(), body.begin(), body.end());
  send_with_fds(socket, frame, fds, timeout, ec);
}

// Reads one frame and the descriptors (at most `max_fds`) attached to its
// first byte into `fds`; descriptors attached anywhere else, or too many, are
// closed and make it bad_message. Otherwise as read_message.
inline control_message read_message_with_fds(int socket, std::size_t max_size, std::size_t max_fds,
                                             std::vector<unique_fd>& fds, std::chrono::milliseconds timeout,
                                             std::error_code& ec) {
  auto const deadline = deadline_after(timeout);
  std::array<std::byte, control_header_size> header;
  fds = receive_with_fds_between(socket, header, 0, max_fds, timeout, ec);
  if (ec) return {};
  auto const [type, length] = decode_control_header(header);
  if (length > max_size) {
    fds.clear();
    ec = std::make_error_code(std::errc::message_size);
    return {};
  }
  control_message message{type, std::vector<std::byte>(length)};
  read_exact(socket, message.body, deadline, ec);
  if (ec) {
    fds.clear();
    return {};
  }
  return message;
}


struct read_message_op {
  asio::local::stream_protocol::socket& socket;
  std::size_t max_size;
  // On the heap: the buffers must not move while a read is in flight, and
  // this object is moved from one intermediate handler to the next.
  struct frame {
    std::array<std::byte, control_header_size> header;
    control_message message;
  };
  std::unique_ptr<frame> buffers;
  enum { starting, reading_header, reading_body } phase = starting;

  template <typename Self>
  void operator()(Self& self, std::error_code ec = {}, std::size_t = 0) {
    switch (phase) {
      case starting:
        phase = reading_header;
        buffers = std::make_unique<frame>();
        asio::async_read(socket, asio::buffer(buffers->header), std::move(self));
        return;
      case reading_header: {
        if (ec) return self.complete(ec, control_message{});
        auto const [type, length] = decode_control_header(buffers->header);
        if (length > max_size) return self.complete(std::make_error_code(std::errc::message_size), control_message{});
        buffers->message.type = type;
        if (length == 0) return self.complete(ec, std::move(buffers->message));
        buffers->message.body.resize(length);
        phase = reading_body;
        asio::async_read(socket, asio::buffer(buffers->message.body), std::move(self));
        return;
      }
      case reading_body:
        if (ec) return self.complete(ec, control_message{});
        return self.complete(ec, std::move(buffers->message));
    }
  }
};


// Reads one frame asynchronously; completes with (error_code, control_message).
// Meant to stay outstanding on the host, so a dead worker shows up at once as
// asio::error::eof (or connection_reset). Cancel with socket.cancel() or a
// bound cancellation slot.
template <typename CompletionToken>
auto async_read_message(asio::local::stream_protocol::socket& socket, std::size_t max_size, CompletionToken&& token) {
  return asio::async_compose<CompletionToken, void(std::error_code, control_message)>(
      read_message_op{socket, max_size, nullptr, read_message_op::starting}, token,
      socket);
}

}  // namespace isolate::detail

#endif
