#include "isolate/wire/exception_codec.hpp"

#include <doctest/doctest.h>

#include "../support/failure.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

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

TEST_CASE("an isolate::error from the peer cannot choose this side's error code") {
  // isolate's own codes say what this side observed; from the peer they are a remote failure.
  for (auto code : {isolate::errc::timeout, isolate::errc::plugin_crashed, isolate::errc::quarantined,
                    isolate::errc::protocol_error, isolate::errc::message_too_large, isolate::errc::unsupported}) {
    const std::string name = isolate::wire::code_name(static_cast<std::int32_t>(code));
    CAPTURE(name);
    try {
      isolate::wire::rethrow_encoded(encoded(isolate::error(code, "slow")).bytes());
      FAIL("nothing thrown");
    } catch (const isolate::remote_error& e) {
      CHECK(e.code() == isolate::errc::remote_exception);
      CHECK(e.type_name() == "isolate::error");
      CHECK(e.message() == "the peer threw isolate::error (" + name + "): slow");
    }
  }
  CHECK(isolate::wire::code_name(static_cast<std::int32_t>(isolate::errc::timeout)) == "timeout");
  // remote_exception is the code it arrives with anyway: nothing to name.
  try {
    isolate::wire::rethrow_encoded(encoded(isolate::error(isolate::errc::remote_exception, "as is")).bytes());
    FAIL("nothing thrown");
  } catch (const isolate::remote_error& e) {
    CHECK(e.type_name() == "isolate::error");
    CHECK(e.message() == "as is");
  }
}

TEST_CASE("a forged error frame with an unknown code names the number") {
  isolate::wire::buffer out;
  {
    isolate::wire::output_archive archive(out);
    archive(isolate::wire::encoded_exception{999, "isolate::error", "made up"});
  }
  try {
    isolate::wire::rethrow_encoded(out.bytes());
    FAIL("nothing thrown");
  } catch (const isolate::remote_error& e) {
    CHECK(e.code() == isolate::errc::remote_exception);
    CHECK(e.message() == "the peer threw isolate::error (code 999): made up");
  }
}

TEST_CASE("an error relayed again names the first code, once") {
  // A remote_error passed on (say, a host service's failure rethrown by a plugin) keeps its type and message.
  try {
    isolate::wire::rethrow_encoded(encoded(isolate::error(isolate::errc::timeout, "slow")).bytes());
  } catch (const isolate::remote_error& first) {
    try {
      isolate::wire::rethrow_encoded(encoded(first).bytes());
      FAIL("nothing thrown");
    } catch (const isolate::remote_error& second) {
      CHECK(second.type_name() == "isolate::error");
      CHECK(second.message() == "the peer threw isolate::error (timeout): slow");
    }
  }
}

TEST_CASE("a long type name or message from the peer is cut, with a marker") {
  const std::string long_name(10'000, 'n');
  const std::string long_message(std::size_t{1} << 20, 'm');
  isolate::wire::buffer out;
  {
    isolate::wire::output_archive archive(out);
    archive(isolate::wire::encoded_exception{0, long_name, long_message});
  }
  try {
    isolate::wire::rethrow_encoded(out.bytes());
    FAIL("nothing thrown");
  } catch (const isolate::remote_error& e) {
    CHECK(e.type_name().size() < ISOLATE_MAX_REMOTE_TYPE_NAME + 64);
    CHECK(e.type_name().starts_with(std::string(ISOLATE_MAX_REMOTE_TYPE_NAME, 'n') + "... ["));
    const std::string cut = std::to_string(10'000 - ISOLATE_MAX_REMOTE_TYPE_NAME) + " more bytes cut";
    CHECK(isolate_test::contains(e.type_name(), cut));
    CHECK(e.message().size() < ISOLATE_MAX_REMOTE_MESSAGE + 64);
    CHECK(e.message().starts_with(std::string(ISOLATE_MAX_REMOTE_MESSAGE, 'm') + "... ["));
    CHECK(std::string_view(e.what()).size() < ISOLATE_MAX_REMOTE_MESSAGE + 128);
  }
  // A registered or standard type gets the cut message too.
  CHECK_THROWS_WITH_AS(isolate::wire::rethrow_encoded(encoded(std::runtime_error(long_message)).bytes()),
                       (std::string(ISOLATE_MAX_REMOTE_MESSAGE, 'm') + "... [" +
                        std::to_string(long_message.size() - ISOLATE_MAX_REMOTE_MESSAGE) + " more bytes cut]")
                           .c_str(),
                       std::runtime_error);
}

TEST_CASE("a message is cut between characters, not inside one") {
  // "x" then two-byte characters: the cap falls in the middle of one, which is left out whole.
  std::string message = "x";
  while (message.size() <= ISOLATE_MAX_REMOTE_MESSAGE) message += "\u00e9";
  try {
    isolate::wire::rethrow_encoded(encoded(std::domain_error(message)).bytes());
    FAIL("nothing thrown");
  } catch (const std::domain_error& e) {
    const std::string what = e.what();
    const std::string kept = what.substr(0, what.find("... ["));
    CHECK(kept.size() == ISOLATE_MAX_REMOTE_MESSAGE - 1);
    CHECK(kept == message.substr(0, kept.size()));
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
