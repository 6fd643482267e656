// The watched plugin's implementation, in a header so that the tests can
// also load it in_process and on a thread.
#ifndef ISOLATE_TESTS_SUPERVISION_WATCHED_IMPL_HPP
#define ISOLATE_TESTS_SUPERVISION_WATCHED_IMPL_HPP

#include "watched.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <thread>

namespace supervision_test {

class watched_impl final : public watched {
 public:
  int add(int a, int b) override { return a + b; }

  void burn_cpu_ms(int ms) override {
    timespec start{}, now{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);
    volatile std::uint64_t spin = 0;
    for (;;) {
      for (int i = 0; i < 10000; ++i) spin = spin + 1;
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
      const auto spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1'000'000;
      if (spent >= ms) return;
    }
  }

  std::uint64_t touch_mib(std::uint64_t mib) override {
    const std::size_t size = mib << 20;
    auto block = std::make_unique<char[]>(size);
    for (std::size_t i = 0; i < size; i += 4096) block[i] = static_cast<char>(i >> 12);
    // Read back, so that the compiler cannot drop the allocation.
    std::uint64_t pages = 0;
    for (std::size_t i = 0; i < size; i += 4096) pages += block[i] == static_cast<char>(i >> 12) ? 1 : 0;
    return pages / 256;
  }

  void fail() override { throw std::runtime_error("asked to fail"); }
  void segfault() override { std::raise(SIGSEGV); }
  void exit_now(int code) override { std::_Exit(code); }
  void sleep_ms(int ms) override { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

  int try_network() override {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return errno;
    ::close(fd);
    return 0;
  }

  void write_stderr(int lines) override {
    for (int i = 0; i < lines; ++i) std::fprintf(stderr, "line %d\n", i);
  }
};

}  // namespace supervision_test


#endif
