// The process small call with isolate's telemetry compiled out
// (ISOLATE_TELEMETRY=0: no byte counts, no latency sampling), beside the
// same call with it in isolate_call_bench: the ratio of the two rows is what
// telemetry that is always on costs.
#define ISOLATE_TELEMETRY 0

#include "small_call.hpp"

#include <benchmark/benchmark.h>

namespace {

using namespace isolate::bench;

BENCHMARK_CAPTURE(process_add, ring_two, true, placement::two_cores)
    ->Name("isolate_process_add_no_telemetry/two_cores")
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
