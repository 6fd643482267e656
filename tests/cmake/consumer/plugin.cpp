// The consumer's plugin, built with isolate_add_plugin().
#include "greeter.hpp"

#include <isolate/export.hpp>

struct friendly final : greeter {
  std::string greet(const std::string& name) override { return "hello, " + name; }
  int twice(int x) override { return 2 * x; }
};

ISOLATE_EXPORT_PLUGIN(greeter, friendly);
