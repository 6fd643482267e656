// Another declaration of `calculator`: the same name, but greet takes its
// argument by value. A plugin built from it must be refused by a host built
// from calculator.hpp.
#ifndef ISOLATE_TESTS_PLUGIN_LIBRARY_CALCULATOR_V2_HPP
#define ISOLATE_TESTS_PLUGIN_LIBRARY_CALCULATOR_V2_HPP

#include <isolate/interface.hpp>

#include <cstdint>
#include <string>

namespace plugin_library_test_v2 {

ISOLATE_INTERFACE(calculator,
                  (int, add, (int, int)),
                  (std::string, greet, (std::string)),
                  (std::uint64_t, constructor_thread, ()),
                  (bool, on_constructor_thread, ()),
                  (void, report_destruction_to, (std::string const&)),
                  (void, fail, (std::string const&)));

}  // namespace plugin_library_test_v2

#endif
