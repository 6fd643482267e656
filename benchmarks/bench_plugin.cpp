// The plugin behind isolate's benchmarks (built with isolate_add_plugin, so
// the process transport's isolate-worker sits next to it).
#include <isolate/export.hpp>

#include "bench_interface.hpp"

namespace isolate::bench {
namespace {

class bench_service_impl final : public bench_service {
 public:
  int add(int a, int b) override { return a + b; }
  // The argument has been copied in by the time this runs; nothing more to do.
  std::uint64_t consume(const std::vector<std::uint8_t>& data) override { return data.size(); }
};

}  // namespace

ISOLATE_EXPORT_PLUGIN(bench_service, bench_service_impl);

}  // namespace isolate::bench
