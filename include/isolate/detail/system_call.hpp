// System calls in one place: the retry on EINTR (kj's KJ_SYSCALL), the
// errno of the call that just failed, as an error_code, and a kernel file
// written whole.
#ifndef ISOLATE_DETAIL_SYSTEM_CALL_HPP
#define ISOLATE_DETAIL_SYSTEM_CALL_HPP

#include "isolate/detail/config.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <system_error>

namespace isolate::detail {

// Calls `call` again while it fails with EINTR (returns -1 and sets errno);
// returns its last result. Not for close(), which must never be retried.
template <class Call>
auto retry_on_eintr(Call&& call) noexcept(noexcept(call())) -> decltype(call()) {
  for (;;) {
    auto result = call();
    if (!(result == -1 && errno == EINTR)) return result;
  }
}

// errno as an error_code, for the call that just failed.
inline std::error_code last_system_error() noexcept { return {errno, std::system_category()}; }

// Writes `text` into the existing file at `path` in one write(), as the
// kernel's files want it (/proc/<pid>/uid_map, a cgroup's memory.max).
inline std::error_code write_whole_file(const char* path, std::string_view text) noexcept {
  const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return last_system_error();
  std::error_code ec;
  if (retry_on_eintr([&] { return ::write(fd, text.data(), text.size()); }) != static_cast<ssize_t>(text.size())) {
    ec = last_system_error();
  }
  ::close(fd);
  return ec;
}

}  // namespace isolate::detail

#endif
