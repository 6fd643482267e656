// One run of isolate::sandbox (a function of this program run in a fresh
// sandboxed process): cold (the run starts its processes: fork of the fork
// server, namespaces, limits) and warm (taken from a pool kept started),
// against the same function called directly. One run per iteration;
// p50_ns is the median run, from the call to its result.
#include <isolate/sandbox.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

int add(int a, int b) { return a + b; }

double percentile(std::vector<double>& samples, double p) {
  auto const at = samples.begin() + static_cast<std::ptrdiff_t>(p * static_cast<double>(samples.size() - 1));
  std::nth_element(samples.begin(), at, samples.end());
  return *at;
}

void sandbox_run(benchmark::State& state, isolate::limits::policy limits, unsigned warm) {
  isolate::sandbox sb{limits, {.warm = warm}};
  std::vector<double> runs;
  for (auto _ : state) {
    // A warm row measures a warm run: the pool is refilled (in the
    // background) before each, untimed.
    while (warm > 0 && sb.warm_ready() < warm) std::this_thread::sleep_for(std::chrono::microseconds(100));
    auto const began = clock_type::now();
    int const sum = sb.run(add, 2, 3);
    double const took = std::chrono::duration<double>(clock_type::now() - began).count();
    if (sum != 5) state.SkipWithError("add() answered wrongly");
    if (warm > 0 && !sb.last_report().warm) state.SkipWithError("a warm row's run was cold");
    state.SetIterationTime(took);
    runs.push_back(took * 1e9);
  }
  if (runs.empty()) return;
  state.counters["p50_ns"] = percentile(runs, 0.50);
  state.counters["p99_ns"] = percentile(runs, 0.99);
}

void plain_call(benchmark::State& state) {
  int a = 2;
  for (auto _ : state) {
    benchmark::DoNotOptimize(a);
    benchmark::DoNotOptimize(add(a, 3));
  }
}

}  // namespace

BENCHMARK_CAPTURE(sandbox_run, cold_minimal, isolate::limits::minimal(), 0)
    ->Name("isolate_sandbox_run/cold/minimal")->UseManualTime()->Iterations(200)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(sandbox_run, cold_strict, isolate::limits::strict(), 0)
    ->Name("isolate_sandbox_run/cold/strict")->UseManualTime()->Iterations(200)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(sandbox_run, cold_maximum, isolate::limits::maximum(), 0)
    ->Name("isolate_sandbox_run/cold/maximum")->UseManualTime()->Iterations(200)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(sandbox_run, warm_strict, isolate::limits::strict(), 1)
    ->Name("isolate_sandbox_run/warm/strict")->UseManualTime()->Iterations(200)->Unit(benchmark::kMicrosecond);
BENCHMARK(plain_call)->Name("sandbox_baseline_plain_call");

// The fork server starts first, while this program has one thread.
int main(int argc, char** argv) {
  isolate::sandbox::start_fork_server();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
