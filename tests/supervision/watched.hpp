// A plugin whose work is known, for telemetry, violations and quarantine:
// CPU it burns, memory it touches, failures of each kind on request.
#ifndef ISOLATE_TESTS_SUPERVISION_WATCHED_HPP
#define ISOLATE_TESTS_SUPERVISION_WATCHED_HPP

#include <isolate/interface.hpp>

#include <cstdint>
#include <string>

namespace supervision_test {

ISOLATE_INTERFACE(watched,
                  (int, add, (int, int)),
                  // Spins on the CPU (user time) for `ms` of its own CPU time.
                  (void, burn_cpu_ms, (int)),
                  // Allocates `mib` MiB and writes every page (freed on return).
                  (std::uint64_t, touch_mib, (std::uint64_t)),
                  // Throws std::runtime_error.
                  (void, fail, ()),
                  (void, segfault, ()),
                  (void, exit_now, (int)),
                  (void, sleep_ms, (int)),
                  // socket(AF_INET, SOCK_STREAM, 0): 0 if it worked, else the errno.
                  (int, try_network, ()),
                  // Writes `lines` numbered lines to stderr.
                  (void, write_stderr, (int)));

}  // namespace supervision_test

#endif
