// isolate's error codes and exceptions: one std::error_category with named
// codes (Asio's pattern) and exceptions derived from isolate::error.
#ifndef ISOLATE_ERROR_HPP
#define ISOLATE_ERROR_HPP

#include "isolate/detail/config.hpp"

#include <atomic>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

namespace isolate {

enum class errc {
  protocol_error = 1,    // bytes from the peer broke the wire protocol; the peer is not trusted again
  plugin_crashed,        // the plugin's process died (signal or exit) while calls were pending
  timeout,               // a call or a load did not finish within its time limit
  fingerprint_mismatch,  // plugin and host were built from different interface declarations
  load_failed,           // the plugin could not be loaded (missing file, symbol, factory failure)
  message_too_large,     // a message exceeded the configured maximum size
  remote_exception,      // the plugin threw an exception the host could not map to a type
  plugin_closed,         // the plugin was unloaded, or is being restarted, when the call was made
  unsupported,           // the transport cannot do what was asked (e.g. a limit it cannot enforce)
  quarantined,           // the plugin broke its limits too often and is no longer started
  limit_unenforceable,   // a limit asked for cannot be enforced on this machine (and best effort was not chosen)
  limit_exceeded,        // the plugin went past one of its limits (the message says which) and was stopped
  unknown_plugin,        // isolate::manager: no plugin is loaded under that id
  duplicate_plugin,      // isolate::manager: a plugin is already loaded under that id
  wrong_interface,       // isolate::manager: the plugin under that id offers another interface
  unknown_method,        // isolate::manager::call: the interface has no method of that name
  signature_mismatch,    // isolate::manager::call: the arguments or result do not match the method's signature
  load_refused,          // the plugin refused to start (isolate::refuse_load in its constructor); the message says why
};

}  // namespace isolate

template <>
struct std::is_error_code_enum<isolate::errc> : std::true_type {};

namespace isolate {

namespace detail {
class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "isolate"; }
  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
      case errc::protocol_error: return "protocol error: the peer sent bytes that break the wire protocol";
      case errc::plugin_crashed: return "the plugin crashed";
      case errc::timeout: return "the operation timed out";
      case errc::fingerprint_mismatch: return "the plugin was built from a different interface declaration";
      case errc::load_failed: return "the plugin could not be loaded";
      case errc::message_too_large: return "the message exceeds the maximum message size";
      case errc::remote_exception: return "the plugin threw an exception";
      case errc::plugin_closed: return "the plugin is closed";
      case errc::unsupported: return "the transport does not support this";
      case errc::quarantined: return "the plugin is quarantined";
      case errc::limit_unenforceable: return "a limit cannot be enforced on this machine";
      case errc::limit_exceeded: return "the plugin exceeded one of its limits";
      case errc::unknown_plugin: return "no plugin is loaded under that id";
      case errc::duplicate_plugin: return "a plugin is already loaded under that id";
      case errc::wrong_interface: return "the plugin offers another interface";
      case errc::unknown_method: return "the interface has no method of that name";
      case errc::signature_mismatch: return "the call does not match the method's signature";
      case errc::load_refused: return "the plugin refused to start";
    }
    return "unknown isolate error";
  }
};
}  // namespace detail

namespace detail {
// A plugin library keeps its symbols to itself, so it has its own copy of
// every inline static, the error category included; categories compare by
// address, so the plugin's `code == errc::timeout` would be false for an error
// the host made. The loader hands the plugin its own category at load
// (plugin_entry::share_error_category), and error_category() returns that one.
inline std::atomic<const std::error_category*> shared_error_category{nullptr};
}  // namespace detail

inline const std::error_category& error_category() noexcept {
  static const detail::error_category_impl category;
  if (const auto* shared = detail::shared_error_category.load(std::memory_order_acquire)) return *shared;
  return category;
}

inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

// Every failure isolate reports as an exception is an isolate::error (or derived), carrying its code.
class ISOLATE_VISIBLE error : public std::system_error {
 public:
  explicit error(errc code) : std::system_error(make_error_code(code)) {}
  error(errc code, const std::string& what) : std::system_error(make_error_code(code), what) {}
  error(std::error_code code, const std::string& what) : std::system_error(code, what) {}
};

// Called by a plugin's constructor (its "on load") to refuse to start, say
// when its configuration lacks something: the host's load fails with
// errc::load_refused and `reason`, under every transport.
[[noreturn]] inline void refuse_load(const std::string& reason) { throw error(errc::load_refused, reason); }

namespace detail {
// What an error says without the ": <code's message>" that std::system_error
// appends to what(), for a message that goes on elsewhere.
inline std::string message_of(const std::system_error& e) {
  std::string what = e.what();
  const std::string suffix = ": " + e.code().message();
  if (what.ends_with(suffix)) what.resize(what.size() - suffix.size());
  return what;
}

// What a load throws when the plugin's constructor threw `e` inside the host
// (in_process, thread): a refusal keeps its code and reason, anything else is load_failed.
inline error start_failure(const std::exception& e) {
  if (const auto* refused = dynamic_cast<const std::system_error*>(&e);
      refused != nullptr && refused->code() == errc::load_refused) {
    return error(errc::load_refused, "the plugin refused to start: " + message_of(*refused));
  }
  return error(errc::load_failed, std::string("the plugin failed to start: ") + e.what());
}
}  // namespace detail

// A plugin's exception whose type the host does not know (see register_exception):
// it keeps the original type name and message.
class ISOLATE_VISIBLE remote_error : public error {
 public:
  remote_error(std::string type_name, const std::string& message)
      : error(errc::remote_exception, message), type_name_(std::move(type_name)), message_(message) {}
  // The exception's type as the plugin saw it, e.g. "my::parse_error".
  const std::string& type_name() const noexcept { return type_name_; }
  // The plugin's what(), without the "<message>: <category text>" decoration of system_error.
  const std::string& message() const noexcept { return message_; }

 private:
  std::string type_name_;
  std::string message_;
};

}  // namespace isolate

#endif
