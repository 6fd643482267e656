// A plugin that misbehaves on request: the failure paths of the process transport.
#ifndef ISOLATE_TESTS_PROCESS_FAULTY_HPP
#define ISOLATE_TESTS_PROCESS_FAULTY_HPP

#include <isolate/interface.hpp>

#include <cstdint>
#include <string>

namespace process_test {

ISOLATE_INTERFACE(faulty,
                  (int, add, (int, int)),
                  (int, pid, ()),
                  (void, segfault, ()),
                  (void, abort_now, ()),
                  (void, exit_now, (int)),
                  (void, hang, ()),
                  (int, sleep_ms, (int)),
                  (std::string, text_of_size, (std::uint64_t)),
                  (std::uint64_t, size_of, (std::string const&)),
                  (void, scribble_over_shared_memory, ()));

}  // namespace process_test

#endif
