// How a plugin's exception is rebuilt on the caller's side. The common
// standard exceptions come back as themselves; register your own types with
// register_exception<T>(); anything else arrives as isolate::remote_error,
// isolate::error included: its type_name() is "isolate::error" and its message
// names the plugin's code, since isolate's own codes on the caller's side say
// only what the caller observed (wire/exception_codec.hpp).
#ifndef ISOLATE_EXCEPTIONS_HPP
#define ISOLATE_EXCEPTIONS_HPP

#include "isolate/detail/config.hpp"
#include "isolate/error.hpp"

#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <variant>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeinfo>

#if defined(__GNUG__)
#include <cxxabi.h>
#include <cstdlib>
#include <memory>
#endif

namespace isolate {

namespace detail {

// The readable name of an exception's dynamic type, e.g. "std::out_of_range".
inline std::string type_name_of(const std::exception& e) {
#if defined(__GXX_RTTI) || defined(__cpp_rtti)
  const char* mangled = typeid(e).name();
#if defined(__GNUG__)
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> readable(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  if (status == 0 && readable) return readable.get();
#endif
  return mangled;
#else
  (void)e;
  return "std::exception";
#endif
}

using exception_thrower = std::function<void(const std::string& message)>;

class exception_registry {
 public:
  static exception_registry& instance() {
    static exception_registry registry;
    return registry;
  }
  void add(std::string type_name, exception_thrower thrower) {
    std::unique_lock lock(mutex_);
    throwers_.insert_or_assign(std::move(type_name), std::move(thrower));
  }
  // Throws the registered type when there is one; returns otherwise.
  void throw_if_known(const std::string& type_name, const std::string& message) const {
    exception_thrower thrower;
    {
      std::shared_lock lock(mutex_);
      auto found = throwers_.find(type_name);
      if (found == throwers_.end()) return;
      thrower = found->second;
    }
    thrower(message);
  }

 private:
  exception_registry() {
    add_standard<std::invalid_argument>("std::invalid_argument");
    add_standard<std::domain_error>("std::domain_error");
    add_standard<std::length_error>("std::length_error");
    add_standard<std::out_of_range>("std::out_of_range");
    add_standard<std::logic_error>("std::logic_error");
    add_standard<std::range_error>("std::range_error");
    add_standard<std::overflow_error>("std::overflow_error");
    add_standard<std::underflow_error>("std::underflow_error");
    add_standard<std::runtime_error>("std::runtime_error");
    // What these say is fixed by their type; the message is not needed.
    add_fixed<std::bad_alloc>("std::bad_alloc");
    add_fixed<std::bad_array_new_length>("std::bad_array_new_length");
    add_fixed<std::bad_cast>("std::bad_cast");
    add_fixed<std::bad_typeid>("std::bad_typeid");
    add_fixed<std::bad_function_call>("std::bad_function_call");
    add_fixed<std::bad_weak_ptr>("std::bad_weak_ptr");
    add_fixed<std::bad_optional_access>("std::bad_optional_access");
    add_fixed<std::bad_variant_access>("std::bad_variant_access");
    add_fixed<std::bad_exception>("std::bad_exception");
  }
  template <class E>
  void add_standard(const char* name) {
    throwers_.emplace(name, [](const std::string& message) { throw E(message); });
  }
  template <class E>
  void add_fixed(const char* name) {
    throwers_.emplace(name, [](const std::string&) { throw E(); });
  }

  mutable std::shared_mutex mutex_;
  std::map<std::string, exception_thrower, std::less<>> throwers_;
};

}  // namespace detail

// Makes exceptions of type E thrown by a plugin arrive in the host as E (with
// the plugin's message) instead of isolate::remote_error. E must be
// constructible from a std::string. `type_name` is the name the plugin side
// reports: by default the demangled C++ name, e.g. "my::parse_error".
template <class E>
void register_exception(std::string type_name) {
  static_assert(std::is_constructible_v<E, std::string>,
                "isolate::register_exception<E>: E must be constructible from a std::string holding the message.");
  detail::exception_registry::instance().add(std::move(type_name), [](const std::string& message) { throw E(message); });
}

#if defined(__GXX_RTTI) || defined(__cpp_rtti)
template <class E>
void register_exception() {
  static_assert(std::is_base_of_v<std::exception, E>,
                "isolate::register_exception<E>() without a name needs E derived from std::exception; pass the name otherwise.");
#if defined(__GNUG__)
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> readable(abi::__cxa_demangle(typeid(E).name(), nullptr, nullptr, &status),
                                                  std::free);
  register_exception<E>(status == 0 && readable ? std::string(readable.get()) : std::string(typeid(E).name()));
#else
  register_exception<E>(typeid(E).name());
#endif
}
#endif

}  // namespace isolate

#endif
