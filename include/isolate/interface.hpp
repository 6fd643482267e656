// ISOLATE_INTERFACE: declare an interface once; get the abstract class, its
// method table and fingerprint, a proxy that sends calls and (with
// detail/stub.hpp) a stub that dispatches them.
//
//   ISOLATE_INTERFACE(calculator,
//       (int, add, (int, int)),
//       (std::string, greet, (std::string const&)),
//       (void, ping, ()));
//
// Each method is (return type, name, (parameter types...)). A type with a comma
// in it is written in parentheses: ((std::map<int, int>), lookup, ((std::pair<int, int>))).
// Limits: ISOLATE_MAX_METHODS (32) methods, ISOLATE_MAX_PARAMS (16) parameters.
// Parameters are taken by value or by const reference; every parameter and
// return type must be default-constructible and serializable with Cereal.
//
// The macro captures only names and signatures; everything else is templates
// reading `calculator::isolate_meta` (Boost.Describe's approach): no
// registries, no RTTI.
#ifndef ISOLATE_INTERFACE_HPP
#define ISOLATE_INTERFACE_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/preprocessor.hpp"
#include "isolate/wire/archive.hpp"
#include "isolate/wire/types.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>
#include <tuple>
#include <type_traits>

namespace isolate {

namespace detail {

struct method_entry {
  std::string_view name;
  std::string_view signature;  // as spelled in the declaration, e.g. "int(int, int)"
};

template <class Method>
struct method_traits;

template <class Class, class Result, class... Params>
struct method_traits<Result (Class::*)(Params...)> {
  using interface_type = Class;
  using result_type = Result;
  using params = std::tuple<Params...>;
  // What the receiving side decodes the arguments into.
  using values = std::tuple<std::decay_t<Params>...>;
};

template <class T>
inline constexpr bool is_passable_param = !std::is_pointer_v<std::remove_cvref_t<T>> &&
                                          (!std::is_lvalue_reference_v<T> || std::is_const_v<std::remove_reference_t<T>>);

template <class T>
inline constexpr bool is_wire_type =
    std::is_default_constructible_v<T> &&
    cereal::traits::is_output_serializable<T, wire::output_archive>::value &&
    cereal::traits::is_input_serializable<T, wire::input_archive>::value;

template <class Method>
struct method_checks;

template <class Class, class Result, class... Params>
struct method_checks<Result (Class::*)(Params...)> {
  static constexpr bool params_passable = (is_passable_param<Params> && ...);
  static constexpr bool params_serializable = (is_wire_type<std::decay_t<Params>> && ...);
  static constexpr bool result_serializable = std::is_void_v<Result> || is_wire_type<Result>;
  static constexpr bool result_by_value = !std::is_reference_v<Result> && !std::is_pointer_v<Result>;
};

template <std::size_t N>
constexpr bool names_are_unique(const method_entry (&methods)[N]) {
  for (std::size_t i = 0; i < N; ++i) {
    for (std::size_t j = i + 1; j < N; ++j) {
      if (methods[i].name == methods[j].name) return false;
    }
  }
  return true;
}

// FNV-1a, 64 bit: stable across compilers and runs, computed at compile time.
constexpr std::uint64_t fnv1a(std::string_view text, std::uint64_t hash = 14695981039346656037ull) {
  for (char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

template <std::size_t N>
constexpr std::uint64_t fingerprint_of(std::string_view interface_name, const method_entry (&methods)[N]) {
  std::uint64_t hash = fnv1a(interface_name);
  for (const auto& method : methods) {
    hash = fnv1a("|", hash);
    hash = fnv1a(method.name, hash);
    hash = fnv1a(":", hash);
    hash = fnv1a(method.signature, hash);
  }
  return hash;
}

}  // namespace detail

// True for a type declared with ISOLATE_INTERFACE.
template <class T>
concept interface = requires {
  typename T::isolate_meta;
  requires std::is_same_v<typename T::isolate_meta::interface_type, T>;
};

template <interface Interface>
using interface_meta = typename Interface::isolate_meta;

template <interface Interface>
inline constexpr std::uint64_t fingerprint_v = Interface::isolate_meta::fingerprint;

// The method table entry (name, signature) of method K.
template <interface Interface, std::size_t K>
using method_pointer_t = std::tuple_element_t<K, std::remove_const_t<decltype(Interface::isolate_meta::pointers)>>;

}  // namespace isolate

// ---- the macro -------------------------------------------------------------

#define ISOLATE_INTERFACE(name, ...) \
  ISOLATE_DETAIL_CAT(ISOLATE_DETAIL_INTERFACE_, ISOLATE_DETAIL_METHOD_COUNT_CLASS(__VA_ARGS__))(name, __VA_ARGS__)

#define ISOLATE_DETAIL_INTERFACE_NONE(name, ...)                                                          \
  static_assert(false, "ISOLATE_INTERFACE(" #name ") declares no methods: add at least one, written as " \
                       "(return_type, name, (parameter types...)), for example (int, add, (int, int)).")

#define ISOLATE_DETAIL_INTERFACE_TOO_MANY(name, ...)                                                      \
  static_assert(false, "ISOLATE_INTERFACE(" #name ") declares more methods than ISOLATE_MAX_METHODS (32): " \
                       "split the interface into two.")

#define ISOLATE_DETAIL_INTERFACE_SOME(name, ...)                                                              \
  struct name {                                                                                              \
    virtual ~name() = default;                                                                               \
    ISOLATE_DETAIL_FOR_EACH_METHOD(ISOLATE_DETAIL_DECLARE, name, __VA_ARGS__)                                \
    struct isolate_meta;                                                                                     \
  };                                                                                                         \
  struct name::isolate_meta {                                                                                \
    using interface_type = name;                                                                             \
    static constexpr ::std::string_view interface_name = #name;                                              \
    static constexpr ::isolate::detail::method_entry methods[] = {                                           \
        ISOLATE_DETAIL_FOR_EACH_METHOD(ISOLATE_DETAIL_ENTRY, name, __VA_ARGS__)};                            \
    static constexpr ::std::size_t method_count = ::std::size(methods);                                      \
    static constexpr ::std::uint64_t fingerprint = ::isolate::detail::fingerprint_of(interface_name, methods); \
    static_assert(::isolate::detail::names_are_unique(methods),                                              \
                  "ISOLATE_INTERFACE(" #name ") declares two methods with the same name: isolate identifies "  \
                  "methods by name, so overloads are not supported. Give each method its own name.");        \
    static constexpr ::std::tuple pointers{ISOLATE_DETAIL_FOR_EACH_METHOD(ISOLATE_DETAIL_POINTER, name, __VA_ARGS__)}; \
    ISOLATE_DETAIL_FOR_EACH_METHOD(ISOLATE_DETAIL_CHECK, name, __VA_ARGS__)                                  \
    template <class Client>                                                                                  \
    struct proxy final : name {                                                                              \
      explicit proxy(Client& client) noexcept : client_(client) {}                                           \
      ISOLATE_DETAIL_FOR_EACH_METHOD(ISOLATE_DETAIL_FORWARD, name, __VA_ARGS__)                              \
     private:                                                                                                \
      Client& client_;                                                                                       \
    };                                                                                                       \
  }

// Parts of one method (R, method, (P...)).
#define ISOLATE_DETAIL_RESULT(r, n, p) ISOLATE_DETAIL_STRIP(r)
#define ISOLATE_DETAIL_NAME(r, n, p) n
#define ISOLATE_DETAIL_PARAMS(r, n, p) p

// 1 when a method is written (R, name, (P...)), else 0.
#define ISOLATE_DETAIL_WELL_FORMED(m) ISOLATE_DETAIL_CAT(ISOLATE_DETAIL_WELL_FORMED_, ISOLATE_DETAIL_IS_PAREN(m))(m)
#define ISOLATE_DETAIL_WELL_FORMED_0(m) 0
#define ISOLATE_DETAIL_WELL_FORMED_1(m) \
  ISOLATE_DETAIL_CAT(ISOLATE_DETAIL_WELL_FORMED_COUNT_, ISOLATE_DETAIL_IS_THREE(ISOLATE_DETAIL_COUNT m))(m)
#define ISOLATE_DETAIL_WELL_FORMED_COUNT_0(m) 0
#define ISOLATE_DETAIL_WELL_FORMED_COUNT_1(m) ISOLATE_DETAIL_IS_PAREN(ISOLATE_DETAIL_PARAMS m)
#define ISOLATE_DETAIL_IS_THREE(n) ISOLATE_DETAIL_IS_PAREN_CHECK(ISOLATE_DETAIL_CAT(ISOLATE_DETAIL_IS_THREE_, n))
#define ISOLATE_DETAIL_IS_THREE_3 ~, 1,

// Runs `what(iface, i, m)` for a well-formed method; nothing otherwise (its
// declaration already reported the mistake, so no cascade of errors follows).
#define ISOLATE_DETAIL_IF_WELL_FORMED(what, iface, i, m) \
  ISOLATE_DETAIL_CAT(ISOLATE_DETAIL_IF_WELL_FORMED_, ISOLATE_DETAIL_WELL_FORMED(m))(what, iface, i, m)
#define ISOLATE_DETAIL_IF_WELL_FORMED_0(what, iface, i, m)
#define ISOLATE_DETAIL_IF_WELL_FORMED_1(what, iface, i, m) what(iface, i, m)

// The pure virtual declaration.
#define ISOLATE_DETAIL_DECLARE(iface, i, m) \
  ISOLATE_DETAIL_CAT(ISOLATE_DETAIL_DECLARE_, ISOLATE_DETAIL_WELL_FORMED(m))(iface, i, m)
#define ISOLATE_DETAIL_DECLARE_0(iface, i, m)                                                                      \
  static_assert(false, "ISOLATE_INTERFACE(" #iface "): method " #i " is written " #m                              \
                       " but each method must be (return_type, name, (parameter types...)), for example "          \
                       "(int, add, (int, int)) or (void, ping, ()); put a type that contains a comma in parentheses.");
#define ISOLATE_DETAIL_DECLARE_1(iface, i, m)                                                   \
  virtual ISOLATE_DETAIL_RESULT m ISOLATE_DETAIL_NAME m(                                         \
      ISOLATE_DETAIL_LIST_PARAMS_OF(ISOLATE_DETAIL_UNNAMED_PARAM, ~, ISOLATE_DETAIL_PARAMS m)) = 0;

#define ISOLATE_DETAIL_LIST_PARAMS_OF(what, d, params) ISOLATE_DETAIL_LIST_PARAMS_OF_I(what, d, ISOLATE_DETAIL_EXPAND params)
#define ISOLATE_DETAIL_LIST_PARAMS_OF_I(what, d, ...) ISOLATE_DETAIL_LIST_PARAMS(what, d, __VA_ARGS__)
#define ISOLATE_DETAIL_UNNAMED_PARAM(d, i, p) ISOLATE_DETAIL_STRIP(p)
#define ISOLATE_DETAIL_NAMED_PARAM(d, i, p) ISOLATE_DETAIL_STRIP(p) a##i
#define ISOLATE_DETAIL_PARAM_NAME(d, i, p) a##i
// Too many parameters: the list comes out empty and ISOLATE_DETAIL_CHECK says why.
#define ISOLATE_DETAIL_TOO_MANY_PARAMS(d)
#define ISOLATE_DETAIL_PARAM_COUNT(params) ISOLATE_DETAIL_PARAM_COUNT_I(ISOLATE_DETAIL_EXPAND params)
#define ISOLATE_DETAIL_PARAM_COUNT_I(...) ISOLATE_DETAIL_COUNT(__VA_ARGS__)
#define ISOLATE_DETAIL_NO_METHODS(d)
#define ISOLATE_DETAIL_TOO_MANY_METHODS(d)

// {name, signature} for the method table.
#define ISOLATE_DETAIL_ENTRY(iface, i, m) ISOLATE_DETAIL_IF_WELL_FORMED(ISOLATE_DETAIL_ENTRY_I, iface, i, m)
#define ISOLATE_DETAIL_ENTRY_I(iface, i, m)                                                     \
  ::isolate::detail::method_entry{ISOLATE_DETAIL_STR(ISOLATE_DETAIL_NAME m),                     \
                                  ISOLATE_DETAIL_STR(ISOLATE_DETAIL_RESULT m) ISOLATE_DETAIL_STR( \
                                      ISOLATE_DETAIL_PARAMS m)},

#define ISOLATE_DETAIL_POINTER(iface, i, m) ISOLATE_DETAIL_IF_WELL_FORMED(ISOLATE_DETAIL_POINTER_I, iface, i, m)
#define ISOLATE_DETAIL_POINTER_I(iface, i, m) &iface::ISOLATE_DETAIL_NAME m,

// Compile-time checks with messages that say what to fix.
#define ISOLATE_DETAIL_CHECK(iface, i, m) ISOLATE_DETAIL_IF_WELL_FORMED(ISOLATE_DETAIL_CHECK_I, iface, i, m)
#define ISOLATE_DETAIL_CHECK_I(iface, i, m)                                                                        \
  static_assert(ISOLATE_DETAIL_PARAM_COUNT(ISOLATE_DETAIL_PARAMS m) <= ISOLATE_MAX_PARAMS,                             \
                "ISOLATE_INTERFACE(" #iface "): " ISOLATE_DETAIL_STR(ISOLATE_DETAIL_NAME m)                          \
                " has more than ISOLATE_MAX_PARAMS (16) parameters: pass a struct instead.");                        \
  static_assert(::isolate::detail::method_checks<decltype(&iface::ISOLATE_DETAIL_NAME m)>::params_passable,          \
                "ISOLATE_INTERFACE(" #iface "): the parameters of " ISOLATE_DETAIL_STR(ISOLATE_DETAIL_NAME m)        \
                " must be taken by value or by const reference; an out-parameter (non-const reference or pointer) " \
                "cannot cross a process boundary, so return the value instead.");                                   \
  static_assert(::isolate::detail::method_checks<decltype(&iface::ISOLATE_DETAIL_NAME m)>::params_serializable,      \
                "ISOLATE_INTERFACE(" #iface "): a parameter type of " ISOLATE_DETAIL_STR(ISOLATE_DETAIL_NAME m)      \
                " cannot be sent: every parameter type must be default-constructible and serializable with Cereal "  \
                "(give it a `template <class Archive> void serialize(Archive&)` member, or use std types).");       \
  static_assert(::isolate::detail::method_checks<decltype(&iface::ISOLATE_DETAIL_NAME m)>::result_by_value,          \
                "ISOLATE_INTERFACE(" #iface "): " ISOLATE_DETAIL_STR(ISOLATE_DETAIL_NAME m)                          \
                " returns a reference or pointer, which cannot cross a process boundary: return a value.");         \
  static_assert(::isolate::detail::method_checks<decltype(&iface::ISOLATE_DETAIL_NAME m)>::result_serializable,      \
                "ISOLATE_INTERFACE(" #iface "): the return type of " ISOLATE_DETAIL_STR(ISOLATE_DETAIL_NAME m)       \
                " cannot be sent: it must be void, or default-constructible and serializable with Cereal "          \
                "(give it a `template <class Archive> void serialize(Archive&)` member, or use std types).");

// The proxy's override: encode the arguments and hand them to the client.
#define ISOLATE_DETAIL_FORWARD(iface, i, m) ISOLATE_DETAIL_IF_WELL_FORMED(ISOLATE_DETAIL_FORWARD_I, iface, i, m)
#define ISOLATE_DETAIL_FORWARD_I(iface, i, m)                                                   \
  ISOLATE_DETAIL_RESULT m ISOLATE_DETAIL_NAME m(                                                 \
      ISOLATE_DETAIL_LIST_PARAMS_OF(ISOLATE_DETAIL_NAMED_PARAM, ~, ISOLATE_DETAIL_PARAMS m)) override { \
    return client_.template call<i, decltype(&iface::ISOLATE_DETAIL_NAME m)>(                    \
        ISOLATE_DETAIL_LIST_PARAMS_OF(ISOLATE_DETAIL_PARAM_NAME, ~, ISOLATE_DETAIL_PARAMS m));  \
  }

#endif
