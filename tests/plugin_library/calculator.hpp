// The interface the plugin_library tests load from shared libraries.
#ifndef ISOLATE_TESTS_PLUGIN_LIBRARY_CALCULATOR_HPP
#define ISOLATE_TESTS_PLUGIN_LIBRARY_CALCULATOR_HPP

#include <isolate/interface.hpp>

#include <cstdint>
#include <string>

namespace plugin_library_test {

ISOLATE_INTERFACE(calculator,
                  (int, add, (int, int)),
                  (std::string, greet, (std::string const&)),
                  // std::hash of the id of the thread that constructed the plugin.
                  (std::uint64_t, constructor_thread, ()),
                  // Whether the call runs on the thread that constructed the plugin.
                  (bool, on_constructor_thread, ()),
                  // The destructor writes "destroyed" to this file.
                  (void, report_destruction_to, (std::string const&)),
                  (void, fail, (std::string const&)));

}  // namespace plugin_library_test

#endif
