// A process plugin's life outside calls: how long load() takes until the
// first call has returned, and what an idle plugin costs (worker memory, and
// CPU over one second with nothing to do). Unplaced.
#include "isolate_bench_support.hpp"

#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

namespace {

using namespace isolate::bench;
using clock_type = std::chrono::steady_clock;

double percentile(std::vector<double>& samples, double p) {
  auto const at = samples.begin() + static_cast<std::ptrdiff_t>(p * static_cast<double>(samples.size() - 1));
  std::nth_element(samples.begin(), at, samples.end());
  return *at;
}

// The memory counters of process `pid`: VmRSS (every resident page it maps,
// including the C++ runtime shared with other processes) split into
// anonymous, file and shared-memory pages, and PSS (shared pages divided
// among the processes mapping them).
void count_memory(benchmark::State& state, pid_t pid) {
  state.counters["rss_bytes"] = static_cast<double>(status_bytes(pid, "VmRSS"));
  state.counters["rss_anon_bytes"] = static_cast<double>(status_bytes(pid, "RssAnon"));
  state.counters["rss_file_bytes"] = static_cast<double>(status_bytes(pid, "RssFile"));
  state.counters["rss_shmem_bytes"] = static_cast<double>(status_bytes(pid, "RssShmem"));
  state.counters["pss_bytes"] = static_cast<double>(pss_bytes(pid));
}

// One iteration = spawn, handshake, dlopen in the worker, first add(); the
// unload that follows is timed apart (manual time counts the start only).
// Sandboxed, the start includes the namespaces, PID 1's fork and the limits.
void process_start(benchmark::State& state, isolate::limits::policy limits) {
  std::vector<double> starts;
  std::vector<double> unloads;
  isolate::process::options options;
  options.limits = limits;
  for (auto _ : state) {
    auto const began = clock_type::now();
    std::optional<process_plugin> p;
    p.emplace(isolate::load<bench_service, isolate::process>(plugin_path, options));
    int const sum = (*p)->add(2, 3);
    auto const ready = clock_type::now();
    p.reset();
    auto const gone = clock_type::now();
    if (sum != 5) state.SkipWithError("add() answered wrongly");
    double const start_s = std::chrono::duration<double>(ready - began).count();
    state.SetIterationTime(start_s);
    starts.push_back(start_s * 1e9);
    unloads.push_back(std::chrono::duration<double, std::nano>(gone - ready).count());
  }
  if (starts.empty()) return;
  state.counters["p50_ns"] = percentile(starts, 0.50);
  state.counters["p99_ns"] = percentile(starts, 0.99);
  state.counters["unload_p50_ns"] = percentile(unloads, 0.50);
}

// One iteration: a loaded plugin that made one call, then one second with
// none. The worker's RSS (VmRSS: counts every resident page it maps,
// including the C++ runtime shared with other processes; PSS divides those)
// and the CPU its threads and the host's threads burned meanwhile.
// Sandboxed, the worker is two processes (PID 1 of its namespace and the
// one serving): the counters add both up.
void process_idle(benchmark::State& state, isolate::limits::policy limits) {
  constexpr auto idle = std::chrono::seconds(1);
  isolate::process::options options;
  options.limits = limits;
  for (auto _ : state) {
    auto p = isolate::load<bench_service, isolate::process>(plugin_path, options);
    if (p->add(2, 3) != 5) state.SkipWithError("add() answered wrongly");
    pid_t const worker = serving_pid(p);
    pid_t const init = worker_pid(p) == worker ? 0 : worker_pid(p);
    // Let a spinning waiter give up before measuring (the spin is ≤ 50 µs).
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto const worker_before = cpu_ns(worker);
    auto const host_before = cpu_ns(::getpid());
    auto const began = clock_type::now();
    std::this_thread::sleep_for(idle);
    double const elapsed_ns = std::chrono::duration<double, std::nano>(clock_type::now() - began).count();
    auto const worker_used = cpu_ns(worker) - worker_before;
    auto const host_used = cpu_ns(::getpid()) - host_before;
    state.counters["cpu_percent"] = 100.0 * static_cast<double>(worker_used) / elapsed_ns;
    state.counters["host_cpu_percent"] = 100.0 * static_cast<double>(host_used) / elapsed_ns;
    count_memory(state, worker);
    if (init != 0) {
      const double rss = state.counters["rss_bytes"], pss = state.counters["pss_bytes"];
      count_memory(state, init);
      state.counters["init_rss_bytes"] = state.counters["rss_bytes"];
      state.counters["init_pss_bytes"] = state.counters["pss_bytes"];
      state.counters["rss_bytes"] = rss + state.counters["init_rss_bytes"];
      state.counters["pss_bytes"] = pss + state.counters["init_pss_bytes"];
    }
  }
}

// The same counters for a trivial C++ program (idle_cxx_process.cpp): the
// resident size of any dynamically linked C++ process on this machine, which
// an idle plugin's RSS includes.
void cxx_process_idle(benchmark::State& state) {
  for (auto _ : state) {
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) {
      state.SkipWithError("pipe2 failed");
      return;
    }
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, to_child[0], STDIN_FILENO);
    ::posix_spawn_file_actions_adddup2(&actions, from_child[1], STDOUT_FILENO);
    char program[] = ISOLATE_BENCH_IDLE_CXX_PROCESS;
    char* argv[] = {program, nullptr};
    pid_t child = -1;
    int const spawned = ::posix_spawn(&child, program, &actions, nullptr, argv, environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(to_child[0]);
    ::close(from_child[1]);
    char ready = 0;
    bool const up = spawned == 0 && ::read(from_child[0], &ready, 1) == 1;
    if (up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      count_memory(state, child);
    }
    ::close(to_child[1]);  // the child's stdin closes: it exits
    ::close(from_child[0]);
    if (spawned == 0) ::waitpid(child, nullptr, 0);
    if (!up) state.SkipWithError("the idle C++ process did not start");
  }
}

}  // namespace

BENCHMARK(cxx_process_idle)->Name("baseline_cxx_process_idle")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(process_start, minimal, isolate::limits::minimal())
    ->Name("isolate_process_start")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(process_start, standard, isolate::limits::standard())
    ->Name("isolate_process_start/standard")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(process_start, strict, isolate::limits::strict())
    ->Name("isolate_process_start/strict")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(process_start, maximum, isolate::limits::maximum())
    ->Name("isolate_process_start/maximum")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(process_idle, minimal, isolate::limits::minimal())
    ->Name("isolate_process_idle")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(process_idle, strict, isolate::limits::strict())
    ->Name("isolate_process_idle/strict")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
