// isolate's small call, `int add(int, int)`, under in_process: one iteration =
// one call, held to a plain virtual call (baseline_thread_bench's virtual_call).
//
// In a file of its own, as in a host built with one policy per plugin: where
// the same translation unit also instantiates the remote proxy (thread or
// process), GCC guesses that proxy as the likely target of every call through
// the interface and compares against it before each call (speculative
// devirtualization), which costs about a cycle on a call of four.
#include "isolate_bench_support.hpp"

#include <benchmark/benchmark.h>

namespace {

using namespace isolate::bench;

void in_process_add(benchmark::State& state) {
  auto p = isolate::load<bench_service, isolate::in_process>(plugin_path);
  int sum = 0;
  for (auto _ : state) {
    sum = p->add(sum, 1);
    benchmark::DoNotOptimize(sum);
  }
  if (static_cast<benchmark::IterationCount>(sum) != state.iterations()) state.SkipWithError("add() answered wrongly");
}

}  // namespace

BENCHMARK(in_process_add)->Name("isolate_in_process_add");

BENCHMARK_MAIN();
