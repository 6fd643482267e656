#include "faulty.hpp"

#include <isolate/export.hpp>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

namespace process_test {
namespace {

struct faulty_impl final : faulty {
  int add(int a, int b) override { return a + b; }
  int pid() override { return static_cast<int>(::getpid()); }
  void segfault() override { std::raise(SIGSEGV); }
  void abort_now() override { std::abort(); }
  void exit_now(int status) override { std::_Exit(status); }
  void hang() override {
    for (;;) ::pause();
  }
  int sleep_ms(int ms) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
  }
  std::string text_of_size(std::uint64_t size) override { return std::string(size, 'z'); }
  std::uint64_t size_of(const std::string& text) override { return text.size(); }
  std::uint64_t checksum(const std::vector<std::uint8_t>& bytes) override { return checksum_of(bytes); }
  std::vector<std::uint8_t> pattern_of_size(std::uint64_t size) override { return pattern_of(size); }
  std::uint64_t size_of_fickle(const fickle& payload) override { return payload.bytes.size(); }

  // Returns once `group` calls are inside meet() at once (a barrier), with
  // the most calls ever inside together; -1 if the others did not come within
  // 10 s (the calls do not run at once).
  int meet(int group) override {
    std::unique_lock lock(meeting_);
    const int generation = generation_;
    most_inside_ = std::max(most_inside_, ++inside_);
    if (++arrived_ == group) {
      arrived_ = 0;
      ++generation_;
      met_.notify_all();
    } else {
      met_.wait_for(lock, std::chrono::seconds(10), [&] { return generation_ != generation; });
    }
    --inside_;
    return generation_ != generation ? most_inside_ : -1;
  }

  // A hostile plugin that knows the layout of the shared memory: it keeps
  // filling the rings with garbage and ringing the host's doorbells, and never
  // answers. The host must notice and kill it with protocol_error.
  void scribble_over_shared_memory() override {
    std::ifstream maps("/proc/self/maps");
    unsigned long begin = 0, end = 0;
    for (std::string line; std::getline(maps, line);) {
      if (line.find("isolate-rings") == std::string::npos) continue;
      char dash = 0;
      std::istringstream(line) >> std::hex >> begin >> dash >> end;
      break;
    }
    if (begin == 0) std::abort();  // no rings: the test would not test anything
    // side_state x2 (64 bytes each), then per ring a 256-byte control block
    // (its futex words on the last line) and `capacity` bytes of data.
    unsigned long capacity = 1;
    while (128 + 2 * (256 + capacity * 2) <= end - begin) capacity *= 2;
    auto* bytes = reinterpret_cast<unsigned char*>(begin);
    const unsigned long bells[] = {128 + 192, 128 + 256 + capacity + 192};
    std::mt19937 random(7);
    for (;;) {
      for (unsigned long i = 0; i < end - begin; ++i) bytes[i] = static_cast<unsigned char>(random());
      for (unsigned long bell : bells) ::syscall(SYS_futex, bytes + bell, FUTEX_WAKE, 1 << 30, nullptr, nullptr, 0);
    }
  }

 private:
  std::mutex meeting_;
  std::condition_variable met_;
  int generation_ = 0;
  int arrived_ = 0;
  int inside_ = 0;
  int most_inside_ = 0;
};

}  // namespace
}  // namespace process_test

ISOLATE_EXPORT_PLUGIN(process_test::faulty, process_test::faulty_impl);
