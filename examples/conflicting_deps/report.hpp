// The interface both plugins of the example implement.
#ifndef CONFLICTING_DEPS_REPORT_HPP
#define CONFLICTING_DEPS_REPORT_HPP

#include <isolate/interface.hpp>

#include <string>

namespace example {

ISOLATE_INTERFACE(report,
                  (std::string, name, ()),
                  // The libstamp release the plugin was compiled and linked against.
                  (std::string, built_against, ()),
                  // The libstamp release its calls actually reach.
                  (std::string, running_against, ()),
                  (std::string, date, (int, int, int)),
                  (int, pid, ()));

}  // namespace example

#endif
