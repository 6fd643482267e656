// Many plugins at once: a fleet of process plugins under limits::strict()
// (namespaces, Landlock, seccomp: each worker is two processes), loaded from
// 4 threads at once, each answering a call, all alive together. One
// iteration is the whole fleet's life; ISOLATE_BENCH_PLUGINS sets its size
// (1000). Counters:
//   start_all_ns        from the first load to the last plugin's first answer
//   start_p50_ns        one load (and its first call), median, while 4 run at once
//   host_threads_count  the threads the host runs while the fleet lives, beyond those it ran
//                       before (the loaders have ended by then)
//   host_bytes          the host's RSS growth for the whole fleet
//   worker_pss_bytes    PSS of one plugin's processes, mean
//   memory_bytes        host growth + every worker process's PSS: what the fleet costs in all
//   calls_per_second    one call to each plugin in turn, from one thread
//   stop_all_ns         unloading the fleet, from 4 threads
#include "isolate_bench_support.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace isolate::bench;
using clock_type = std::chrono::steady_clock;
constexpr unsigned loaders = 4;

std::size_t fleet_size() {
  const char* text = std::getenv("ISOLATE_BENCH_PLUGINS");
  return text != nullptr && *text != '\0' ? std::stoul(text) : 1000;
}

int host_threads() {
  int count = 0;
  for ([[maybe_unused]] const auto& task : std::filesystem::directory_iterator("/proc/self/task")) ++count;
  return count;
}

// Runs f(i) for i in [0, n) on `loaders` threads; returns once all are done.
template <class F>
void on_loaders(std::size_t n, F&& f) {
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < loaders; ++t) {
    threads.emplace_back([&] {
      for (std::size_t i; (i = next.fetch_add(1)) < n;) f(i);
    });
  }
  for (auto& t : threads) t.join();
}

void many_plugins(benchmark::State& state, isolate::limits::policy limits) {
  isolate::raise_open_files_limit();
  const std::size_t n = fleet_size();
  isolate::process::options options;
  options.limits = limits;
  for (auto _ : state) {
    const int threads_before = host_threads();
    const auto rss_before = status_bytes(::getpid(), "VmRSS");
    std::vector<std::optional<process_plugin>> fleet(n);
    std::vector<double> starts(n);
    std::atomic<int> failures{0};
    const auto began = clock_type::now();
    on_loaders(n, [&](std::size_t i) {
      const auto t0 = clock_type::now();
      try {
        fleet[i].emplace(isolate::load<bench_service, isolate::process>(plugin_path, options));
        if ((*fleet[i])->add(static_cast<int>(i), 1) != static_cast<int>(i) + 1) failures.fetch_add(1);
      } catch (const std::exception& e) {
        if (failures.fetch_add(1) == 0) state.SkipWithError(e.what());
      }
      starts[i] = std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
    });
    const auto all_up = clock_type::now();
    if (failures.load() != 0) {
      state.SkipWithError((std::to_string(failures.load()) + " plugins failed to start or answer").c_str());
      break;
    }
    // All alive at once: count what the host runs and what they all weigh.
    const int threads_during = host_threads();
    const auto rss_during = status_bytes(::getpid(), "VmRSS");
    double worker_pss = 0;
    for (auto& p : fleet) {
      const pid_t worker = worker_pid(*p);
      const pid_t serving = serving_pid(*p);
      worker_pss += static_cast<double>(pss_bytes(worker));
      if (serving != worker) worker_pss += static_cast<double>(pss_bytes(serving));
    }
    const auto calls_began = clock_type::now();
    long answered = 0;
    for (int round = 0; round < 10; ++round) {
      for (std::size_t i = 0; i < n; ++i) answered += (*fleet[i])->add(1, 2) == 3 ? 1 : 0;
    }
    const auto calls_took = std::chrono::duration<double>(clock_type::now() - calls_began).count();
    if (answered != static_cast<long>(10 * n)) state.SkipWithError("a plugin answered wrongly");
    const auto stop_began = clock_type::now();
    on_loaders(n, [&](std::size_t i) { fleet[i].reset(); });
    const auto stopped = clock_type::now();

    std::sort(starts.begin(), starts.end());
    const double host_growth = static_cast<double>(rss_during) - static_cast<double>(rss_before);
    state.SetIterationTime(std::chrono::duration<double>(all_up - began).count());
    state.counters["start_all_ns"] = std::chrono::duration<double, std::nano>(all_up - began).count();
    state.counters["start_p50_ns"] = starts[n / 2];
    state.counters["host_threads_count"] = threads_during - threads_before;
    state.counters["host_bytes"] = host_growth;
    state.counters["worker_pss_bytes"] = worker_pss / static_cast<double>(n);
    state.counters["memory_bytes"] = host_growth + worker_pss;
    state.counters["calls_per_second"] = static_cast<double>(answered) / calls_took;
    state.counters["stop_all_ns"] = std::chrono::duration<double, std::nano>(stopped - stop_began).count();
    state.counters["plugins_count"] = static_cast<double>(n);
  }
}

}  // namespace

BENCHMARK_CAPTURE(many_plugins, strict, isolate::limits::strict())
    ->Name("isolate_many_plugins/strict")->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(many_plugins, minimal, isolate::limits::minimal())
    ->Name("isolate_many_plugins/minimal")->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
