// A function of the host program, named so that a process forked from the
// host can run it: the address of the function and of the trampoline that
// decodes its arguments, calls it and encodes its result, each with the
// object file it lies in. The fork server (fork_server.hpp) is a fork of the
// host made early, so the code it maps is the host's at that time; it runs a
// function only if both addresses lie, in its own map, in the same file at the
// same base as in the host's (a library loaded after it started is not there).
#ifndef ISOLATE_DETAIL_SANDBOX_FUNCTION_CALL_HPP
#define ISOLATE_DETAIL_SANDBOX_FUNCTION_CALL_HPP

#include "isolate/detail/codec.hpp"
#include "isolate/error.hpp"
#include "isolate/wire/archive.hpp"
#include "isolate/wire/buffer.hpp"
#include "isolate/wire/exception_codec.hpp"

#include <dlfcn.h>

#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace isolate::detail::sandbox {

// Where a piece of code lies: its address, and the file and base of the object holding it.
struct code_address {
  std::uint64_t address = 0;
  std::string object;
  std::uint64_t base = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(address, object, base);
  }
};

inline code_address locate_code(const void* code) {
  Dl_info info{};
  if (code == nullptr || ::dladdr(code, &info) == 0 || info.dli_fbase == nullptr) {
    throw error(errc::unsupported, "the function to run in a sandbox is not in any loaded object");
  }
  return {reinterpret_cast<std::uintptr_t>(code), info.dli_fname != nullptr ? info.dli_fname : "",
          reinterpret_cast<std::uintptr_t>(info.dli_fbase)};
}

// Whether `code`, as the host located it, is the same code in this process.
inline bool same_code_here(const code_address& code) {
  Dl_info info{};
  const auto* here = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(code.address));
  return ::dladdr(here, &info) != 0 && info.dli_fname != nullptr && code.object == info.dli_fname &&
         reinterpret_cast<std::uintptr_t>(info.dli_fbase) == code.base;
}

// Decodes the arguments, calls the function, encodes its result; what it
// throws goes through to the caller (the runner encodes it).
using trampoline = void (*)(std::uintptr_t function, std::span<const std::byte> arguments, wire::buffer& result);

template <class R, class... Args>
void call_function(std::uintptr_t function, std::span<const std::byte> arguments, wire::buffer& result) {
  std::tuple<std::decay_t<Args>...> values;
  std::apply([&](auto&... v) { decode_values(arguments, v...); }, values);
  auto* f = reinterpret_cast<R (*)(Args...)>(function);
  if constexpr (std::is_void_v<R>) {
    std::apply(f, std::move(values));
  } else {
    const R value = std::apply(f, std::move(values));
    encode_values(result, value);
  }
}

// A callable object whose state Cereal serializes (the "captures" that
// cross): it is decoded in front of the arguments, then called. The
// trampoline alone names it; `function` is unused.
template <class T, class R, class... Args>
void call_object(std::uintptr_t /*function*/, std::span<const std::byte> arguments, wire::buffer& result) {
  T object{};
  std::tuple<std::decay_t<Args>...> values;
  std::apply([&](auto&... v) { decode_values(arguments, object, v...); }, values);
  if constexpr (std::is_void_v<R>) {
    std::apply(object, std::move(values));
  } else {
    const R value = std::apply(object, std::move(values));
    encode_values(result, value);
  }
}

// The signature of a callable object's (non-template) call operator.
template <class Method>
struct call_operator;
template <class T, class R, class... Args>
struct call_operator<R (T::*)(Args...) const> {
  using result = R;
  using params = std::tuple<Args...>;
};
template <class T, class R, class... Args>
struct call_operator<R (T::*)(Args...) const noexcept> : call_operator<R (T::*)(Args...) const> {};
template <class T, class R, class... Args>
struct call_operator<R (T::*)(Args...)> : call_operator<R (T::*)(Args...) const> {};
template <class T, class R, class... Args>
struct call_operator<R (T::*)(Args...) noexcept> : call_operator<R (T::*)(Args...) const> {};

// A callable object to be run, as the sandbox holds it.
template <class F>
struct object_call {
  F object;
};

// The result and parameters of what a sandbox runs: a function pointer, or a callable object.
template <class Callable>
struct callable_signature;
template <class R, class... Args>
struct callable_signature<R (*)(Args...)> {
  using result = R;
  using params = std::tuple<Args...>;
};
template <class F>
struct callable_signature<object_call<F>> : call_operator<decltype(&F::operator())> {};

// What a function may take and return: values, never pointers or references to the host's memory.
template <class T>
inline constexpr bool sandbox_value = !std::is_pointer_v<std::decay_t<T>> && !std::is_member_pointer_v<std::decay_t<T>>;

}  // namespace isolate::detail::sandbox

#endif
