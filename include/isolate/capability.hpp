// isolate::capability<I>: an object that crosses a plugin boundary by
// reference. A method may take or return one; the side that receives it
// calls the object through it, wherever the object lives:
//
//   ISOLATE_INTERFACE(counter, (int, next, ()));
//   ISOLATE_INTERFACE(factory,
//       (isolate::capability<counter>, make_counter, (int)),          // the plugin makes one
//       (int, drain, (isolate::capability<counter>, int)));            // the host hands one over
//
//   // plugin
//   isolate::capability<counter> make_counter(int start) override {
//     return isolate::make_capability<my_counter>(start);
//   }
//   // host
//   auto c = plugin->make_counter(5);
//   c->next();  // under process: a call to the worker's object
//
// It is a shared handle (copies share the object). Under in_process the
// object itself is passed; under thread too, and the object runs on the
// thread that calls it. Under process the receiver holds a proxy: its calls
// go to the owner's process, and when the receiver drops its last copy the
// owner drops its reference. When the worker dies (or is restarted or
// reloaded), the host's objects it held are released, and the host's proxies
// of its objects fail with plugin_closed. A proxy handed back to its owner
// stays a proxy (its calls make the round trip). An object the plugin made
// is code of its library: under thread, one the host receives in a result
// keeps the library mapped; under in_process, or passed to a host service
// (a direct call inside the host), drop it before unloading the plugin.
#ifndef ISOLATE_CAPABILITY_HPP
#define ISOLATE_CAPABILITY_HPP

#include "isolate/detail/capability_table.hpp"
#include "isolate/detail/client.hpp"
#include "isolate/detail/codec.hpp"
#include "isolate/detail/config.hpp"
#include "isolate/error.hpp"
#include "isolate/interface.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>

namespace isolate {

template <interface Interface>
class capability {
 public:
  capability() noexcept = default;
  capability(std::nullptr_t) noexcept {}
  // Hands over an object the caller made (or shares one it holds).
  template <class Impl>
    requires std::is_convertible_v<Impl*, Interface*>
  capability(std::shared_ptr<Impl> object) noexcept : object_(std::move(object)) {}

  Interface* operator->() const {
    if (!object_) throw error(errc::unsupported, "an empty isolate::capability was called");
    return object_.get();
  }
  Interface& operator*() const { return *operator->(); }
  Interface* get() const noexcept { return object_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(object_); }
  void reset() noexcept { object_.reset(); }
  // True when this side holds a proxy of an object in another process.
  bool is_remote() const noexcept { return remote_; }

 private:
  template <class Archive, interface I>
  friend void save(Archive&, const capability<I>&);
  template <class Archive, interface I>
  friend void load(Archive&, capability<I>&);

  std::shared_ptr<Interface> object_;
  bool remote_ = false;
};

// Makes an Impl and hands it over as a capability of Interface (deduced when
// Impl derives from exactly one interface; name it otherwise).
template <class Impl, class... Args>
auto make_capability(Args&&... args) {
  return std::make_shared<Impl>(std::forward<Args>(args)...);
}

namespace detail {

// How a capability is written: a tag, then an id (or, in one process, a
// pointer), then the interface's fingerprint.
enum class capability_tag : std::uint8_t {
  none = 0,          // an empty capability
  sender_object = 1,  // the id of an object in the sender's table
  local_object = 2,   // a heap std::shared_ptr<I>* (a local table only)
};

template <interface Interface>
void handle_exported(void* object, const wire::frame_header& header, const wire::inbound_payload& payload,
                     wire::buffer& reply, std::size_t max_payload, bool* malformed) {
  stub<Interface>::handle(*static_cast<Interface*>(object), header, payload, reply, max_payload, malformed);
}

// The receiver's side of an object in the other process: the proxy and
// what it calls through, released (by object_link) when it goes.
template <interface Interface>
struct imported_object {
  imported_object(std::shared_ptr<capability_table> table, std::uint64_t id)
      : link(std::move(table), id), caller(link), proxy(caller) {}
  object_link link;
  client caller;
  typename Interface::isolate_meta::template proxy<client> proxy;
};

// Keeps a plugin's library mapped while the host holds an object it made
// (thread transport): the object goes first, then the library.
template <interface Interface>
struct library_held_object {
  std::shared_ptr<const void> library;
  std::shared_ptr<Interface> object;
  ~library_held_object() { object.reset(); }
};

[[noreturn]] inline void throw_no_capability_link() {
  throw error(errc::unsupported,
              "an isolate::capability can only cross a plugin boundary as an argument or result of a call (or "
              "inside a std container in one)");
}

}  // namespace detail

template <class Archive, interface Interface>
void save(Archive& ar, const capability<Interface>& cap) {
  using detail::capability_tag;
  constexpr std::uint64_t fingerprint = Interface::isolate_meta::fingerprint;
  detail::capability_table* table = detail::capabilities_in_use;
  capability_tag tag = capability_tag::none;
  std::uint64_t id = 0;
  if (cap.object_) {
    if (table == nullptr) detail::throw_no_capability_link();
    if constexpr (requires { ar.measuring(); }) {
      if (ar.measuring()) tag = capability_tag::sender_object;  // only counted: nothing is exported
    }
    if (tag == capability_tag::none) {
      if (table->local()) {
        tag = capability_tag::local_object;
        auto copy = std::make_unique<std::shared_ptr<Interface>>(cap.object_);
        id = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(copy.release()));
      } else {
        tag = capability_tag::sender_object;
        id = table->add({std::static_pointer_cast<void>(cap.object_), &detail::handle_exported<Interface>});
      }
    }
  }
  ar(static_cast<std::uint8_t>(tag), id, fingerprint);
}

template <class Archive, interface Interface>
void load(Archive& ar, capability<Interface>& cap) {
  using detail::capability_tag;
  std::uint8_t tag = 0;
  std::uint64_t id = 0;
  std::uint64_t fingerprint = 0;
  ar(tag, id, fingerprint);
  cap = capability<Interface>();
  if (tag == static_cast<std::uint8_t>(capability_tag::none)) return;
  detail::capability_table* table = detail::capabilities_in_use;
  if (table == nullptr) throw error(errc::protocol_error, "a capability arrived where none can be received");
  if (fingerprint != Interface::isolate_meta::fingerprint) {
    throw error(errc::protocol_error,
                fmt::format("a capability of another interface (fingerprint {:#018x}) arrived where '{}' "
                            "(fingerprint {:#018x}) was expected",
                            fingerprint, Interface::isolate_meta::interface_name, Interface::isolate_meta::fingerprint));
  }
  if (tag == static_cast<std::uint8_t>(capability_tag::local_object) && table->local()) {
    std::unique_ptr<std::shared_ptr<Interface>> copy(
        reinterpret_cast<std::shared_ptr<Interface>*>(static_cast<std::uintptr_t>(id)));
    if (table->library()) {
      auto held = std::make_shared<detail::library_held_object<Interface>>(
          detail::library_held_object<Interface>{table->library(), std::move(*copy)});
      Interface* object = held->object.get();
      cap.object_ = std::shared_ptr<Interface>(std::move(held), object);
    } else {
      cap.object_ = std::move(*copy);
    }
    return;
  }
  if (tag == static_cast<std::uint8_t>(capability_tag::sender_object) && !table->local()) {
    // The table outlives every proxy of it: the proxies share it.
    auto imported = std::make_shared<detail::imported_object<Interface>>(table->shared_from_this(), id);
    Interface* proxy = &imported->proxy;
    cap.object_ = std::shared_ptr<Interface>(std::move(imported), proxy);
    cap.remote_ = true;
    return;
  }
  throw error(errc::protocol_error, fmt::format("a capability with an unknown tag {}", tag));
}

}  // namespace isolate

#endif
