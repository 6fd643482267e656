// detail/config.hpp: every default a user may change by defining the macro first.
#define ISOLATE_MAX_DECODE_DEPTH 99  // a user's choice wins over the default
#include "isolate/detail/config.hpp"

#include <doctest/doctest.h>

#include <cstddef>

TEST_CASE("configuration macros: defaults, and a user's definition first") {
  static_assert(ISOLATE_MAX_DECODE_DEPTH == 99);
  static_assert(ISOLATE_CACHE_LINE >= 64 && (ISOLATE_CACHE_LINE & (ISOLATE_CACHE_LINE - 1)) == 0,
                "a power of two, at least 64");
  static_assert(ISOLATE_DEFAULT_MAX_MESSAGE_SIZE == std::size_t{256} << 20);
  static_assert(ISOLATE_DECODE_ALLOCATION_FACTOR > 0);
  static_assert(ISOLATE_MAX_REMOTE_TYPE_NAME > 0 && ISOLATE_MAX_REMOTE_MESSAGE > 0);
  static_assert(ISOLATE_MAX_METHODS == 32 && ISOLATE_MAX_PARAMS == 16);
  CHECK(true);
}
