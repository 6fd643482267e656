// An owned file descriptor: closed once, by its last owner.
#ifndef ISOLATE_DETAIL_PROCESS_UNIQUE_FD_HPP
#define ISOLATE_DETAIL_PROCESS_UNIQUE_FD_HPP

#include "isolate/detail/config.hpp"

#include <system_error>
#include <utility>

#include <fcntl.h>
#include <unistd.h>
#include <cerrno>

namespace isolate::detail {

class unique_fd {
 public:
  unique_fd() noexcept = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  unique_fd(unique_fd const&) = delete;
  unique_fd& operator=(unique_fd const&) = delete;
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }

  // close() is not retried on EINTR: on Linux the descriptor is gone either way.
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// A close-on-exec duplicate numbered at least `lowest`.
inline unique_fd duplicate_fd(int fd, std::error_code& ec, int lowest = 0) noexcept {
  int const copy = ::fcntl(fd, F_DUPFD_CLOEXEC, lowest);
  if (copy < 0) {
    ec.assign(errno, std::system_category());
    return {};
  }
  ec.clear();
  return unique_fd(copy);
}

// A close-on-exec pipe: (read end, write end).
inline std::pair<unique_fd, unique_fd> make_pipe(std::error_code& ec) noexcept {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    ec.assign(errno, std::system_category());
    return {};
  }
  ec.clear();
  return {unique_fd(fds[0]), unique_fd(fds[1])};
}

}  // namespace isolate::detail

#endif
