// libstamp 1.1: ISO 8601 dates, same soname and symbols as 1.0.
#include "stamp.hpp"

#include <cstdio>

namespace stamp {

const char* version() { return "1.1"; }

std::string format_date(int year, int month, int day) {
  char text[32];
  std::snprintf(text, sizeof text, "%04d-%02d-%02d", year, month, day);
  return text;
}

}  // namespace stamp
