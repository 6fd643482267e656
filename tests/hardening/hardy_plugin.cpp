#include "hardy.hpp"

#include <isolate/error.hpp>
#ifdef HARDENING_FORGE_LIMITS_REPORT
#include <isolate/detail/process/control_channel.hpp>
#include <isolate/detail/process/handshake.hpp>
#endif
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

#ifdef HARDENING_FORGE_LIMITS_REPORT
// Built as isolate_test_forger (case 15): the plugin's first code, a static
// initialiser run by dlopen, writes a limits report of its own on the
// worker's control socket (claiming a limit that does not exist holds),
// then a ready.
std::string forged_report_sent = [] {
  using namespace isolate::detail;
  std::ifstream command_line("/proc/self/cmdline");
  int control = -1;
  for (std::string argument; std::getline(command_line, argument, '\0');) {
    if (argument.starts_with("--isolate-control-fd=")) control = std::atoi(argument.c_str() + 21);
  }
  if (control < 0) std::abort();  // no control socket found: the test would test nothing
  std::error_code ec;
  applied_message forged;
  forged.limits = {{"forged", "a limit the plugin says holds", true}};
  write_message(control, static_cast<std::uint32_t>(control_type::limits_applied), encode_message(forged),
                std::chrono::seconds(5), ec);
  write_message(control, static_cast<std::uint32_t>(control_type::ready), encode_message(ready_message{}),
                std::chrono::seconds(5), ec);
  return ec ? ec.message() : std::string("sent");
}();
#endif

}  // namespace
}  // namespace hardening_test

ISOLATE_EXPORT_PLUGIN(hardening_test::hardy, hardening_test::hardy_impl);
