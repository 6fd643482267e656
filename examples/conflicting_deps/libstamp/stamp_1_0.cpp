// libstamp 1.0: US dates.
#include "stamp.hpp"

#include <cstdio>

namespace stamp {

const char* version() { return "1.0"; }

std::string format_date(int year, int month, int day) {
  char text[32];
  std::snprintf(text, sizeof text, "%02d/%02d/%04d", month, day, year);
  return text;
}

}  // namespace stamp
