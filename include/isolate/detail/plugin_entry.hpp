// The one symbol a plugin shared library exports (ISOLATE_EXPORT_PLUGIN): a
// table of plain C function pointers, so that a host or a worker that knows
// nothing of the plugin's types can check, create and serve it.
#ifndef ISOLATE_DETAIL_PLUGIN_ENTRY_HPP
#define ISOLATE_DETAIL_PLUGIN_ENTRY_HPP

#include "isolate/detail/config.hpp"
#include "isolate/wire/buffer.hpp"
#include "isolate/wire/stream.hpp"

#include <cstddef>
#include <cstdint>
#include <system_error>

namespace isolate {
class plugin_context;
}

namespace isolate::detail {

// Bumped whenever plugin_entry or the frame format changes.
inline constexpr std::uint32_t plugin_abi_version = 7;  // 7: handle() may stream a large result (reply_stream)

// The exported symbol's name (extern "C"): one plugin per shared library.
inline constexpr const char* plugin_entry_symbol = "isolate_plugin_entry";

struct plugin_entry {
  std::uint32_t abi_version;     // plugin_abi_version of the isolate the plugin was built with
  const char* interface_name;    // Interface::isolate_meta::interface_name
  std::uint64_t fingerprint;     // Interface::isolate_meta::fingerprint
  // Makes the implementation (passing it `host` if its constructor takes a
  // plugin_context&); returns it as Interface*, cast to void*. May throw.
  void* (*create)(plugin_context* host);
  // Destroys an object made by create().
  void (*destroy)(void* object) noexcept;
  // Runs one call frame on the object and writes the reply frame: used by the
  // worker, which does not know the interface. `frame` holds the header and
  // the payload, or only its first bytes when `rest` streams the others
  // (wire/stream.hpp). With `stream`, a large result may be sent straight
  // into the channel instead: `reply` is then left empty. Never throws.
  void (*handle)(void* object, const std::byte* frame, std::size_t frame_size, wire::chunk_source* rest,
                 wire::buffer& reply, wire::reply_stream* stream, std::size_t max_payload) noexcept;
  // Makes the plugin use the loader's isolate error category (see error.hpp),
  // so error codes compare equal on both sides. Called before create().
  void (*share_error_category)(const std::error_category* category) noexcept;
  // Runs the object's on_load() (see export.hpp) once it is made and its
  // host serves its calls; throws what on_load throws. Null when it has none.
  void (*start)(void* object);
  // Runs the object's on_stop() (see export.hpp) before it is destroyed,
  // while the host still serves its calls; null when the plugin has none.
  // What on_stop throws is swallowed: the plugin is going anyway.
  void (*stop)(void* object) noexcept;
};

using plugin_entry_function = const plugin_entry* (*)() noexcept;

// What a plugin offers, as constant data under an exported symbol, so that
// discovery (isolate/discovery.hpp) reads it from the file's ELF tables
// without loading the library or running any of its code.
inline constexpr const char* plugin_description_symbol = "isolate_plugin_description";

struct plugin_description {
  static constexpr char expected_magic[8] = {'i', 's', 'o', 'l', 'a', 't', 'e', '1'};
  static constexpr std::size_t name_capacity = 112;

  char magic[8];
  std::uint32_t abi_version;
  std::uint32_t name_size;   // of the interface's name; longer than the capacity: cut there
  std::uint64_t fingerprint;
  char interface_name[name_capacity];
};
static_assert(sizeof(plugin_description) == 136);

template <class Meta>
constexpr plugin_description describe_plugin() noexcept {
  plugin_description d{};
  for (std::size_t i = 0; i < sizeof d.magic; ++i) d.magic[i] = plugin_description::expected_magic[i];
  d.abi_version = plugin_abi_version;
  d.name_size = static_cast<std::uint32_t>(Meta::interface_name.size());
  d.fingerprint = Meta::fingerprint;
  for (std::size_t i = 0; i < Meta::interface_name.size() && i < plugin_description::name_capacity; ++i) {
    d.interface_name[i] = Meta::interface_name[i];
  }
  return d;
}

}  // namespace isolate::detail

#endif
