// What an asynchronous call made as f(args..., token) is made of: the
// signature it completes with, its completion token (the last argument), and
// its arguments converted to value types now, so that the call does not
// depend on the caller's temporaries (a deferred token starts it later).
// Shared by plugin::async, the manager's and the sandbox's async calls.
#ifndef ISOLATE_DETAIL_ASYNC_ARGUMENTS_HPP
#define ISOLATE_DETAIL_ASYNC_ARGUMENTS_HPP

#include <cstddef>
#include <exception>
#include <tuple>
#include <utility>

namespace isolate::detail {

// The failure, if any, then the result (none for void).
template <class Result>
struct completion_signature {
  using type = void(std::exception_ptr, Result);
};
template <>
struct completion_signature<void> {
  using type = void(std::exception_ptr);
};

// The completion token in std::forward_as_tuple(args..., token).
template <class... ArgsAndToken>
decltype(auto) token_of(std::tuple<ArgsAndToken...>&& all) {
  return std::get<sizeof...(ArgsAndToken) - 1>(std::move(all));
}

// The arguments before it, as Values (one per argument).
template <class... Values, class... ArgsAndToken>
std::tuple<Values...> values_before_token(std::tuple<ArgsAndToken...>&& all) {
  static_assert(sizeof...(Values) + 1 == sizeof...(ArgsAndToken));
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return std::tuple<Values...>(std::get<I>(std::move(all))...);
  }(std::make_index_sequence<sizeof...(Values)>{});
}

}  // namespace isolate::detail

#endif
