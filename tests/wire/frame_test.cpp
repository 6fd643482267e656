#include "isolate/wire/frame.hpp"

#include <doctest/doctest.h>

#include <cstring>

using isolate::wire::frame_kind;

namespace {
isolate::errc error_of(std::span<const std::byte> bytes, std::size_t max = 1024) {
  try {
    isolate::wire::parse(bytes, max);
  } catch (const isolate::error& e) {
    return static_cast<isolate::errc>(e.code().value());
  }
  return isolate::errc{};
}
}  // namespace

TEST_CASE("a frame carries its header and payload") {
  isolate::wire::buffer frame;
  isolate::wire::begin_frame(frame);
  frame.append("abc", 3);
  isolate::wire::finish_frame(frame, frame_kind::call, 7, 42, 3);
  const auto view = isolate::wire::parse(frame.bytes(), 1024);
  CHECK(view.header.kind == frame_kind::call);
  CHECK(view.header.method == 7);
  CHECK(view.header.call_id == 42);
  CHECK(view.header.service == 3);
  CHECK(view.payload.size() == 3);
  isolate::wire::set_call_id(frame, 99);
  CHECK(isolate::wire::parse(frame.bytes(), 1024).header.call_id == 99);
}

TEST_CASE("malformed frames are rejected with a named error") {
  isolate::wire::buffer frame;
  isolate::wire::begin_frame(frame);
  frame.append("abcd", 4);
  isolate::wire::finish_frame(frame, frame_kind::reply, 0, 1);

  CHECK(error_of(frame.bytes().first(10)) == isolate::errc::protocol_error);       // shorter than a header
  CHECK(error_of(frame.bytes().first(18)) == isolate::errc::protocol_error);       // truncated payload
  CHECK(error_of(frame.bytes(), 3) == isolate::errc::message_too_large);           // over the limit

  isolate::wire::buffer bad_kind;
  bad_kind.assign(frame.bytes());
  bad_kind.data()[4] = std::byte{77};
  CHECK(error_of(bad_kind.bytes()) == isolate::errc::protocol_error);

  isolate::wire::buffer bad_size;
  bad_size.assign(frame.bytes());
  const std::uint32_t lie = 1000;
  std::memcpy(bad_size.data(), &lie, sizeof lie);
  CHECK(error_of(bad_size.bytes()) == isolate::errc::protocol_error);
}

TEST_CASE("buffer grows past its inline capacity and moves") {
  isolate::wire::buffer b;
  std::string big(5000, 'q');
  b.append(big.data(), big.size());
  CHECK(b.size() == 5000);
  isolate::wire::buffer moved = std::move(b);
  CHECK(moved.size() == 5000);
  CHECK(std::memcmp(moved.data(), big.data(), big.size()) == 0);
  isolate::wire::buffer small;
  small.append("xy", 2);
  isolate::wire::buffer small_moved = std::move(small);
  CHECK(std::memcmp(small_moved.data(), "xy", 2) == 0);
}
