// What a call fails with, for tests of failure paths.
#ifndef ISOLATE_TESTS_SUPPORT_FAILURE_HPP
#define ISOLATE_TESTS_SUPPORT_FAILURE_HPP

#include <isolate/error.hpp>

#include <doctest/doctest.h>

#include <string>

namespace isolate_test {

// The isolate::error `f` throws; fails the test if it throws none.
template <class F>
isolate::error failure_of(F&& f) {
  try {
    f();
  } catch (const isolate::error& e) {
    return e;
  }
  FAIL("no isolate::error was thrown");
  return isolate::error(isolate::errc::unsupported);
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace isolate_test

#endif
