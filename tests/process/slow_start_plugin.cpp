// A plugin whose constructor never finishes: the load must time out.
#include "faulty.hpp"

#include <isolate/export.hpp>

#include <unistd.h>

namespace process_test {
namespace {
struct slow_start final : faulty {
  slow_start() {
    for (;;) ::pause();
  }
  int add(int a, int b) override { return a + b; }
  int pid() override { return 0; }
  void segfault() override {}
  void abort_now() override {}
  void exit_now(int) override {}
  void hang() override {}
  int sleep_ms(int ms) override { return ms; }
  std::string text_of_size(std::uint64_t) override { return {}; }
  std::uint64_t size_of(const std::string&) override { return 0; }
  std::uint64_t checksum(const std::vector<std::uint8_t>&) override { return 0; }
  std::vector<std::uint8_t> pattern_of_size(std::uint64_t) override { return {}; }
  std::uint64_t size_of_fickle(const fickle&) override { return 0; }
  void scribble_over_shared_memory() override {}
  int meet(int) override { return -1; }
};
}  // namespace
}  // namespace process_test

ISOLATE_EXPORT_PLUGIN(process_test::faulty, process_test::slow_start);
