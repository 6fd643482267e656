// In-process baselines: a virtual call, a round trip to another std::thread
// (atomic spin; mutex + condition variable), and memcpy bandwidth.
#include "ipc_baseline.hpp"
#include "virtual_adder.hpp"

#include <benchmark/benchmark.h>

#include <sys/resource.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using namespace isolate::bench;

void virtual_call(benchmark::State& state) {
  auto const owner = make_adder();
  adder* target = owner.get();
  int sum = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(target);  // the pointer is opaque again every call: no devirtualization
    sum = target->add(sum, 1);
    benchmark::DoNotOptimize(sum);
  }
}

// Each counter on its own line so the two threads do not share one.
struct alignas(64) counter {
  std::atomic<std::uint64_t> value{0};
};

void thread_spin(benchmark::State& state) {
  scoped_pin pin(0);
  counter ping;
  counter pong;
  std::atomic<bool> stop{false};
  std::thread peer([&] {
    pin_this_thread(1);
    for (std::uint64_t n = 1;; ++n) {
      while (ping.value.load(std::memory_order_acquire) != n) _mm_pause();
      if (stop.load(std::memory_order_relaxed)) return;
      pong.value.store(n, std::memory_order_release);
    }
  });
  std::uint64_t n = 0;
  run_round_trips(state, [&] {
    ping.value.store(++n, std::memory_order_release);
    while (pong.value.load(std::memory_order_acquire) != n) _mm_pause();
  });
  stop.store(true, std::memory_order_relaxed);
  ping.value.store(n + 1, std::memory_order_release);
  peer.join();
}

void thread_condvar(benchmark::State& state, placement where) {
  scoped_pin pin(0);
  std::mutex mutex;
  std::condition_variable to_peer;
  std::condition_variable to_caller;
  std::uint64_t request = 0;
  std::uint64_t reply = 0;
  bool stop = false;
  std::thread peer([&] {
    pin_this_thread(peer_cpu(where));
    for (std::uint64_t n = 1;; ++n) {
      {
        std::unique_lock lock(mutex);
        to_peer.wait(lock, [&] { return request == n || stop; });
        if (stop) return;
        reply = n;
      }
      to_caller.notify_one();
    }
  });
  std::uint64_t n = 0;
  // Notify after unlocking: a woken waiter that preempts the notifier (one
  // core) would otherwise block at once on the mutex the notifier still holds.
  run_round_trips(state, [&] {
    {
      std::lock_guard lock(mutex);
      request = ++n;
    }
    to_peer.notify_one();
    std::unique_lock lock(mutex);
    to_caller.wait(lock, [&] { return reply == n; });
  });
  {
    std::lock_guard lock(mutex);
    stop = true;
  }
  to_peer.notify_one();
  peer.join();
}

void memcpy_bandwidth(benchmark::State& state) {
  auto const bytes = static_cast<std::size_t>(state.range(0));
  auto const from = std::make_unique<unsigned char[]>(bytes);
  auto const to = std::make_unique<unsigned char[]>(bytes);
  // Fault every page in before timing.
  std::memset(from.get(), 1, bytes);
  std::memset(to.get(), 2, bytes);
  for (auto _ : state) {
    std::memcpy(to.get(), from.get(), bytes);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
}

// A copy into a new vector, as plain C++ passing a vector by value makes it:
// the allocation's pages are faulted in by the copy (4 KiB pages, where
// isolate's decoder asks for huge ones: detail/huge_pages.hpp).
void fresh_vector_copy(benchmark::State& state) {
  auto const bytes = static_cast<std::size_t>(state.range(0));
  std::vector<unsigned char> const from(bytes, 1);
  for (auto _ : state) {
    std::vector<unsigned char> copy(from.begin(), from.end());
    benchmark::DoNotOptimize(copy.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
}

// The floor of per-call accounting: the two reads of a thread's usage
// (getrusage(RUSAGE_THREAD)) the plugin's thread makes around an accounted call.
void thread_usage_reads(benchmark::State& state) {
  rusage before{}, after{};
  for (auto _ : state) {
    ::getrusage(RUSAGE_THREAD, &before);
    ::getrusage(RUSAGE_THREAD, &after);
    benchmark::DoNotOptimize(before);
    benchmark::DoNotOptimize(after);
  }
}

}  // namespace

BENCHMARK(thread_usage_reads)->Name("getrusage_thread_x2");
BENCHMARK(virtual_call);
BENCHMARK(thread_spin)->Name("thread_spin/two_cores")->UseRealTime();
BENCHMARK_CAPTURE(thread_condvar, a, placement::two_cores)->Name("thread_condvar/two_cores")->UseRealTime();
BENCHMARK_CAPTURE(thread_condvar, b, placement::one_core)->Name("thread_condvar/one_core")->UseRealTime();
BENCHMARK(memcpy_bandwidth)->Name("memcpy")->ArgName("bytes")->Arg(std::int64_t{64} << 20)->UseRealTime();
BENCHMARK(fresh_vector_copy)->ArgName("bytes")->Arg(std::int64_t{64} << 20)->UseRealTime();

BENCHMARK_MAIN();
