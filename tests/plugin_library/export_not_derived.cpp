// ISOLATE_EXPORT_PLUGIN with an implementation that does not derive from the interface.
#include <isolate/export.hpp>

ISOLATE_INTERFACE(adder, (int, add, (int, int)));

struct unrelated {
  int add(int a, int b) { return a + b; }
};

ISOLATE_EXPORT_PLUGIN(adder, unrelated);
