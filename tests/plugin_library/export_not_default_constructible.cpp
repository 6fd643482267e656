// ISOLATE_EXPORT_PLUGIN with an implementation that needs constructor arguments.
#include <isolate/export.hpp>

ISOLATE_INTERFACE(adder, (int, add, (int, int)));

struct offset_adder final : adder {
  explicit offset_adder(int offset) : offset_(offset) {}
  int add(int a, int b) override { return a + b + offset_; }
  int offset_;
};

ISOLATE_EXPORT_PLUGIN(adder, offset_adder);
