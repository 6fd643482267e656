// isolate's small call, `int add(int, int)`, under the thread and process
// policies (in_process: isolate_in_process_bench.cpp), placed like
// the baselines it is held to (baseline_thread_bench, baseline_process_bench,
// baseline_capnp_bench): one iteration = one call.
#include "isolate_bench_support.hpp"
#include "small_call.hpp"

#include <benchmark/benchmark.h>

#include <chrono>
#include <optional>

namespace {

using namespace isolate::bench;

// The worker thread is started by load() and inherits the CPU of the thread
// that loads: load on the peer's CPU, then move the caller to CPU 0.
void thread_add(benchmark::State& state, std::chrono::nanoseconds max_spin, placement where) {
  scoped_pin pin(peer_cpu(where));
  isolate::thread::options options;
  options.max_spin = max_spin;
  auto p = isolate::load<bench_service, isolate::thread>(plugin_path, options);
  pin_this_thread(0);
  run_adds(state, p);
}

// The small call with per-call accounting (p.with_accounting(cost)->add()):
// what measuring each call's CPU time, faults and peak growth costs.
template <class Plugin>
void run_accounted_adds(benchmark::State& state, Plugin& p) {
  isolate::call_cost cost;
  int sum = 0;
  for (int i = 0; i < warm_up_calls; ++i) sum = p.with_accounting(cost)->add(sum, 1);
  run_round_trips(state, [&] {
    sum = p.with_accounting(cost)->add(sum, 1);
    benchmark::DoNotOptimize(sum);
  });
  if (static_cast<benchmark::IterationCount>(sum) != state.iterations() + warm_up_calls || !cost.measured) {
    state.SkipWithError("add() with accounting answered wrongly, or unmeasured");
  }
}

void process_add_accounted(benchmark::State& state, placement where) {
  scoped_pin pin(0);
  auto p = isolate::load<bench_service, isolate::process>(plugin_path);
  pin_process(serving_pid(p), peer_cpu(where));
  run_accounted_adds(state, p);
}

// The small call to an object the plugin made (isolate::capability): the
// same round trip, plus the object's id in the frame.
void process_object_add(benchmark::State& state, placement where) {
  scoped_pin pin(0);
  auto p = isolate::load<bench_service, isolate::process>(plugin_path);
  pin_process(serving_pid(p), peer_cpu(where));
  auto adder = p->make_adder();
  run_adds(state, adder);
}

void thread_add_accounted(benchmark::State& state) {
  scoped_pin pin(peer_cpu(placement::two_cores));
  auto p = isolate::load<bench_service, isolate::thread>(plugin_path);
  pin_this_thread(0);
  run_accounted_adds(state, p);
}

// Several host threads calling one process plugin (worker concurrency 1:
// calls queue in the ring). Benchmark's thread 0 (the main thread) loads
// before the start barrier and unloads after the stop barrier. Unplaced.
std::optional<process_plugin> shared_plugin;

void process_throughput(benchmark::State& state, std::size_t concurrency) {
  if (state.thread_index() == 0) {
    isolate::process::options options;
    options.concurrency = concurrency;
    shared_plugin.emplace(isolate::load<bench_service, isolate::process>(plugin_path, options));
    for (int i = 0; i < warm_up_calls; ++i) benchmark::DoNotOptimize((*shared_plugin)->add(i, 1));
  }
  int sum = 0;
  for (auto _ : state) {
    sum = (*shared_plugin)->add(sum, 1);
    benchmark::DoNotOptimize(sum);
  }
  if (static_cast<benchmark::IterationCount>(sum) != state.iterations()) state.SkipWithError("add() answered wrongly");
  // Summed over threads, divided by the wall time: calls per second in all.
  state.counters["calls_per_second"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  if (state.thread_index() == 0) shared_plugin.reset();
}

}  // namespace

BENCHMARK_CAPTURE(thread_add, spin, isolate::thread::options{}.max_spin, placement::two_cores)
    ->Name("isolate_thread_add/spin")
    ->UseRealTime();
BENCHMARK_CAPTURE(thread_add, condvar, std::chrono::nanoseconds::zero(), placement::two_cores)
    ->Name("isolate_thread_add/condvar")
    ->UseRealTime();
// Same CPU: the transport skips spinning by itself.
BENCHMARK_CAPTURE(thread_add, one_core, isolate::thread::options{}.max_spin, placement::one_core)
    ->Name("isolate_thread_add/one_core")
    ->UseRealTime();
BENCHMARK_CAPTURE(process_add, ring_two, true, placement::two_cores)->Name("isolate_process_add/two_cores")->UseRealTime();
BENCHMARK_CAPTURE(process_add, ring_one, true, placement::one_core)->Name("isolate_process_add/one_core")->UseRealTime();
BENCHMARK_CAPTURE(process_object_add, two, placement::two_cores)
    ->Name("isolate_process_object_add/two_cores")
    ->UseRealTime();
// The same call to a sandboxed worker: the sandbox must cost nothing per call.
BENCHMARK_CAPTURE(process_add, strict_two, true, placement::two_cores, isolate::limits::strict())
    ->Name("isolate_process_add_strict/two_cores")
    ->UseRealTime();
BENCHMARK_CAPTURE(process_add, socket_two, false, placement::two_cores)
    ->Name("isolate_process_socket_add/two_cores")
    ->UseRealTime();
BENCHMARK_CAPTURE(process_add, socket_one, false, placement::one_core)
    ->Name("isolate_process_socket_add/one_core")
    ->UseRealTime();
BENCHMARK_CAPTURE(process_add_accounted, two, placement::two_cores)
    ->Name("isolate_process_add_accounted/two_cores")
    ->UseRealTime();
BENCHMARK_CAPTURE(process_add_accounted, one, placement::one_core)
    ->Name("isolate_process_add_accounted/one_core")
    ->UseRealTime();
BENCHMARK(thread_add_accounted)->Name("isolate_thread_add_accounted/spin")->UseRealTime();
BENCHMARK_CAPTURE(process_throughput, one, 1)
    ->Name("isolate_process_throughput")
    ->UseRealTime()
    ->Threads(1)
    ->Threads(2)
    ->Threads(4);
// The same with two threads serving in the worker (issue 13: 4 callers should
// get at least one caller's throughput).
BENCHMARK_CAPTURE(process_throughput, two, 2)
    ->Name("isolate_process_throughput/concurrency:2")
    ->UseRealTime()
    ->Threads(1)
    ->Threads(2)
    ->Threads(4);

BENCHMARK_MAIN();
