#include "isolate/interface.hpp"

#include "../support/failure.hpp"
#include "../support/loopback.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace interface_test {

struct shape {
  std::string name;
  std::vector<double> sides;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, sides);
  }
};

ISOLATE_INTERFACE(geometry,
                  (double, perimeter, (shape const&)),
                  ((std::map<std::string, int>), tally, (std::vector<std::string>)),
                  (void, reset, ()));

// The same names with one signature changed: a different fingerprint.
namespace changed {
ISOLATE_INTERFACE(geometry,
                  (double, perimeter, (shape const&)),
                  ((std::map<std::string, int>), tally, (std::vector<std::string> const&)),
                  (void, reset, ()));
}

struct geometry_impl final : geometry {
  double perimeter(const shape& s) override {
    double sum = 0;
    for (double side : s.sides) sum += side;
    return sum;
  }
  std::map<std::string, int> tally(std::vector<std::string> words) override {
    std::map<std::string, int> counts;
    for (auto& w : words) ++counts[w];
    return counts;
  }
  void reset() override { ++resets; }
  int resets = 0;
};

}  // namespace interface_test

using interface_test::geometry;

TEST_CASE("the method table lists names, ids and signatures in declaration order") {
  using meta = geometry::isolate_meta;
  static_assert(meta::method_count == 3);
  static_assert(meta::interface_name == "geometry");
  CHECK(meta::methods[0].name == "perimeter");
  CHECK(meta::methods[0].signature == "double(shape const&)");
  CHECK(meta::methods[1].name == "tally");
  CHECK(meta::methods[1].signature == "std::map<std::string, int>(std::vector<std::string>)");
  CHECK(meta::methods[2].signature == "void()");
  static_assert(std::get<2>(meta::pointers) == &geometry::reset);
}

TEST_CASE("the fingerprint is fixed at compile time and changes with any signature") {
  static_assert(isolate::fingerprint_v<geometry> != 0);
  static_assert(isolate::fingerprint_v<geometry> != isolate::fingerprint_v<interface_test::changed::geometry>);
  constexpr std::uint64_t again = isolate::detail::fingerprint_of("geometry", geometry::isolate_meta::methods);
  static_assert(again == isolate::fingerprint_v<geometry>);
}

TEST_CASE("the interface is an abstract class; the proxy implements it") {
  static_assert(std::is_abstract_v<geometry>);
  static_assert(std::has_virtual_destructor_v<geometry>);
  static_assert(isolate::interface<geometry>);
  static_assert(!isolate::interface<interface_test::shape>);
  static_assert(std::is_base_of_v<geometry, geometry::isolate_meta::proxy<isolate::detail::client>>);
}

TEST_CASE("calls through proxy and stub reach the implementation") {
  auto impl = std::make_unique<interface_test::geometry_impl>();
  auto* raw = impl.get();
  isolate_test::loopback<geometry> remote(std::move(impl));
  CHECK(remote->perimeter({"square", {1, 2, 3, 4}}) == 10.0);
  const auto counts = remote->tally({"a", "b", "a"});
  CHECK(counts.at("a") == 2);
  CHECK(counts.at("b") == 1);
  remote->reset();
  remote->reset();
  CHECK(raw->resets == 2);
}

TEST_CASE("the stub rejects an unknown method id with a protocol error reply") {
  interface_test::geometry_impl impl;
  isolate::wire::buffer call, reply;
  isolate::detail::encode_call(call, 0, 1024);
  isolate::wire::finish_frame(call, isolate::wire::frame_kind::call, 3, 1);  // method 3 does not exist
  isolate::detail::stub<geometry>::handle(impl, isolate::wire::parse(call.bytes(), 1024), reply, 1024);
  // The caller did not observe the protocol error itself: it arrives as the stub's.
  const auto e = isolate_test::remote_failure_of([&] { isolate::detail::decode_reply<void>(reply, 1024); });
  CHECK(isolate_test::thrown_by_peer(e, "protocol_error"));
  CHECK(isolate_test::contains(e.message(), "unknown method id 3"));
}

TEST_CASE("the stub rejects arguments that do not decode") {
  interface_test::geometry_impl impl;
  isolate::wire::buffer call, reply;
  isolate::wire::begin_frame(call);
  call.append("\x05\x00\x00\x00", 4);  // a truncated string length
  isolate::wire::finish_frame(call, isolate::wire::frame_kind::call, 0, 1);
  isolate::detail::stub<geometry>::handle(impl, isolate::wire::parse(call.bytes(), 1024), reply, 1024);
  const auto e = isolate_test::remote_failure_of([&] { isolate::detail::decode_reply<double>(reply, 1024); });
  CHECK(isolate_test::thrown_by_peer(e, "protocol_error"));
}

namespace interface_test {
ISOLATE_INTERFACE(numbers, (int, add, (int, int)), (double, half, (double)));
struct numbers_impl final : numbers {
  int add(int a, int b) override { return a + b; }
  double half(double x) override { return x / 2; }
};
}  // namespace interface_test

TEST_CASE("numbers-only calls (sent without an archive) still reject a payload of the wrong size") {
  interface_test::numbers_impl impl;
  for (std::size_t size : {0u, 4u, 7u, 9u, 16u}) {
    isolate::wire::buffer call, reply;
    isolate::wire::begin_frame(call);
    const std::string bytes(size, '\1');
    call.append(bytes.data(), bytes.size());
    isolate::wire::finish_frame(call, isolate::wire::frame_kind::call, 0, 1);
    isolate::detail::stub<interface_test::numbers>::handle(impl, isolate::wire::parse(call.bytes(), 1024), reply, 1024);
    CAPTURE(size);
    const auto e = isolate_test::remote_failure_of([&] { isolate::detail::decode_reply<int>(reply, 1024); });
    CHECK(isolate_test::thrown_by_peer(e, "protocol_error"));
  }
  // And the same bytes as Cereal's archive would write: the right answer.
  isolate_test::loopback<interface_test::numbers> remote(std::make_unique<interface_test::numbers_impl>());
  CHECK(remote->add(40, 2) == 42);
  CHECK(remote->half(3.0) == 1.5);
  isolate::wire::buffer archived;
  {
    isolate::wire::output_archive archive(archived);
    archive(40, 2);
  }
  isolate::wire::buffer raw;
  isolate::detail::encode_values(raw, 40, 2);
  CHECK(archived.size() == raw.size());
  CHECK(std::memcmp(archived.data(), raw.data(), raw.size()) == 0);
}
