// libversioned 1.0.
#include "versioned.hpp"

namespace versioned {

int api_level() { return 1; }

std::string format(int value) { return std::to_string(value); }

}  // namespace versioned
