// Passing file descriptors (SCM_RIGHTS) with a small payload over a connected
// Unix stream socket. The receiver treats the peer as hostile: any descriptor
// it did not ask for is closed, and a malformed control message is an error.
#ifndef ISOLATE_DETAIL_PROCESS_FD_PASSING_HPP
#define ISOLATE_DETAIL_PROCESS_FD_PASSING_HPP

#include "isolate/detail/config.hpp"

#include "isolate/detail/process/readiness.hpp"
#include "isolate/detail/process/unique_fd.hpp"
#include "isolate/detail/system_call.hpp"
#include "isolate/detail/throw_error.hpp"

#include <asio/error.hpp>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <span>
#include <system_error>
#include <vector>

#include <sys/socket.h>
#include <cerrno>

namespace isolate::detail {

// The kernel's limit on descriptors in one SCM_RIGHTS message (SCM_MAX_FD).
inline constexpr std::size_t max_passed_fds = 253;


// Linux ≥ 6.5 may attach a pidfd (SCM_PIDFD) when the socket has SO_PASSPIDFD.
inline constexpr int scm_pidfd = 0x04;

inline std::size_t control_space(std::size_t fd_count) noexcept { return CMSG_SPACE(sizeof(int) * fd_count); }


// Sends all of `payload` (at least one byte: a stream socket carries ancillary
// data only with data) with `fds` attached to its first byte. Works whether or
// not the socket is in non-blocking mode.
inline void send_with_fds(int socket, std::span<std::byte const> payload, std::span<int const> fds,
                          std::chrono::milliseconds timeout, std::error_code& ec) {
  ec.clear();
  if (payload.empty() || fds.size() > max_passed_fds) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return;
  }
  auto const deadline = deadline_after(timeout);
  std::vector<char> control;
  if (!fds.empty()) control.resize(control_space(fds.size()));

  std::size_t sent = 0;
  while (sent < payload.size()) {
    iovec iov{const_cast<std::byte*>(payload.data() + sent), payload.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (sent == 0 && !control.empty()) {
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t const n = retry_on_eintr([&] { return ::sendmsg(socket, &msg, MSG_NOSIGNAL | MSG_DONTWAIT); });
    if (n >= 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      ec = last_system_error();
      return;
    }
    if (!wait_ready(socket, POLLOUT, deadline, ec)) return;
  }
}

inline void send_with_fds(int socket, std::span<std::byte const> payload, std::span<int const> fds,
                          std::chrono::milliseconds timeout) {
  std::error_code ec;
  send_with_fds(socket, payload, fds, timeout, ec);
  throw_if_error(ec, "cannot send file descriptors");
}

// Receives exactly payload.size() bytes (at least one) and exactly `fd_count`
// descriptors attached to the first of them; the descriptors are close-on-exec.
// Errors: asio::error::eof if the peer closed, timed_out, or bad_message if
// the peer sent a different number of descriptors, descriptors attached to a
// later byte, another kind of control message, or more than fit (MSG_CTRUNC).
// On any error every received descriptor has been closed; the stream is then
// out of step and should be dropped.
// receive_with_fds_between accepts any count from `min_fds` to `max_fds` (a
// message that may or may not carry one).
inline std::vector<unique_fd> receive_with_fds_between(int socket, std::span<std::byte> payload, std::size_t min_fds,
                                                       std::size_t max_fds, std::chrono::milliseconds timeout,
                                                       std::error_code& ec) {
  ec.clear();
  std::vector<unique_fd> received;
  if (payload.empty() || min_fds > max_fds || max_fds > max_passed_fds) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return received;
  }
  auto const deadline = deadline_after(timeout);
  // Room for one descriptor more than expected, so an excess is seen as
  // such; anything beyond that is discarded by the kernel (MSG_CTRUNC).
  std::vector<char> control(control_space(max_fds + 1));
  bool malformed = false;

  std::size_t got = 0;
  while (got < payload.size()) {
    iovec iov{payload.data() + got, payload.size() - got};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    ssize_t const n = retry_on_eintr([&] { return ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT); });
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        ec = last_system_error();
        received.clear();
        return received;
      }
      if (!wait_ready(socket, POLLIN, deadline, ec)) {
        received.clear();
        return received;
      }
      continue;
    }
    // Take ownership of every descriptor first, so that all are closed on error.
    for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
      bool const carries_fds = cmsg->cmsg_level == SOL_SOCKET &&
                               (cmsg->cmsg_type == SCM_RIGHTS || cmsg->cmsg_type == scm_pidfd);
      if (carries_fds && cmsg->cmsg_len >= CMSG_LEN(0)) {
        std::size_t const count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof fd);
          received.emplace_back(fd);
        }
      }
      // Descriptors may only come with the first byte, and only as SCM_RIGHTS.
      if (!carries_fds || cmsg->cmsg_type != SCM_RIGHTS || got != 0) malformed = true;
    }
    if (msg.msg_flags & MSG_CTRUNC) malformed = true;
    if (n == 0) {
      ec = asio::error::eof;
      received.clear();
      return received;
    }
    got += static_cast<std::size_t>(n);
  }
  if (malformed || received.size() < min_fds || received.size() > max_fds) {
    ec = std::make_error_code(std::errc::bad_message);
    received.clear();
  }
  return received;
}

inline std::vector<unique_fd> receive_with_fds(int socket, std::span<std::byte> payload, std::size_t fd_count,
                                               std::chrono::milliseconds timeout, std::error_code& ec) {
  return receive_with_fds_between(socket, payload, fd_count, fd_count, timeout, ec);
}

inline std::vector<unique_fd> receive_with_fds(int socket, std::span<std::byte> payload, std::size_t fd_count,
                                               std::chrono::milliseconds timeout) {
  std::error_code ec;
  auto fds = receive_with_fds(socket, payload, fd_count, timeout, ec);
  throw_if_error(ec, "cannot receive file descriptors");
  return fds;
}

}  // namespace isolate::detail

#endif
