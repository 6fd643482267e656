// What one call cost the plugin, measured where it ran (per-call accounting):
//
//   isolate::call_cost cost;
//   auto tree = p.with_accounting(cost)->parse(text);
//   fmt::print("{}\n", cost);  // "cpu 1.20 ms user, 30.0 us system; 2100 page faults; peak +8.2 MiB"
//
// Under thread and process the figures are the plugin thread's that ran the
// call, from decoding its arguments to encoding its result; under in_process
// they are the caller's own thread's (the call runs there).
#ifndef ISOLATE_CALL_COST_HPP
#define ISOLATE_CALL_COST_HPP

#include <chrono>
#include <cstdint>

namespace isolate {

struct call_cost {
  // False when the call never ran to its end in the plugin (the plugin died,
  // the call timed out or could not be sent): the figures are then zero.
  bool measured = false;
  // The thread's CPU time, as the kernel counts it (getrusage RUSAGE_THREAD:
  // microseconds; the split between user and system is sampled, their sum is exact).
  std::chrono::microseconds cpu_user{}, cpu_system{};
  // Page faults the thread took: minor ones are mostly first touches of
  // fresh memory (one per 4 KiB page, fewer with huge pages).
  std::uint64_t minor_faults = 0, major_faults = 0;
  // How far the call raised the peak resident memory of the process it ran
  // in (all its threads): zero when it stayed under an earlier peak.
  std::uint64_t peak_memory_growth_bytes = 0;
};

}  // namespace isolate

#endif
