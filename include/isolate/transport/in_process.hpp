// isolate::in_process: the plugin is a plain object in the host; a call is a
// virtual call, with no marshalling at all.
#ifndef ISOLATE_TRANSPORT_IN_PROCESS_HPP
#define ISOLATE_TRANSPORT_IN_PROCESS_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/plugin_object.hpp"
#include "isolate/error.hpp"
#include "isolate/interface.hpp"

#include <functional>
#include <memory>

namespace isolate {

struct in_process {
  static constexpr bool calls_can_time_out = false;
  struct options {};

  template <interface Interface>
  class connection {
   public:
    connection(detail::plugin_factory<Interface> make, const options&) {
      try {
        impl_ = make();
        impl_.get_deleter().start(impl_.get());  // its on_load
      } catch (const std::exception& e) {
        throw detail::start_failure(e);
      }
      if (!impl_) throw error(errc::load_failed, "the plugin factory returned no object");
    }
    // A graceful unload: the plugin's on_stop, then its destructor.
    ~connection() { impl_.get_deleter().stop(impl_.get()); }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    Interface* target() noexcept { return impl_.get(); }

   private:
    detail::plugin_object<Interface> impl_;
  };
};

}  // namespace isolate

#endif
