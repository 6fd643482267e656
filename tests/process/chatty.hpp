// A plugin that writes to its stdout and stderr on request: the capture of a
// worker's output (process::options::on_output).
#ifndef ISOLATE_TESTS_PROCESS_CHATTY_HPP
#define ISOLATE_TESTS_PROCESS_CHATTY_HPP

#include <isolate/interface.hpp>

#include <string>

namespace process_test {

// Set in the host (inherited by a `minimal` worker, or given to a sandboxed
// one through limits::policy::environment): how many lines of 100 bytes the
// plugin writes to stdout while it loads, "load <i> xxx...".
inline constexpr const char* load_lines_variable = "ISOLATE_TEST_CHATTY_LOAD_LINES";

ISOLATE_INTERFACE(chatty,
                  // "<fd> <i>" for i in [0, count), one line at a time through stdio (fd 1 or 2).
                  (void, number_lines, (int, int)),
                  // The bytes as they are, in one write(2) per 64 KiB, to fd 1 or 2.
                  (void, write_raw, (int, std::string const&)),
                  // Through stdio, `out` to stdout then `err` to stderr; then abort().
                  (void, print_then_abort, (std::string const&, std::string const&)),
                  (int, add, (int, int)));

}  // namespace process_test

#endif
