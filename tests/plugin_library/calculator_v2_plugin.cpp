// A plugin built from another declaration of `calculator` (calculator_v2.hpp).
#include <isolate/export.hpp>

#include "calculator_v2.hpp"

namespace plugin_library_test_v2 {

struct calculator_impl final : calculator {
  int add(int a, int b) override { return a + b; }
  std::string greet(std::string name) override { return "hi, " + name; }
  std::uint64_t constructor_thread() override { return 0; }
  bool on_constructor_thread() override { return true; }
  void report_destruction_to(const std::string&) override {}
  void fail(const std::string&) override {}
};

ISOLATE_EXPORT_PLUGIN(calculator, calculator_impl);

}  // namespace plugin_library_test_v2
