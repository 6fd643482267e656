#include "isolate/detail/codec.hpp"

#include "../support/failure.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

using isolate::errc;
using isolate_test::contains;
using isolate_test::failure_of;
using isolate_test::remote_failure_of;
using isolate_test::thrown_by_peer;
namespace detail = isolate::detail;
namespace wire = isolate::wire;

namespace codec_test {

struct point {
  std::int32_t x = 0;
  std::string label;
  std::vector<double> weights;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x, label, weights);
  }
  friend bool operator==(const point&, const point&) = default;
};

ISOLATE_INTERFACE(codec_probe,
                  (int, add, (int, int)),
                  (double, scale, (double, std::uint8_t)),
                  (std::string, greet, (std::string const&, bool)),
                  (point, move_point, (point, std::int32_t)),
                  ((std::map<std::string, int>), count, (std::vector<std::string> const&)),
                  (void, touch, ()),
                  (int, fail, (std::string const&)));

struct probe final : codec_probe {
  int add(int a, int b) override { return a + b; }
  double scale(double v, std::uint8_t by) override { return v * by; }
  std::string greet(const std::string& name, bool loud) override { return (loud ? "HELLO " : "hello ") + name; }
  point move_point(point p, std::int32_t dx) override {
    p.x += dx;
    p.label += "'";
    return p;
  }
  std::map<std::string, int> count(const std::vector<std::string>& words) override {
    std::map<std::string, int> counts;
    for (const auto& w : words) ++counts[w];
    return counts;
  }
  void touch() override { ++touches; }
  int fail(const std::string& why) override { throw std::runtime_error(why); }
  int touches = 0;
};

}  // namespace codec_test

using codec_test::codec_probe;

namespace {

constexpr std::size_t max_payload = 1 << 20;

// A call encoded as the caller does, run by the stub as the receiver does,
// its reply decoded as the caller does.
template <class Result, class... Args>
Result call(codec_test::probe& impl, std::uint16_t method, bool* malformed, const Args&... args) {
  wire::buffer request;
  detail::encode_call(request, method, max_payload, args...);
  const auto frame = wire::parse(request.bytes(), max_payload);
  CHECK(frame.header.kind == wire::frame_kind::call);
  CHECK(frame.header.method == method);
  wire::buffer reply;
  detail::stub<codec_probe>::handle(impl, frame, reply, max_payload, malformed);
  return detail::decode_reply<Result>(reply, max_payload);
}

}  // namespace

TEST_CASE("calls and replies make the round trip for several types") {
  codec_test::probe impl;
  bool malformed = false;
  CHECK(call<int>(impl, 0, &malformed, 2, 40) == 42);
  CHECK(call<double>(impl, 1, &malformed, 1.5, std::uint8_t{4}) == 6.0);
  CHECK(call<std::string>(impl, 2, &malformed, std::string("ada"), true) == "HELLO ada");
  const codec_test::point p{3, "p", {0.5, 2}};
  CHECK(call<codec_test::point>(impl, 3, &malformed, p, std::int32_t{-5}) == codec_test::point{-2, "p'", {0.5, 2}});
  const std::map<std::string, int> expected{{"a", 2}, {"b", 1}};
  CHECK(call<std::map<std::string, int>>(impl, 4, &malformed, std::vector<std::string>{"a", "b", "a"}) == expected);
  call<void>(impl, 5, &malformed);
  CHECK(impl.touches == 1);
  CHECK_FALSE(malformed);
}

TEST_CASE("numbers travel as their bytes; other values through the archive") {
  wire::buffer frame;
  detail::encode_call(frame, 0, max_payload, 7, 9);
  CHECK(frame.size() == wire::header_size + 2 * sizeof(int));
  int a = 0, b = 0;
  detail::decode_values(wire::parse(frame.bytes(), max_payload).payload, a, b);
  CHECK(a == 7);
  CHECK(b == 9);
  CHECK(detail::payload_size(7, 9) == 2 * sizeof(int));
  const std::string text = "abc";
  wire::buffer out;
  detail::encode_values(out, text);
  CHECK(detail::payload_size(text) == out.size());
}

TEST_CASE("a payload of the wrong size for its numbers is a protocol error") {
  wire::buffer frame;
  detail::encode_call(frame, 0, max_payload, 7);
  int a = 0, b = 0;
  const auto e = failure_of([&] { detail::decode_values(wire::parse(frame.bytes(), max_payload).payload, a, b); });
  CHECK(e.code() == errc::protocol_error);
}

TEST_CASE("a call over the maximum size is refused before it is sent") {
  wire::buffer frame;
  const std::string big(100, 'x');
  const auto e = failure_of([&] { detail::encode_call(frame, 2, 50, big, false); });
  CHECK(e.code() == errc::message_too_large);
}

TEST_CASE("decode_reply rethrows what the method threw, and refuses what is not a reply") {
  codec_test::probe impl;
  bool malformed = false;
  // A standard exception arrives as its own type (wire/exception_codec.hpp).
  CHECK_THROWS_WITH_AS(call<int>(impl, 6, &malformed, std::string("no luck")), "no luck", std::runtime_error);
  CHECK_FALSE(malformed);  // a method that throws is not a malformed call

  wire::buffer not_a_reply;
  detail::encode_call(not_a_reply, 0, max_payload, 1, 2);
  CHECK(failure_of([&] { detail::decode_reply<int>(not_a_reply, max_payload); }).code() == errc::protocol_error);

  wire::buffer short_reply;
  wire::begin_frame(short_reply);
  wire::finish_frame(short_reply, wire::frame_kind::reply, 0, 0);
  CHECK(failure_of([&] { detail::decode_reply<int>(short_reply, max_payload); }).code() == errc::protocol_error);
}

TEST_CASE("stub::handle: what a sender got wrong sets *malformed; what the method throws does not") {
  codec_test::probe impl;
  wire::buffer reply;
  bool malformed = false;

  SUBCASE("an unknown method id") {
    wire::buffer request;
    detail::encode_call(request, codec_probe::isolate_meta::method_count, max_payload);
    detail::stub<codec_probe>::handle(impl, wire::parse(request.bytes(), max_payload), reply, max_payload, &malformed);
    CHECK(malformed);
    const auto e = remote_failure_of([&] { detail::decode_reply<void>(reply, max_payload); });
    CHECK(thrown_by_peer(e, "protocol_error"));
    CHECK(contains(e.what(), "unknown method id"));
  }
  SUBCASE("arguments that do not decode: numbers of the wrong size") {
    wire::buffer request;
    detail::encode_call(request, 0, max_payload, 1);  // add takes two ints
    detail::stub<codec_probe>::handle(impl, wire::parse(request.bytes(), max_payload), reply, max_payload, &malformed);
    CHECK(malformed);
    CHECK(thrown_by_peer(remote_failure_of([&] { detail::decode_reply<int>(reply, max_payload); }), "protocol_error"));
  }
  SUBCASE("arguments that do not decode: a string longer than its payload") {
    wire::buffer request;
    detail::encode_call(request, 2, max_payload, std::string("truncated"), true);
    request.resize(request.size() - 4);
    wire::finish_frame(request, wire::frame_kind::call, 2, 0);
    detail::stub<codec_probe>::handle(impl, wire::parse(request.bytes(), max_payload), reply, max_payload, &malformed);
    CHECK(malformed);
    CHECK(thrown_by_peer(remote_failure_of([&] { detail::decode_reply<std::string>(reply, max_payload); }),
                         "protocol_error"));
  }
  SUBCASE("trailing bytes after the arguments") {
    wire::buffer request;
    detail::encode_call(request, 2, max_payload, std::string("x"), false);
    const char extra = 0;
    request.append(&extra, 1);
    wire::finish_frame(request, wire::frame_kind::call, 2, 0);
    detail::stub<codec_probe>::handle(impl, wire::parse(request.bytes(), max_payload), reply, max_payload, &malformed);
    CHECK(malformed);
  }
  SUBCASE("a method that throws") {
    wire::buffer request;
    detail::encode_call(request, 6, max_payload, std::string("thrown"));
    detail::stub<codec_probe>::handle(impl, wire::parse(request.bytes(), max_payload), reply, max_payload, &malformed);
    CHECK_FALSE(malformed);
    CHECK_THROWS_WITH_AS(detail::decode_reply<int>(reply, max_payload), "thrown", std::runtime_error);
  }
  SUBCASE("no flag given: still an error reply, never a throw") {
    wire::buffer request;
    detail::encode_call(request, 999, max_payload);
    CHECK_NOTHROW(detail::stub<codec_probe>::handle(impl, wire::parse(request.bytes(), max_payload), reply, max_payload));
    CHECK(wire::parse(reply.bytes(), max_payload).header.kind == wire::frame_kind::error);
  }
}

TEST_CASE("a reply over the maximum size becomes an error reply") {
  codec_test::probe impl;
  wire::buffer request;
  const std::string name(200, 'n');
  detail::encode_call(request, 2, max_payload, name, false);
  wire::buffer reply;
  bool malformed = false;
  detail::stub<codec_probe>::handle(impl, wire::parse(request.bytes(), max_payload), reply, 100, &malformed);
  CHECK_FALSE(malformed);
  CHECK(thrown_by_peer(remote_failure_of([&] { detail::decode_reply<std::string>(reply, max_payload); }),
                       "message_too_large"));
}

TEST_CASE("the reply carries the call's id, method and service") {
  codec_test::probe impl;
  wire::buffer request;
  detail::encode_call(request, 0, max_payload, 1, 2);
  wire::set_call_id(request, 77);
  request.data()[offsetof(wire::frame_header, service)] = std::byte{3};
  wire::buffer reply;
  detail::stub<codec_probe>::handle(impl, wire::parse(request.bytes(), max_payload), reply, max_payload);
  const auto header = wire::parse(reply.bytes(), max_payload).header;
  CHECK(header.kind == wire::frame_kind::reply);
  CHECK(header.call_id == 77);
  CHECK(header.method == 0);
  CHECK(header.service == 3);
}

namespace {

// Keeps what a stub streams, as the worker's ring would carry it.
struct recording_stream final : wire::reply_stream {
  bool send(const wire::frame_header& header, void (*write)(wire::output_archive&, const void*),
            const void* value) override {
    ++frames;
    frame.clear();
    frame.append(&header, wire::header_size);
    wire::output_archive archive(frame);
    write(archive, value);
    return true;
  }
  int frames = 0;
  wire::buffer frame;
};

}  // namespace

TEST_CASE("a large result that cannot fail part-way is streamed; others, and those too large, are gathered") {
  codec_test::probe impl;
  recording_stream stream;
  const std::string name(wire::large_payload, 'n');
  auto handle = [&](wire::buffer& request, wire::buffer& reply, std::size_t max) {
    wire::set_call_id(request, 41);
    detail::stub<codec_probe>::handle(impl, wire::parse(request.bytes(), max_payload), reply, max, nullptr, &stream);
  };

  SUBCASE("a large string: streamed, the reply buffer left empty") {
    wire::buffer request, reply;
    detail::encode_call(request, 2, max_payload, name, true);
    handle(request, reply, max_payload);
    CHECK(reply.size() == 0);
    REQUIRE(stream.frames == 1);
    const auto header = wire::parse(stream.frame.bytes(), max_payload).header;
    CHECK(header.kind == wire::frame_kind::reply);
    CHECK(header.call_id == 41);
    CHECK(header.method == 2);
    CHECK(detail::decode_reply<std::string>(stream.frame, max_payload) == "HELLO " + name);
  }
  SUBCASE("a small string: gathered") {
    wire::buffer request, reply;
    detail::encode_call(request, 2, max_payload, std::string("ada"), false);
    handle(request, reply, max_payload);
    CHECK(stream.frames == 0);
    CHECK(detail::decode_reply<std::string>(reply, max_payload) == "hello ada");
  }
  SUBCASE("a large string over the maximum: an error reply, gathered") {
    wire::buffer request, reply;
    detail::encode_call(request, 2, max_payload, name, true);
    handle(request, reply, wire::large_payload);
    CHECK(stream.frames == 0);
    CHECK(thrown_by_peer(remote_failure_of([&] { detail::decode_reply<std::string>(reply, max_payload); }),
                         "message_too_large"));
  }
  SUBCASE("a large map (its elements are written one by one): gathered") {
    std::vector<std::string> words;
    for (int i = 0; i < 4000; ++i) words.push_back("word" + std::to_string(i));
    wire::buffer request, reply;
    detail::encode_call(request, 4, max_payload, words);
    handle(request, reply, max_payload);
    CHECK(stream.frames == 0);
    CHECK(detail::decode_reply<std::map<std::string, int>>(reply, max_payload).size() == 4000);
  }
  SUBCASE("an accounted call: gathered, its cost after the result") {
    wire::buffer request, reply;
    detail::encode_call(request, 2, max_payload, name, true);
    request.data()[offsetof(wire::frame_header, kind)] = static_cast<std::byte>(wire::frame_kind::accounted_call);
    handle(request, reply, max_payload);
    CHECK(stream.frames == 0);
    CHECK(reply.size() > name.size());
  }
}
