#include "hardy.hpp"

#include <isolate/error.hpp>
#include <isolate/export.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace hardening_test {
namespace {

class hardy_impl final : public hardy {
 public:
  explicit hardy_impl(isolate::plugin_context& host) : host_(host) {}

  int add(int a, int b) override { return a + b; }
  int pid() override { return static_cast<int>(::getpid()); }
  std::vector<std::uint8_t> bytes_of_size(std::uint64_t size) override {
    std::vector<std::uint8_t> bytes(size);
    for (std::uint64_t i = 0; i < size; ++i) bytes[i] = static_cast<std::uint8_t>(i * 7 + 1);
    return bytes;
  }
  std::uint64_t count_bytes(const std::vector<std::uint8_t>& bytes) override { return bytes.size(); }
  std::uint64_t fetch_from_host(std::uint64_t size) override {
    return host_.service<library>().text_of_size(size).size();
  }
  void send_notes(int count, std::uint64_t size) override {
    auto& sink = host_.events<notes>();
    const std::string text(size, 'n');
    for (int i = 0; i < count; ++i) sink.note(text);
  }
  void throw_isolate_error(int code, const std::string& message) override {
    throw isolate::error(static_cast<isolate::errc>(code), message);
  }
  std::vector<std::string> names() override { return {"a", "b"}; }
  tree grow(int depth) override {
    tree root;
    tree* at = &root;
    for (int i = 0; i < depth; ++i) at = &at->kids.emplace_back();
    return root;
  }
  // The rings' memory: side_state x2 (64 bytes each), then the host->worker
  // ring's control block, whose second cache line is the host's write index.
  void break_inbound_ring() override {
    std::ifstream maps("/proc/self/maps");
    unsigned long begin = 0;
    for (std::string line; std::getline(maps, line);) {
      if (line.find("isolate-rings") == std::string::npos) continue;
      std::istringstream(line) >> std::hex >> begin;
      break;
    }
    if (begin == 0) std::abort();  // no rings: the test would test nothing
    auto* write_index = reinterpret_cast<std::atomic<std::uint64_t>*>(begin + 128 + 64);
    write_index->store(~std::uint64_t{0} / 2, std::memory_order_release);
  }

 private:
  isolate::plugin_context& host_;
};

}  // namespace
}  // namespace hardening_test

ISOLATE_EXPORT_PLUGIN(hardening_test::hardy, hardening_test::hardy_impl);
