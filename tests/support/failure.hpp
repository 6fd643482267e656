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

// The isolate::remote_error `f` throws; fails the test if it throws none (any
// other exception escapes, failing the test too).
template <class F>
isolate::remote_error remote_failure_of(F&& f) {
  try {
    f();
  } catch (const isolate::remote_error& e) {
    return e;
  }
  FAIL("no isolate::remote_error was thrown");
  return isolate::remote_error("", "");
}

// Whether `e` is what an isolate::error the peer threw with the code named
// `code` becomes (wire/exception_codec.hpp): only this side's own
// observations carry isolate's codes.
inline bool thrown_by_peer(const isolate::remote_error& e, const std::string& code) {
  return e.code() == isolate::errc::remote_exception && e.type_name() == "isolate::error" &&
         contains(e.message(), "the peer threw isolate::error (" + code + "): ");
}

}  // namespace isolate_test

#endif
