// What the process_support tests share: a connected socket pair, starting
// child_helper with a control channel on its fd 3, and counting this
// process's open descriptors.
#ifndef ISOLATE_TESTS_PROCESS_SUPPORT_CHILD_FIXTURE_HPP
#define ISOLATE_TESTS_PROCESS_SUPPORT_CHILD_FIXTURE_HPP

#include "isolate/detail/process/child.hpp"
#include "isolate/detail/process/control_channel.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <dirent.h>

namespace isolate_test {

using namespace isolate::detail;
using namespace std::chrono_literals;

inline constexpr char const* helper_path = ISOLATE_TEST_CHILD_HELPER;
inline constexpr auto patience = std::chrono::milliseconds(10'000);

inline std::span<std::byte const> bytes_of(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

inline std::string text_of(std::span<std::byte const> b) {
  return std::string(reinterpret_cast<char const*>(b.data()), b.size());
}

struct socket_pair {
  unique_fd a;
  unique_fd b;
  socket_pair() {
    std::error_code ec;
    std::tie(a, b) = make_socket_pair(ec);
    REQUIRE(!ec);
  }
};

// A helper child whose fd 3 is the far end of `channel`.
struct connected_child {
  unique_fd channel;
  child_process child;
};

inline connected_child spawn_connected(std::vector<std::string> args) {
  std::error_code ec;
  auto [host_end, child_end] = make_socket_pair(ec);
  if (ec) throw std::system_error(ec, "socketpair");
  spawn_options options{helper_path, std::move(args), {{child_end.get(), 3}}, {}};
  child_process child = child_process::spawn(options);
  return {std::move(host_end), std::move(child)};
}

inline int open_fd_count() {
  int count = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  while (dirent* entry = ::readdir(dir))
    if (entry->d_name[0] != '.') ++count;
  ::closedir(dir);
  return count - 1;  // the directory's own fd
}

}  // namespace isolate_test

#endif
