// ISOLATE_EXPORT_PLUGIN with an ordinary class as the interface.
#include <isolate/export.hpp>

struct shape {
  virtual ~shape() = default;
};
struct square final : shape {};

ISOLATE_EXPORT_PLUGIN(shape, square);
