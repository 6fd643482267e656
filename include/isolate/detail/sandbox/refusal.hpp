// A system call the sandbox refused, as a violation: its kind by what the
// call reaches for, its details ("socket(AF_INET SOCK_STREAM)") and the
// answer given ("refused (EACCES)"). Shared by process plugins and
// sandboxed functions.
#ifndef ISOLATE_DETAIL_SANDBOX_REFUSAL_HPP
#define ISOLATE_DETAIL_SANDBOX_REFUSAL_HPP

#include "isolate/detail/sandbox/seccomp_notify.hpp"
#include "isolate/telemetry.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>

namespace isolate::detail::sandbox {

inline violation_kind violation_kind_of(const refused_call& refused) {
  static constexpr std::string_view network_calls[] = {"socket", "socketpair", "connect", "bind", "sendto",
                                                       "sendmsg", "listen", "accept", "accept4"};
  static constexpr std::string_view file_calls[] = {"open", "openat", "openat2", "creat"};
  const auto is = [&](const auto& names) {
    return std::find(std::begin(names), std::end(names), refused.syscall) != std::end(names);
  };
  if (is(network_calls)) return violation_kind::network;
  if (is(file_calls) || is(seccomp_detail::metadata_change_names)) return violation_kind::filesystem;
  return violation_kind::permission;
}

inline std::string refusal_details(const refused_call& refused) {
  return fmt::format("{}({})", refused.syscall, refused.argument);
}

inline std::string refusal_action(const refused_call& refused) {
  const char* name = ::strerrorname_np(refused.error);
  return fmt::format("refused ({})", name != nullptr ? name : std::to_string(refused.error));
}

}  // namespace isolate::detail::sandbox

#endif
