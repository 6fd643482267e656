// libversioned 1.1: same soname and symbols as 1.0, other behaviour, one more function.
#include "versioned.hpp"

#include <charconv>
#include <stdexcept>
#include <system_error>

namespace versioned {

int api_level() { return 2; }

std::string format(int value) {
  char digits[16];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value, 16);
  if (ec != std::errc()) throw std::length_error("versioned::format: no room for the digits");
  return "0x" + std::string(digits, end);
}

int parse(const std::string& text) {
  if (text.rfind("0x", 0) != 0) throw std::invalid_argument("versioned::parse: '" + text + "' does not start with 0x");
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data() + 2, text.data() + text.size(), value, 16);
  if (ec != std::errc() || end != text.data() + text.size()) {
    throw std::invalid_argument("versioned::parse: '" + text + "' is not hexadecimal");
  }
  return value;
}

}  // namespace versioned
