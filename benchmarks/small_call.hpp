// The small call, `int add(int, int)`, as the call benchmarks measure it:
// shared by isolate_call_bench and isolate_telemetry_off_bench (the same
// call with telemetry compiled out).
#ifndef ISOLATE_BENCHMARKS_SMALL_CALL_HPP
#define ISOLATE_BENCHMARKS_SMALL_CALL_HPP

#include "isolate_bench_support.hpp"

#include <benchmark/benchmark.h>

#include <string>

// Each benchmark executable has its own copy (an unnamed namespace, as the
// benchmarks' other helpers).
namespace {

using namespace isolate::bench;

// Calls add() `warm_up_calls` times, then once per iteration, and checks the
// sum at the end, so a wrong answer cannot pass for a fast one.
template <class Plugin>
void run_adds(benchmark::State& state, Plugin& p) {
  int sum = 0;
  for (int i = 0; i < warm_up_calls; ++i) sum = p->add(sum, 1);
  run_round_trips(state, [&] {
    sum = p->add(sum, 1);
    benchmark::DoNotOptimize(sum);
  });
  if (static_cast<benchmark::IterationCount>(sum) != state.iterations() + warm_up_calls) {
    state.SkipWithError(("add() answered wrongly: " + std::to_string(sum) + " after " +
                         std::to_string(state.iterations()) + " iterations").c_str());
  }
}

void process_add(benchmark::State& state, bool shared_memory, placement where,
                        isolate::limits::policy limits = isolate::limits::minimal()) {
  scoped_pin pin(0);
  isolate::process::options options;
  options.shared_memory = shared_memory;
  options.limits = limits;
  auto p = isolate::load<bench_service, isolate::process>(plugin_path, options);
  pin_process(serving_pid(p), peer_cpu(where));
  run_adds(state, p);
}

}  // namespace

#endif
