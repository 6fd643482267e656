// A plugin whose constructor throws: loading it must fail with the message.
#include <isolate/export.hpp>

#include "calculator.hpp"

#include <stdexcept>

namespace plugin_library_test {

// Defined in the plugin only (hidden): the host sees it through std::runtime_error.
struct licence_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct throwing_calculator final : calculator {
  throwing_calculator() { throw licence_error("no licence file found"); }
  int add(int, int) override { return 0; }
  std::string greet(const std::string&) override { return {}; }
  std::uint64_t constructor_thread() override { return 0; }
  bool on_constructor_thread() override { return false; }
  void report_destruction_to(const std::string&) override {}
  void fail(const std::string&) override {}
};

ISOLATE_EXPORT_PLUGIN(calculator, throwing_calculator);

}  // namespace plugin_library_test
