#include "isolate/detail/throw_error.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <string>
#include <system_error>

using isolate::detail::throw_error;
using isolate::detail::throw_if_error;

TEST_CASE("throw_error throws an isolate::error with the code and what was being done") {
  try {
    throw_error(make_error_code(isolate::errc::timeout), "waiting for the plugin");
    FAIL("nothing thrown");
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::timeout);
    CHECK(std::string(e.what()).find("waiting for the plugin") != std::string::npos);
  }
  try {
    throw_error(std::make_error_code(std::errc::broken_pipe), "writing");
    FAIL("nothing thrown");
  } catch (const isolate::error& e) {  // a system code keeps its own category
    CHECK(e.code() == std::errc::broken_pipe);
  }
}

TEST_CASE("throw_if_error throws for an error, and only then") {
  CHECK_NOTHROW(throw_if_error(std::error_code{}, "nothing wrong"));
  CHECK_THROWS_AS(throw_if_error(make_error_code(isolate::errc::plugin_closed), "calling"), isolate::error);
}
