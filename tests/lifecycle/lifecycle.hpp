// A plugin with both lifecycle hooks: its constructor reads the host's
// configuration and may refuse to start; its on_stop still calls the host.
#ifndef ISOLATE_TESTS_LIFECYCLE_LIFECYCLE_HPP
#define ISOLATE_TESTS_LIFECYCLE_LIFECYCLE_HPP

#include <isolate/interface.hpp>

#include <string>

namespace lifecycle_test {

// Served by the host: what the plugin went through, in order.
ISOLATE_INTERFACE(journal, (void, write, (std::string const&)));

// The plugin.
ISOLATE_INTERFACE(greeter,
                  (std::string, greet, (std::string const&)),
                  (std::string, configuration, ()));

}  // namespace lifecycle_test

#endif
