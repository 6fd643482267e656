// System calls in one place: the retry on EINTR (kj's KJ_SYSCALL) and the
// errno of the call that just failed, as an error_code.
#ifndef ISOLATE_DETAIL_SYSTEM_CALL_HPP
#define ISOLATE_DETAIL_SYSTEM_CALL_HPP

#include "isolate/detail/config.hpp"

#include <cerrno>
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

}  // namespace isolate::detail

#endif
