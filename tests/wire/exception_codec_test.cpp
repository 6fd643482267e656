#include "isolate/wire/exception_codec.hpp"

#include <doctest/doctest.h>

#include <stdexcept>

namespace wire_test {
struct custom_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct registered_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
}  // namespace wire_test

namespace {
template <class E>
isolate::wire::buffer encoded(E e) {
  isolate::wire::buffer out;
  isolate::wire::encode_exception(out, std::make_exception_ptr(e));
  return out;
}
}  // namespace

TEST_CASE("standard exceptions come back as the same type with the same message") {
  CHECK_THROWS_WITH_AS(isolate::wire::rethrow_encoded(encoded(std::invalid_argument("bad arg")).bytes()), "bad arg",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(isolate::wire::rethrow_encoded(encoded(std::out_of_range("far")).bytes()), "far",
                       std::out_of_range);
  CHECK_THROWS_WITH_AS(isolate::wire::rethrow_encoded(encoded(std::runtime_error("rt")).bytes()), "rt",
                       std::runtime_error);
  CHECK_THROWS_WITH_AS(isolate::wire::rethrow_encoded(encoded(std::logic_error("lg")).bytes()), "lg",
                       std::logic_error);
  CHECK_THROWS_AS(isolate::wire::rethrow_encoded(encoded(std::bad_alloc()).bytes()), std::bad_alloc);
}

TEST_CASE("an unknown exception type arrives as remote_error with its type name and message") {
  try {
    isolate::wire::rethrow_encoded(encoded(wire_test::custom_failure("custom")).bytes());
    FAIL("nothing thrown");
  } catch (const isolate::remote_error& e) {
    CHECK(e.type_name() == "wire_test::custom_failure");
    CHECK(e.message() == "custom");
    CHECK(e.code() == isolate::errc::remote_exception);
  }
}

TEST_CASE("a registered exception type comes back as itself") {
  isolate::register_exception<wire_test::registered_failure>();
  CHECK_THROWS_WITH_AS(isolate::wire::rethrow_encoded(encoded(wire_test::registered_failure("mine")).bytes()), "mine",
                       wire_test::registered_failure);
}

TEST_CASE("isolate::error keeps its code and message without growing") {
  try {
    isolate::wire::rethrow_encoded(encoded(isolate::error(isolate::errc::timeout, "slow")).bytes());
    FAIL("nothing thrown");
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::timeout);
    CHECK(isolate::wire::message_of(e) == "slow");
  }
}

TEST_CASE("a garbled exception payload is a protocol error") {
  auto bytes = encoded(std::runtime_error("x"));
  try {
    isolate::wire::rethrow_encoded(bytes.bytes().first(bytes.size() - 1));
    FAIL("nothing thrown");
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::protocol_error);
  }
}
