// Plugins in shared libraries (built with isolate_add_plugin, exporting
// ISOLATE_EXPORT_PLUGIN): isolate::load from a path, and the loader the
// worker process uses too.
//
//   auto calc = isolate::load<calculator, isolate::thread>("plugins/libcalc.so");
//
// The library is checked before anything in it runs beyond its static
// initialisers: a library built from another declaration of the interface (or
// another isolate ABI) is refused with a message that says which side to rebuild.
#ifndef ISOLATE_PLUGIN_LIBRARY_HPP
#define ISOLATE_PLUGIN_LIBRARY_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/plugin_entry.hpp"
#include "isolate/detail/plugin_object.hpp"
#include "isolate/error.hpp"
#include "isolate/interface.hpp"
#include "isolate/limits.hpp"
#include "isolate/plugin.hpp"
#include "isolate/services.hpp"

#include <dlfcn.h>

#include <concepts>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace isolate {

namespace detail {

inline std::string hex(std::uint64_t value) {
  char text[19];
  std::snprintf(text, sizeof text, "0x%016llx", static_cast<unsigned long long>(value));
  return text;
}

// One plugin shared library, opened with RTLD_NOW | RTLD_LOCAL (every symbol
// resolved up front, none shared with other plugins) and closed on destruction.
// Knows the plugin only by the name and fingerprint in its entry, so the
// worker, which has no interface type, uses it as well as the host.
class plugin_library {
 public:
  // Opens the library and finds its entry. Throws isolate::error(load_failed)
  // when the file cannot be loaded, exports no entry, or was built with
  // another isolate ABI.
  explicit plugin_library(const std::filesystem::path& path) : path_(path) {
    // A path, never a name to search for: "libx.so" means the file here.
    std::error_code ignored;
    const std::filesystem::path absolute = std::filesystem::absolute(path, ignored);
    const std::string file = (absolute.empty() ? path : absolute).string();
    handle_ = ::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle_) {
      const char* reason = ::dlerror();
      throw error(errc::load_failed, "cannot load plugin '" + path_.string() + "': " +
                                         (reason ? reason : "dlopen failed without a reason"));
    }
    try {
      ::dlerror();
      void* symbol = ::dlsym(handle_, plugin_entry_symbol);
      if (!symbol) {
        throw error(errc::load_failed, "'" + path_.string() + "' does not export an isolate plugin (no symbol '" +
                                           plugin_entry_symbol +
                                           "'): use ISOLATE_EXPORT_PLUGIN(interface, implementation) in one of "
                                           "its source files and build it with isolate_add_plugin");
      }
      // POSIX guarantees a data pointer from dlsym converts to a function pointer.
      const auto entry_function = reinterpret_cast<plugin_entry_function>(symbol);
      entry_ = entry_function();
      if (!entry_) {
        throw error(errc::load_failed, "plugin '" + path_.string() + "' returned no entry table");
      }
      // abi_version is the first field of every version of the table, so it is
      // safe to read before the rest is known to have this layout.
      if (entry_->abi_version != plugin_abi_version) {
        throw error(errc::load_failed, "plugin '" + path_.string() + "' was built with isolate plugin ABI version " +
                                           std::to_string(entry_->abi_version) + ", but the host uses version " +
                                           std::to_string(plugin_abi_version) +
                                           ": rebuild the plugin against the host's isolate headers");
      }
      if (!entry_->interface_name || !entry_->create || !entry_->destroy || !entry_->handle ||
          !entry_->share_error_category) {
        throw error(errc::load_failed, "plugin '" + path_.string() + "' has an incomplete entry table");
      }
      entry_->share_error_category(&isolate::error_category());
    } catch (...) {
      ::dlclose(handle_);
      throw;
    }
  }

  plugin_library(plugin_library&& other) noexcept
      : path_(std::move(other.path_)),
        handle_(std::exchange(other.handle_, nullptr)),
        entry_(std::exchange(other.entry_, nullptr)) {}
  plugin_library& operator=(plugin_library&& other) noexcept {
    if (this != &other) {
      close();
      path_ = std::move(other.path_);
      handle_ = std::exchange(other.handle_, nullptr);
      entry_ = std::exchange(other.entry_, nullptr);
    }
    return *this;
  }
  plugin_library(const plugin_library&) = delete;
  plugin_library& operator=(const plugin_library&) = delete;
  ~plugin_library() { close(); }

  const std::filesystem::path& path() const noexcept { return path_; }
  const plugin_entry& entry() const noexcept { return *entry_; }
  std::string_view interface_name() const noexcept { return entry_->interface_name; }
  std::uint64_t fingerprint() const noexcept { return entry_->fingerprint; }

  // Whether the plugin implements the interface `name` declared as the host's
  // `fingerprint` says; the reason in `message` when not.
  bool matches(std::string_view name, std::uint64_t fingerprint, std::string& message) const {
    if (interface_name() != name) {
      message = "plugin '" + path_.string() + "' implements interface '" + std::string(interface_name()) +
                "', but the host expects interface '" + std::string(name) + "': load the plugin built for '" +
                std::string(name) + "'";
      return false;
    }
    if (this->fingerprint() != fingerprint) {
      message = "plugin '" + path_.string() + "' implements interface '" + std::string(name) +
                "' with fingerprint " + hex(this->fingerprint()) + ", but the host was built with fingerprint " +
                hex(fingerprint) + ": rebuild the plugin against the host's interface header";
      return false;
    }
    return true;
  }

  // Throws isolate::error(fingerprint_mismatch) unless matches().
  void check(std::string_view name, std::uint64_t fingerprint) const {
    std::string message;
    if (!matches(name, fingerprint, message)) throw error(errc::fingerprint_mismatch, message);
  }

  template <interface Interface>
  void check() const {
    check(Interface::isolate_meta::interface_name, Interface::isolate_meta::fingerprint);
  }

 private:
  void close() noexcept {
    if (handle_) ::dlclose(std::exchange(handle_, nullptr));
  }

  std::filesystem::path path_;
  void* handle_ = nullptr;
  const plugin_entry* entry_ = nullptr;
};

// Makes the plugin's object as an Interface; the object keeps `library`
// loaded until its entry's destroy has run. What the constructor throws passes through.
template <interface Interface>
plugin_object<Interface> make_plugin_object(std::shared_ptr<const plugin_library> library,
                                            std::shared_ptr<plugin_context> host) {
  const plugin_entry& entry = library->entry();
  void* object = entry.create(host.get());
  if (!object) throw error(errc::load_failed, "plugin '" + library->path().string() + "' created no object");
  // The object may hold on to what the context handed it: both outlive it.
  auto keep = std::make_shared<std::pair<std::shared_ptr<const plugin_library>, std::shared_ptr<plugin_context>>>(
      std::move(library), std::move(host));
  return plugin_object<Interface>(static_cast<Interface*>(object),
                                  plugin_deleter(entry.destroy, std::move(keep), entry.start, entry.stop));
}

// Opens `path` and checks that it implements Interface.
template <interface Interface>
std::shared_ptr<const plugin_library> open_plugin_library(const std::filesystem::path& path) {
  auto library = std::make_shared<const plugin_library>(path);
  library->check<Interface>();
  return library;
}

// Policies whose plugin object lives in the host (in_process, thread): their
// connection is made from a factory.
template <class Policy, class Interface>
concept hosts_plugin_object = std::constructible_from<typename Policy::template connection<Interface>,
                                                      plugin_factory<Interface>, const typename Policy::options&>;

// Policies that load the library themselves (process: in the worker): their
// connection is made from the path.
template <class Policy, class Interface>
concept loads_plugin_library = std::constructible_from<typename Policy::template connection<Interface>,
                                                       const std::filesystem::path&, const typename Policy::options&,
                                                       const host_services&>;

}  // namespace detail

// Loads the plugin exported (ISOLATE_EXPORT_PLUGIN) by the shared library at
// `library`. Throws isolate::error: load_failed when the file cannot be
// loaded, is not a plugin, or its constructor throws; fingerprint_mismatch
// when it was built from another declaration of Interface. `services` are
// the host's objects the plugin may call back (see services.hpp).
template <interface Interface, class Policy>
  requires transport_policy<Policy, Interface> &&
           (detail::loads_plugin_library<Policy, Interface> || detail::hosts_plugin_object<Policy, Interface>)
plugin<Interface, Policy> load(const std::filesystem::path& library, const typename Policy::options& options = {},
                               const host_services& services = {}) {
  using connection = typename Policy::template connection<Interface>;
  if constexpr (detail::loads_plugin_library<Policy, Interface>) {
    return plugin<Interface, Policy>(std::make_unique<connection>(library, options, services));
  } else {
    // Held here as well as by the factory, so the library outlives anything of
    // it that a failed start leaves behind (the constructor's exception).
    auto opened = detail::open_plugin_library<Interface>(library);
    auto host = std::make_shared<detail::direct_context>(services);
    detail::plugin_factory<Interface> make = [opened, host] {
      return detail::make_plugin_object<Interface>(opened, host);
    };
    return plugin<Interface, Policy>(std::make_unique<connection>(std::move(make), options));
  }
}

namespace detail {
// Policies whose options carry a limits policy (process): they can enforce one.
template <class Policy>
concept enforces_limits = requires(typename Policy::options options) { options.limits; };
}  // namespace detail

// Loads the plugin under a limits preset, its values changed as the setters say:
//
//   auto p = isolate::load<parser, isolate::process>("plugins/libparser.so",
//                                                    isolate::limits::strict().memory_mb(256));
//
// A preset other than minimal needs a process of its own: with in_process or
// thread it does not compile.
template <interface Interface, class Policy, limits::level Level>
  requires transport_policy<Policy, Interface>
plugin<Interface, Policy> load(const std::filesystem::path& library, const limits::preset<Level>& limits,
                               typename Policy::options options = {}, const host_services& services = {}) {
  static_assert(Level == limits::level::minimal || detail::enforces_limits<Policy>,
                "isolate::load: a limits preset other than minimal needs a process of its own; load the plugin with "
                "isolate::process, or pass isolate::limits::minimal() (in_process and thread plugins run inside the "
                "host and cannot be limited).");
  if constexpr (detail::enforces_limits<Policy>) options.limits = limits;
  return load<Interface, Policy>(library, options, services);
}

}  // namespace isolate

#endif
