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

  plugin_deleter() noexcept = default;
  // From the host's own objects (std::unique_ptr<Impl>): destroyed with delete.
  template <class T>
  plugin_deleter(std::default_delete<T>) noexcept {}  // implicit, so std::unique_ptr<Impl> converts
  // From a shared library: `destroy` is its entry's destroy, `library` keeps it mapped.
  plugin_deleter(destroy_function destroy, std::shared_ptr<const void> library) noexcept
      : destroy_(destroy), library_(std::move(library)) {}

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
