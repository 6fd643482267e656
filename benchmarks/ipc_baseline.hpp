// Building blocks of the raw baselines: CPU placement, futex waiting, a shared
// page with one 8-byte-to-64-KiB mailbox per direction, and a forked peer.
// Deliberately plain: these are the floor isolate's transports are held to.
#ifndef ISOLATE_BENCHMARKS_IPC_BASELINE_HPP
#define ISOLATE_BENCHMARKS_IPC_BASELINE_HPP

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <immintrin.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace isolate::bench {

// Where the two sides of a ping-pong run. two_cores: caller on CPU 0, peer on
// CPU 1. one_core: both on CPU 0, so every hand-over goes through the scheduler.
enum class placement { two_cores, one_core };

inline char const* placement_name(placement p) { return p == placement::two_cores ? "two_cores" : "one_core"; }
inline int peer_cpu(placement p) { return p == placement::two_cores ? 1 : 0; }

inline void pin_this_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0) throw std::runtime_error("sched_setaffinity failed");
}

// Pins the calling thread for one benchmark run and gives the old mask back,
// so the next benchmark starts unplaced.
class scoped_pin {
 public:
  explicit scoped_pin(int cpu) {
    ::sched_getaffinity(0, sizeof old_, &old_);
    pin_this_thread(cpu);
  }
  ~scoped_pin() { ::sched_setaffinity(0, sizeof old_, &old_); }
  scoped_pin(scoped_pin const&) = delete;
  scoped_pin& operator=(scoped_pin const&) = delete;

 private:
  cpu_set_t old_{};
};

// Not FUTEX_PRIVATE: the word lives in memory shared by two processes.
inline void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT, expected, nullptr, nullptr, 0);
}
inline void futex_wake(std::atomic<std::uint32_t>* word) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

// How a side waits for the other's message.
enum class waiting { spin, spin_then_futex, futex };

// A few µs: long enough to cover a peer that is running on the other core,
// short enough not to burn a time slice when the peer needs this core. Sized in
// time, not pause iterations (one _mm_pause costs ≈25 ns on Zen 4, ≈5 on older cores).
inline constexpr std::chrono::nanoseconds spin_budget{3000};

inline constexpr std::size_t max_payload = std::size_t{64} << 10;

// One direction. seq and sleeping share a line (the waker reads both); the
// payload starts on its own line so copying it does not bounce the flags.
struct alignas(64) mailbox {
  std::atomic<std::uint32_t> seq{0};
  std::atomic<std::uint32_t> sleeping{0};  // the reader is (about to be) in FUTEX_WAIT
  std::atomic<std::uint32_t> stop{0};
  alignas(64) unsigned char payload[max_payload];
};

// Publishes message number `value`. A spinning reader only needs a release
// store (a plain mov on x86). A reader that may sleep needs more: the seq_cst
// store/load pair against its seq_cst sleeping/seq pair means one of the two
// sees the other, so FUTEX_WAKE is skipped only when the reader is certainly
// not asleep. On x86 that store is an xchg, which costs ~300 ns a round trip
// between processes on the AMD guest (benchmarks/README.md, "Toward the
// floor"), so the spin rows do not pay it.
inline void post(mailbox& box, std::uint32_t value, waiting how) {
  if (how == waiting::spin) {
    box.seq.store(value, std::memory_order_release);
    return;
  }
  box.seq.store(value, std::memory_order_seq_cst);
  if (box.sleeping.load(std::memory_order_seq_cst) != 0) futex_wake(&box.seq);
}

// Waits until message number `value` has been posted.
inline void wait_for(mailbox& box, std::uint32_t value, waiting how) {
  if (how != waiting::futex) {
    auto const deadline = std::chrono::steady_clock::now() + spin_budget;
    for (;;) {
      for (int i = 0; i < 8; ++i) {
        if (box.seq.load(std::memory_order_acquire) == value) return;
        _mm_pause();
      }
      if (how == waiting::spin_then_futex && std::chrono::steady_clock::now() > deadline) break;
    }
  }
  for (;;) {
    box.sleeping.store(1, std::memory_order_seq_cst);
    std::uint32_t const seen = box.seq.load(std::memory_order_seq_cst);
    if (seen == value) break;
    futex_wait(&box.seq, seen);
  }
  box.sleeping.store(0, std::memory_order_relaxed);
}

// Two mailboxes in one MAP_SHARED|MAP_ANONYMOUS mapping, inherited by fork.
struct shared_pair {
  mailbox to_peer;
  mailbox to_caller;
};

class shared_mapping {
 public:
  shared_mapping() {
    void* p = ::mmap(nullptr, sizeof(shared_pair), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    pair_ = new (p) shared_pair;
  }
  ~shared_mapping() { ::munmap(pair_, sizeof(shared_pair)); }
  shared_mapping(shared_mapping const&) = delete;
  shared_mapping& operator=(shared_mapping const&) = delete;
  shared_pair& operator*() const { return *pair_; }
  shared_pair* operator->() const { return pair_; }

 private:
  shared_pair* pair_;
};

// A forked peer pinned to `cpu`, running `body` then _exit(0). The benchmark
// processes that use this never start a thread, so fork is safe. The peer dies
// with its parent so an interrupted run leaves nothing spinning.
class forked_peer {
 public:
  template <class Body>
  forked_peer(int cpu, Body body) {
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      pin_this_thread(cpu);
      body();
      ::_exit(0);
    }
  }
  // Returns the exit status; 0 means the peer finished cleanly.
  int join() {
    int status = 0;
    if (pid_ > 0 && ::waitpid(pid_, &status, 0) == pid_) pid_ = -1;
    return status;
  }
  ~forked_peer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  forked_peer(forked_peer const&) = delete;
  forked_peer& operator=(forked_peer const&) = delete;

 private:
  pid_t pid_ = -1;
};

inline bool write_all(int fd, void const* data, std::size_t size) {
  auto const* p = static_cast<unsigned char const*>(data);
  while (size > 0) {
    ssize_t const n = ::write(fd, p, size);
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

inline bool read_all(int fd, void* data, std::size_t size) {
  auto* p = static_cast<unsigned char*>(data);
  while (size > 0) {
    ssize_t const n = ::read(fd, p, size);
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// Runs the benchmark loop, one round trip per iteration, and times every 64th
// round trip on its own to add per-round-trip percentiles (p50_ns, p99_ns) to
// the per-iteration mean Google Benchmark reports. Goals compare the p50s
// (report.py; medians, as a noisy machine needs); the mean, also in the
// table, includes the rare slow round trips that a median hides. A sampled
// round trip includes one clock read (≈20 ns, on both sides of a ratio);
// 1 in 64 leaves the mean unaffected.
template <class RoundTrip>
void run_round_trips(benchmark::State& state, RoundTrip round_trip) {
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(state.max_iterations / 64 + 1));
  std::uint64_t i = 0;
  for (auto _ : state) {
    if ((i++ & 63) != 0) {
      round_trip();
      continue;
    }
    auto const start = std::chrono::steady_clock::now();
    round_trip();
    samples.push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count());
  }
  if (samples.empty()) return;
  auto percentile = [&](double p) {
    auto const at = samples.begin() + static_cast<std::ptrdiff_t>(p * static_cast<double>(samples.size() - 1));
    std::nth_element(samples.begin(), at, samples.end());
    return *at;
  };
  state.counters["p50_ns"] = percentile(0.50);
  state.counters["p99_ns"] = percentile(0.99);
}

}  // namespace isolate::bench

#endif
