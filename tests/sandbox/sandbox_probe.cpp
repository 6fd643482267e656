// A small library the sandbox tests load with dlopen inside a sandbox: what a
// plugin does when it computes (threads, locks, condition variables, heap).
#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

// The sum of 0..n-1, computed by `threads` threads that meet on a condition
// variable (futex waits and wakes), plus the size of a heap block large
// enough to need mmap.
extern "C" __attribute__((visibility("default"))) long isolate_sandbox_probe(int n, int threads) {
  std::mutex mutex;
  std::condition_variable all_done;
  long total = 0;
  int done = 0;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      long part = 0;
      for (int i = t; i < n; i += threads) part += i;
      std::lock_guard lock(mutex);
      total += part;
      ++done;
      all_done.notify_all();
    });
  }
  {
    std::unique_lock lock(mutex);
    all_done.wait(lock, [&] { return done == threads; });
  }
  for (std::thread& thread : pool) thread.join();
  auto const block = std::make_unique<std::vector<char>>(std::size_t{4} << 20, 'x');
  return total + std::count(block->begin(), block->end(), 'x');
}
