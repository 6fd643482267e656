// Shared buffers of 1 KiB, 64 MiB and 1 GiB passed to a process plugin:
// `consume_shared(buffer)` returns the size after reading one byte. The
// buffer is made and filled once, before timing; the first call sends the
// worker its memfd, every later one only (id, size), so a call should cost
// the same at every size. Caller on CPU 0, plugin on CPU 1; one iteration =
// one call.
#include "isolate_bench_support.hpp"

#include <benchmark/benchmark.h>

#include <cstring>

namespace {

using namespace isolate::bench;

void process_shared_buffer(benchmark::State& state) {
  auto const bytes = static_cast<std::size_t>(state.range(0));
  isolate::shared_buffer buffer(bytes);
  std::memset(buffer.data(), 7, bytes);  // every page allocated, as a real user's data would be
  scoped_pin pin(0);
  auto p = isolate::load<bench_service, isolate::process>(plugin_path);
  pin_process(worker_pid(p), 1);
  std::uint64_t received = 0;
  for (int i = 0; i < warm_up_calls; ++i) received = p->consume_shared(buffer);
  run_round_trips(state, [&] {
    received = p->consume_shared(buffer);
    benchmark::DoNotOptimize(received);
  });
  if (received != bytes) state.SkipWithError("consume_shared() answered wrongly");
  if (p.transport().link().buffers_shared() != 1) state.SkipWithError("the buffer was sent more than once");
}

}  // namespace

BENCHMARK(process_shared_buffer)
    ->Name("isolate_process_shared_buffer")
    ->ArgName("bytes")
    ->Arg(std::int64_t{1} << 10)
    ->Arg(std::int64_t{64} << 20)
    ->Arg(std::int64_t{1} << 30)
    ->UseRealTime();

BENCHMARK_MAIN();
