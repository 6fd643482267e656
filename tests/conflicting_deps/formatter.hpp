// The interface of the conflicting_deps plugins: each is built against one
// edition of libversioned and says which one it was built against and which
// one it actually runs with.
#ifndef ISOLATE_TESTS_CONFLICTING_DEPS_FORMATTER_HPP
#define ISOLATE_TESTS_CONFLICTING_DEPS_FORMATTER_HPP

#include <isolate/interface.hpp>

#include <string>

namespace conflicting_deps_test {

ISOLATE_INTERFACE(formatter,
                  // VERSIONED_LEVEL of the header the plugin was compiled with.
                  (int, built_against, ()),
                  // versioned::api_level() of the library it is bound to at run time.
                  (int, api_level, ()),
                  (std::string, format, (int)),
                  // format then, where libversioned 1.1 is required, parse again.
                  (int, round_trip, (int)),
                  // The file of the libversioned it is bound to (dladdr).
                  (std::string, library_file, ()),
                  (int, pid, ()));

}  // namespace conflicting_deps_test

#endif
