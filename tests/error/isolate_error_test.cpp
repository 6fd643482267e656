// isolate/error.hpp (named isolate_error_test: error_test is shm/error.hpp's).
#include "isolate/error.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <set>
#include <string>
#include <system_error>
#include <type_traits>

using isolate::errc;

TEST_CASE("errc is an error_code enum of the isolate category, each code with its own message") {
  static_assert(std::is_error_code_enum_v<errc>);
  const std::error_code ec = errc::timeout;  // implicit, through make_error_code
  CHECK(ec.category() == isolate::error_category());
  CHECK(std::string(ec.category().name()) == "isolate");
  CHECK(ec == errc::timeout);
  CHECK(ec != errc::plugin_crashed);
  CHECK(ec != std::errc::timed_out);  // isolate's codes are not the system's

  std::set<std::string> messages;
  for (int code = static_cast<int>(errc::protocol_error); code <= static_cast<int>(errc::load_refused); ++code) {
    const auto message = isolate::make_error_code(static_cast<errc>(code)).message();
    CHECK(message != "unknown isolate error");
    messages.insert(message);
  }
  CHECK(messages.size() == static_cast<std::size_t>(errc::load_refused));  // all different
  CHECK(isolate::make_error_code(static_cast<errc>(999)).message() == "unknown isolate error");
}

TEST_CASE("isolate::error carries its code and what was being done") {
  const isolate::error plain(errc::load_failed);
  CHECK(plain.code() == errc::load_failed);
  const isolate::error described(errc::plugin_closed, "calling add");
  CHECK(described.code() == errc::plugin_closed);
  CHECK(std::string(described.what()).find("calling add") != std::string::npos);
  const isolate::error system(std::make_error_code(std::errc::broken_pipe), "writing");
  CHECK(system.code() == std::errc::broken_pipe);
  static_assert(std::is_base_of_v<std::system_error, isolate::error>);
}

TEST_CASE("remote_error keeps the plugin's type name and message") {
  const isolate::remote_error e("my::parse_error", "line 3: unexpected '}'");
  CHECK(e.code() == errc::remote_exception);
  CHECK(e.type_name() == "my::parse_error");
  CHECK(e.message() == "line 3: unexpected '}'");
  static_assert(std::is_base_of_v<isolate::error, isolate::remote_error>);
}
