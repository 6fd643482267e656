// Payloads passed by value, one way: `consume(std::vector<std::uint8_t>)` of
// 1 KiB to 64 MiB under isolate::thread, isolate::process over the rings and
// over a socket. Caller on CPU 0, plugin on CPU 1. One iteration = one call;
// bytes_per_second counts the payload once (as memcpy/bytes:N does).
#include "isolate_bench_support.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <vector>

namespace {

using namespace isolate::bench;

template <class Plugin>
void run_consumes(benchmark::State& state, Plugin& p) {
  auto const bytes = static_cast<std::size_t>(state.range(0));
  std::vector<std::uint8_t> const payload(bytes, 7);
  // About 256 MiB of warm-up, at least 2 calls, at most the usual 200.
  auto const warm_up = std::clamp<std::size_t>((std::size_t{256} << 20) / bytes, 2, warm_up_calls);
  std::uint64_t received = 0;
  for (std::size_t i = 0; i < warm_up; ++i) received = p->consume(payload);
  run_round_trips(state, [&] {
    received = p->consume(payload);
    benchmark::DoNotOptimize(received);
  });
  if (received != bytes) state.SkipWithError("consume() answered wrongly");
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
}

// The same payloads returned: `produce(bytes)` answers with a vector of that size.
template <class Plugin>
void run_produces(benchmark::State& state, Plugin& p) {
  auto const bytes = static_cast<std::size_t>(state.range(0));
  auto const warm_up = std::clamp<std::size_t>((std::size_t{256} << 20) / bytes, 2, warm_up_calls);
  std::size_t received = 0;
  for (std::size_t i = 0; i < warm_up; ++i) received = p->produce(bytes).size();
  run_round_trips(state, [&] {
    received = p->produce(bytes).size();
    benchmark::DoNotOptimize(received);
  });
  if (received != bytes) state.SkipWithError("produce() answered wrongly");
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
}

// Caller on CPU 0 (while `pin` lives), worker on CPU 1.
auto load_placed_process(bool shared_memory) {
  isolate::process::options options;
  options.shared_memory = shared_memory;
  auto p = isolate::load<bench_service, isolate::process>(plugin_path, options);
  pin_process(worker_pid(p), 1);
  return p;
}

void process_result(benchmark::State& state, bool shared_memory) {
  scoped_pin pin(0);
  auto p = load_placed_process(shared_memory);
  run_produces(state, p);
}

void thread_by_value(benchmark::State& state) {
  scoped_pin pin(1);  // the worker thread inherits CPU 1
  auto p = isolate::load<bench_service, isolate::thread>(plugin_path);
  pin_this_thread(0);
  run_consumes(state, p);
}

void process_by_value(benchmark::State& state, bool shared_memory) {
  scoped_pin pin(0);
  auto p = load_placed_process(shared_memory);
  run_consumes(state, p);
}

void sizes(benchmark::internal::Benchmark* b) {
  b->ArgName("bytes")->UseRealTime();
  for (std::int64_t bytes : {std::int64_t{1} << 10, std::int64_t{64} << 10, std::int64_t{1} << 20, std::int64_t{64} << 20})
    b->Arg(bytes);
}

}  // namespace

BENCHMARK(thread_by_value)->Name("isolate_thread_by_value")->Apply(sizes);
BENCHMARK_CAPTURE(process_by_value, ring, true)->Name("isolate_process_by_value")->Apply(sizes);
BENCHMARK_CAPTURE(process_by_value, socket, false)->Name("isolate_process_socket_by_value")->Apply(sizes);

BENCHMARK_CAPTURE(process_result, ring, true)->Name("isolate_process_result")->Apply(sizes);
BENCHMARK_CAPTURE(process_result, socket, false)->Name("isolate_process_socket_result")->Apply(sizes);

BENCHMARK_MAIN();
