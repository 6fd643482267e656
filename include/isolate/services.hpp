// Calls from a plugin back to its host. The host offers objects implementing
// interfaces (declared with ISOLATE_INTERFACE like any other) through
// isolate::host_services; the plugin reaches them through the plugin_context
// its constructor receives:
//
//   // host                                    // plugin
//   host_log log;                              struct my_calc final : calculator {
//   isolate::host_services services;             explicit my_calc(isolate::plugin_context& host)
//   services.provide<logger>(log);                   : log_(host.service<logger>()),
//   auto calc = isolate::load<calculator,              progress_(host.events<progress>()) {}
//       isolate::process>(path, {}, services);     ...
//
// service<S>() calls wait for the host's answer, and may be made while the
// host is itself waiting on the plugin (the host serves them on the waiting
// thread, so nothing deadlocks, and the host may call the plugin again).
// events<E>() calls are one-way: they return at once. Under in_process and
// thread both are direct calls to the host's object, on the plugin's thread.
#ifndef ISOLATE_SERVICES_HPP
#define ISOLATE_SERVICES_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/codec.hpp"
#include "isolate/error.hpp"
#include "isolate/interface.hpp"
#include "isolate/detail/capability_table.hpp"
#include "isolate/detail/client.hpp"
#include "isolate/detail/link.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace isolate {

namespace detail {

template <class Interface, class Impl>
struct exported_plugin;  // export.hpp

// One object the host serves, seen without its type.
struct service_entry {
  std::string_view name;
  std::uint64_t fingerprint = 0;
  void* object = nullptr;  // the implementation, as Interface*
  // Runs one call frame on `object` and writes the reply frame (never
  // throws); sets `*malformed` if the frame's method or arguments do not decode.
  void (*handle)(void* object, const wire::frame_view& call, wire::buffer& reply, std::size_t max_payload,
                 bool* malformed) = nullptr;
};

template <interface Interface>
void handle_service_call(void* object, const wire::frame_view& call, wire::buffer& reply, std::size_t max_payload,
                         bool* malformed) {
  stub<Interface>::handle(*static_cast<Interface*>(object), call, reply, max_payload, malformed);
}

// The index of the interface `name` among `services` (anything with `name`
// and `fingerprint` members), checked against the fingerprint the plugin was
// built with. Throws when the host has no such interface or another version.
template <class Services>
std::size_t find_service(const Services& services, std::string_view name, std::uint64_t fingerprint) {
  for (std::size_t i = 0; i < services.size(); ++i) {
    if (services[i].name != name) continue;
    if (services[i].fingerprint != fingerprint) {
      throw error(errc::fingerprint_mismatch,
                  fmt::format("the host serves interface '{}' with fingerprint {:#018x}, but the plugin was built "
                              "with fingerprint {:#018x}: rebuild the plugin against the host's interface header",
                              name, services[i].fingerprint, fingerprint));
    }
    return i;
  }
  throw error(errc::unsupported, fmt::format("the host provides no interface '{}': pass an implementation to "
                                             "isolate::load through isolate::host_services::provide",
                                             name));
}

template <interface Interface>
constexpr bool all_methods_return_void() {
  return []<std::size_t... K>(std::index_sequence<K...>) {
    return (std::is_void_v<typename method_traits<std::remove_const_t<
                std::tuple_element_t<K, std::remove_const_t<decltype(Interface::isolate_meta::pointers)>>>>::result_type> &&
            ...);
  }(std::make_index_sequence<Interface::isolate_meta::method_count>{});
}

}  // namespace detail

// The objects a host offers to a plugin. They must outlive the plugin.
class host_services {
 public:
  template <interface Interface>
  host_services& provide(Interface& implementation) {
    for (const auto& entry : entries_) {
      if (entry.name == Interface::isolate_meta::interface_name) {
        throw error(errc::unsupported, fmt::format("host_services already provides '{}'", entry.name));
      }
    }
    if (entries_.size() == 255) throw error(errc::unsupported, "host_services holds at most 255 interfaces");
    entries_.push_back({Interface::isolate_meta::interface_name, Interface::isolate_meta::fingerprint,
                        static_cast<void*>(static_cast<Interface*>(&implementation)),
                        &detail::handle_service_call<Interface>});
    return *this;
  }

  const std::vector<detail::service_entry>& entries() const noexcept { return entries_; }

  // The plugin's configuration, as text in whatever format the host and the
  // plugin agree on (a JSON object, key=value lines...): the plugin reads it
  // in its constructor through plugin_context::configuration().
  host_services& configure(std::string configuration) {
    configuration_ = std::move(configuration);
    return *this;
  }
  const std::string& configuration() const noexcept { return configuration_; }

  // The entry for an interface, checked against the plugin's idea of it.
  // Returns its index; throws when the host has no such interface.
  std::size_t find(std::string_view name, std::uint64_t fingerprint) const {
    return detail::find_service(entries_, name, fingerprint);
  }

 private:
  std::vector<detail::service_entry> entries_;
  std::string configuration_;
};

// What a plugin sees of its host. A plugin class with a constructor taking
// `isolate::plugin_context&` receives one; the references it hands out stay
// valid for the plugin's lifetime.
class plugin_context {
 public:
  virtual ~plugin_context() = default;

  // The host's implementation of Service. Calls wait for the host's answer.
  template <interface Service>
  Service& service() {
    return get<Service>(false);
  }

  // The host's handler of Events. Calls are one-way: they return at once.
  // What the host passed to host_services::configure (empty if nothing).
  const std::string& configuration() const noexcept { return configuration_; }

  template <interface Events>
  Events& events() {
    static_assert(detail::all_methods_return_void<Events>(),
                  "plugin_context::events<E>(): every method of E must return void, since an event's sender does "
                  "not wait for an answer; use service<E>() for calls that return something.");
    return get<Events>(true);
  }

 protected:
  explicit plugin_context(std::string configuration = {}) : configuration_(std::move(configuration)) {}

  // How to reach the host's object: directly (same process) or through a link.
  struct resolution {
    void* direct = nullptr;
    detail::link* remote = nullptr;
  };
  // Throws isolate::error when the host does not provide the interface.
  virtual resolution resolve(std::string_view name, std::uint64_t fingerprint, bool one_way) = 0;

  // Where the plugin finds the shared_buffers its calls name, when not in
  // this process's own table (the worker: the buffers the host sent it).
  // Handed to the plugin library when its object is made (export.hpp), since
  // the library has its own copy of every inline variable.
  virtual detail::buffer_resolver* shared_buffers() noexcept { return nullptr; }

  // How the plugin's library reaches the objects the host hands it
  // (isolate::capability) when the host is another process: calls, and the
  // one-way releases. Null links: the host's objects are in this process.
  struct object_links {
    detail::link* calls = nullptr;
    detail::link* releases = nullptr;
  };
  virtual object_links host_object_links() noexcept { return {}; }
  // The library's table of objects handed to and received from the host,
  // set by the library (export.hpp) when it has host_object_links.
  detail::capability_table* capabilities_ = nullptr;

  template <class Interface, class Impl>
  friend struct detail::exported_plugin;

 private:
  template <interface Interface>
  struct remote_object {
    explicit remote_object(detail::link& to) : client(to), proxy(client) {}
    detail::client client;
    typename Interface::isolate_meta::template proxy<detail::client> proxy;
  };

  template <interface Interface>
  Interface& get(bool one_way) {
    std::lock_guard lock(mutex_);
    const auto key = std::make_pair(Interface::isolate_meta::fingerprint, one_way);
    if (auto found = cache_.find(key); found != cache_.end()) return *static_cast<Interface*>(found->second);
    const auto how = resolve(Interface::isolate_meta::interface_name, Interface::isolate_meta::fingerprint, one_way);
    Interface* object = nullptr;
    if (how.direct != nullptr) {
      object = static_cast<Interface*>(how.direct);
    } else {
      auto remote = std::make_shared<remote_object<Interface>>(*how.remote);
      object = &remote->proxy;
      holders_.push_back(std::move(remote));
    }
    cache_.emplace(key, object);
    return *object;
  }

  std::string configuration_;
  std::mutex mutex_;
  std::map<std::pair<std::uint64_t, bool>, void*> cache_;
  std::vector<std::shared_ptr<void>> holders_;
};

namespace detail {

// The context of a plugin living in the host (in_process, thread): the host's
// objects are called directly.
class direct_context final : public plugin_context {
 public:
  explicit direct_context(host_services services)
      : plugin_context(services.configuration()), services_(std::move(services)) {}

 protected:
  resolution resolve(std::string_view name, std::uint64_t fingerprint, bool) override {
    return {services_.entries()[services_.find(name, fingerprint)].object, nullptr};
  }

 private:
  host_services services_;
};

}  // namespace detail

}  // namespace isolate

#endif
