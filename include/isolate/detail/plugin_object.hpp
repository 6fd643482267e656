// The plugin object a transport owns, and the factory that makes it. An object
// made by a shared library must be destroyed by that library's code, which
// must stay loaded until then: the deleter carries both.
#ifndef ISOLATE_DETAIL_PLUGIN_OBJECT_HPP
#define ISOLATE_DETAIL_PLUGIN_OBJECT_HPP

#include "isolate/detail/config.hpp"

#include <functional>
#include <memory>
#include <utility>

namespace isolate::detail {

class plugin_deleter {
 public:
  using destroy_function = void (*)(void* object) noexcept;
  using start_function = void (*)(void* object);
  using stop_function = void (*)(void* object) noexcept;

  plugin_deleter() noexcept = default;
  // From the host's own objects (std::unique_ptr<Impl>): destroyed with delete.
  template <class T>
  plugin_deleter(std::default_delete<T>) noexcept {}  // implicit, so std::unique_ptr<Impl> converts
  // From a shared library: `destroy` is its entry's destroy, `library` keeps it mapped.
  plugin_deleter(destroy_function destroy, std::shared_ptr<const void> library, start_function on_load = nullptr,
                 stop_function on_stop = nullptr) noexcept
      : destroy_(destroy), start_(on_load), stop_(on_stop), library_(std::move(library)) {}

  // The plugin's on_load and on_stop (a library's plugin that has them),
  // run by the transport on the plugin's thread: after the object is made
  // (may throw: the load fails), and before it is destroyed.
  template <class T>
  void start(T* object) const {
    if (start_ && object) start_(object);
  }
  template <class T>
  void stop(T* object) const noexcept {
    if (stop_ && object) stop_(object);
  }

  // The library the object's code is in (null: the host's own code).
  const std::shared_ptr<const void>& library() const noexcept { return library_; }

  template <class T>
  void operator()(T* object) const noexcept {
    if (destroy_) {
      destroy_(object);
    } else {
      delete object;
    }
  }

 private:
  destroy_function destroy_ = nullptr;
  start_function start_ = nullptr;
  stop_function stop_ = nullptr;
  // Released after operator() ran (the deleter outlives the call), so the
  // library is unmapped only once its object is gone.
  std::shared_ptr<const void> library_;
};

template <class Interface>
using plugin_object = std::unique_ptr<Interface, plugin_deleter>;

// Makes the plugin's object; a transport calls it once, on the plugin's thread.
template <class Interface>
using plugin_factory = std::function<plugin_object<Interface>()>;

}  // namespace isolate::detail

#endif
