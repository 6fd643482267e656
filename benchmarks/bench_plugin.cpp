// The plugin behind isolate's benchmarks (built with isolate_add_plugin, so
// the process transport's isolate-worker sits next to it).
#include <isolate/export.hpp>

#include "bench_interface.hpp"

namespace isolate::bench {
namespace {

struct adder_impl final : bench_adder {
  int add(int a, int b) override { return a + b; }
};

class bench_service_impl final : public bench_service {
 public:
  isolate::capability<bench_adder> make_adder() override { return isolate::make_capability<adder_impl>(); }
  int add(int a, int b) override { return a + b; }
  // The argument has been copied in by the time this runs; nothing more to do.
  std::uint64_t consume(const std::vector<std::uint8_t>& data) override { return data.size(); }
  // A copy of a block kept warm, so that the row measures the return, not first touches of fresh memory.
  std::vector<std::uint8_t> produce(std::uint64_t size) override {
    if (kept_.size() != size) kept_.assign(size, 7);
    return kept_;
  }
  // Reads one byte (the middle page is faulted in the first time), so the
  // mapping is really there; copies nothing.
  std::uint64_t consume_shared(const isolate::shared_buffer& buffer) override {
    const auto bytes = buffer.as<const volatile std::uint8_t>();
    return bytes.empty() ? 0 : buffer.size() + 0 * bytes[bytes.size() / 2];
  }

 private:
  std::vector<std::uint8_t> kept_;
};

}  // namespace

ISOLATE_EXPORT_PLUGIN(bench_service, bench_service_impl);

}  // namespace isolate::bench
