// ISOLATE_EXPORT_PLUGIN: makes a shared library a plugin that isolate can load
// under every policy. Write it once, at namespace scope, in one .cpp file of
// the library (build it with isolate_add_plugin, which hides every other symbol):
//
//   struct my_calc final : calculator { ... };
//   ISOLATE_EXPORT_PLUGIN(calculator, my_calc);
//
// It exports one extern "C" function, isolate_plugin_entry, returning the
// table of detail/plugin_entry.hpp. Each library is opened with RTLD_LOCAL, so
// plugins in different libraries never see each other's entry; a second use in
// the same library is a duplicate-symbol link error.
#ifndef ISOLATE_EXPORT_HPP
#define ISOLATE_EXPORT_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/capability_table.hpp"
#include "isolate/detail/codec.hpp"
#include "isolate/detail/plugin_entry.hpp"
#include "isolate/interface.hpp"
#include "isolate/services.hpp"
#include "isolate/shared_buffer.hpp"
#include "isolate/wire/frame.hpp"

#include <cstring>
#include <exception>
#include <span>
#include <string_view>
#include <type_traits>

namespace isolate::detail {

static_assert(std::string_view(plugin_entry_symbol) == "isolate_plugin_entry",
              "ISOLATE_EXPORT_PLUGIN defines the function named by plugin_entry_symbol: keep the two in step.");
static_assert(std::string_view(plugin_description_symbol) == "isolate_plugin_description",
              "ISOLATE_EXPORT_PLUGIN defines the data named by plugin_description_symbol: keep the two in step.");

// This library's table of the objects it handed to its host or received from
// it, when the host is another process (made by create(); one per library,
// as a worker holds one plugin).
inline std::shared_ptr<capability_table> plugin_capabilities;

template <class Impl>
inline constexpr bool constructible_for_plugin =
    std::is_default_constructible_v<Impl> || std::is_constructible_v<Impl, plugin_context&>;

template <class Interface, class Impl>
inline constexpr bool exportable = interface<Interface> && std::is_convertible_v<Impl*, Interface*> &&
                                   constructible_for_plugin<Impl>;

// The functions of a plugin's entry table, for Impl seen as Interface.
template <class Interface, class Impl>
struct exported_plugin {
  // An implementation whose constructor takes the plugin_context gets it.
  static void* create(plugin_context* host) {
    // This library's own copy of the resolver: its calls decode here.
    if (host != nullptr) {
      if (auto* buffers = host->shared_buffers()) plugin_buffer_resolver.store(buffers, std::memory_order_release);
      if (const auto links = host->host_object_links(); links.calls != nullptr && !plugin_capabilities) {
        plugin_capabilities =
            std::make_shared<capability_table>(links.calls, links.releases, links.calls->max_message_size());
        host->capabilities_ = plugin_capabilities.get();
      }
    }
    Interface* made = nullptr;
    if constexpr (std::is_constructible_v<Impl, plugin_context&>) {
      made = new Impl(*host);
    } else {
      made = new Impl();
    }
    return static_cast<void*>(made);
  }

  static void destroy(void* object) noexcept { delete static_cast<Impl*>(static_cast<Interface*>(object)); }

  // The plugin's "on load": `void on_load()`, run once the object is made
  // and the host serves its calls (under process, not yet in the
  // constructor); it may refuse to start (isolate::refuse_load).
  static constexpr bool has_on_load = requires(Impl& impl) { impl.on_load(); };
  static void start(void* object) {
    if constexpr (has_on_load) static_cast<Impl*>(static_cast<Interface*>(object))->on_load();
  }

  // The plugin's "on stop": `void on_stop()`, run before the object is
  // destroyed by a graceful unload, while the host still serves its calls.
  static constexpr bool has_on_stop = requires(Impl& impl) { impl.on_stop(); };
  static void stop(void* object) noexcept {
    if constexpr (has_on_stop) {
      try {
        static_cast<Impl*>(static_cast<Interface*>(object))->on_stop();
      } catch (...) {
        // The plugin is going anyway; its failure to stop cleanly changes nothing.
      }
    }
  }

  static void handle(void* object, const std::byte* frame, std::size_t frame_size, wire::chunk_source* rest,
                     wire::buffer& reply, wire::reply_stream* stream, std::size_t max_payload) noexcept {
    const std::span<const std::byte> bytes(frame, frame_size);
    capability_scope objects(plugin_capabilities.get());
    if (frame_size >= wire::header_size) {
      wire::frame_header header{};
      std::memcpy(&header, frame, wire::header_size);
      if (header.kind > wire::frame_kind::accounted_call) [[unlikely]] {
        handle_other(object, header, bytes, rest, reply, max_payload);
        return;
      }
    }
    try {
      if (rest == nullptr) {
        stub<Interface>::handle(*static_cast<Interface*>(object), wire::parse(bytes, max_payload), reply, max_payload,
                                nullptr, stream);
      } else {
        const wire::frame_header header = wire::parse_header(bytes, max_payload);
        const wire::inbound_payload payload{bytes.subspan(wire::header_size), header.size, rest};
        stub<Interface>::handle(*static_cast<Interface*>(object), header, payload, reply, max_payload, nullptr, stream);
      }
    } catch (...) {
      // A frame that does not parse (or a reply that cannot be built) still
      // gets an error reply, addressed to the call when its header is readable.
      wire::frame_header header{};
      if (frame_size >= wire::header_size) std::memcpy(&header, frame, wire::header_size);
      try {
        stub<Interface>::encode_failure(reply, std::current_exception(), header.method, header.call_id,
                                        header.service);
        if (header.kind == wire::frame_kind::accounted_call) append_cost(reply, {});  // it did not run
      } catch (...) {
        reply.clear();  // out of memory: the caller reads an empty reply as a broken call
      }
    }
  }

  // The frames that are not calls to the plugin's own interface.
  static void handle_other(void* object, const wire::frame_header& header, std::span<const std::byte> bytes,
                           wire::chunk_source* rest, wire::buffer& reply, std::size_t max_payload) noexcept {
    try {
      wire::buffer gathered;
      if (rest != nullptr) bytes = gather(header, bytes, *rest, gathered);
      const wire::frame_view frame = wire::parse(bytes, max_payload);
      switch (header.kind) {
        case wire::frame_kind::lifecycle:  // on_load or on_stop, then an empty reply
          if (header.method == wire::lifecycle_load) {
            start(object);
          } else {
            stop(object);
          }
          break;
        case wire::frame_kind::object_call:  // a call to an object the plugin handed to the host
          if (plugin_capabilities &&
              serve_object_call(*plugin_capabilities, frame, reply, max_payload, nullptr)) {
            return;
          }
          throw error(errc::plugin_closed, "the plugin holds no such object any more");
        case wire::frame_kind::release:  // the host dropped its proxy of one
          if (const auto id = released_id(frame.payload); id && plugin_capabilities) plugin_capabilities->remove(*id);
          break;
        default:
          throw error(errc::protocol_error, "a frame the plugin does not serve");
      }
      wire::begin_frame(reply);
      wire::finish_frame(reply, wire::frame_kind::reply, header.method, header.call_id, header.service);
    } catch (...) {
      try {
        stub<Interface>::encode_failure(reply, std::current_exception(), header.method, header.call_id,
                                        header.service);
      } catch (...) {
        reply.clear();
      }
    }
  }

  // A frame still arriving in pieces, whole (object calls are not streamed).
  static std::span<const std::byte> gather(const wire::frame_header& header, std::span<const std::byte> first,
                                           wire::chunk_source& rest, wire::buffer& out) {
    out.append(first.data(), first.size());
    while (out.size() < wire::header_size + header.size) {
      const auto piece = rest.next();
      if (piece.empty()) break;
      out.append(piece.data(), piece.size());
    }
    rest.finish();
    return out.bytes();
  }

  static void share_error_category(const std::error_category* category) noexcept {
    shared_error_category.store(category, std::memory_order_release);
  }

  static const plugin_entry* entry() noexcept {
    static constexpr plugin_entry table{plugin_abi_version,
                                        Interface::isolate_meta::interface_name.data(),
                                        Interface::isolate_meta::fingerprint,
                                        &create,
                                        &destroy,
                                        &handle,
                                        &share_error_category,
                                        has_on_load ? &start : nullptr,
                                        has_on_stop ? &stop : nullptr};
    return &table;
  }
};

// The checks run first, so a misuse reports its sentence and nothing else.
template <class Interface, class Impl>
const plugin_entry* export_entry() noexcept {
  if constexpr (exportable<Interface, Impl>) {
    return exported_plugin<Interface, Impl>::entry();
  } else {
    return nullptr;
  }
}

}  // namespace isolate::detail

#define ISOLATE_EXPORT_PLUGIN(iface, impl)                                                                          \
  static_assert(::isolate::interface<iface>,                                                                       \
                "ISOLATE_EXPORT_PLUGIN(" #iface ", " #impl "): " #iface " is not an interface declared with "      \
                "ISOLATE_INTERFACE; name the interface first and the implementation second.");                    \
  static_assert(::std::is_convertible_v<impl*, iface*>,                                                            \
                "ISOLATE_EXPORT_PLUGIN(" #iface ", " #impl "): " #impl " must derive publicly from " #iface ".");  \
  static_assert(::isolate::detail::constructible_for_plugin<impl>,                                               \
                "ISOLATE_EXPORT_PLUGIN(" #iface ", " #impl "): " #impl " must be default-constructible and not "   \
                "abstract (or constructible from isolate::plugin_context&, to call its host), since the plugin's " \
                "entry creates it with `new " #impl "()`; read any settings in its constructor.");                \
  extern "C" __attribute__((visibility("default"), used)) constinit const ::isolate::detail::plugin_description     \
      isolate_plugin_description = ::isolate::detail::describe_plugin<iface::isolate_meta>();                     \
  extern "C" __attribute__((visibility("default"))) const ::isolate::detail::plugin_entry* isolate_plugin_entry() \
      noexcept {                                                                                                   \
    return ::isolate::detail::export_entry<iface, impl>();                                                        \
  }                                                                                                                \
  extern "C" __attribute__((visibility("default"))) const ::isolate::detail::plugin_entry* isolate_plugin_entry() \
      noexcept

#endif
