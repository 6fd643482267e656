#include "isolate/detail/process/host_service_calls.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include "isolate/interface.hpp"

#include <cereal/types/string.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace wire = isolate::wire;
using isolate::detail::host_service_answer;
using isolate::detail::lent_buffers;
using isolate::detail::serve_host_call;

namespace host_service_calls_test {

ISOLATE_INTERFACE(bookkeeper,
                  (int, add, (int, int)),
                  (int, refuse, (std::string const&)),
                  (std::uint64_t, size_of, (isolate::shared_buffer const&)),
                  (isolate::shared_buffer, make, (std::uint64_t)));
ISOLATE_INTERFACE(listener, (void, heard, (int)));

struct bookkeeper_impl final : bookkeeper {
  int add(int a, int b) override { return a + b; }
  int refuse(const std::string& why) override { throw std::runtime_error(why); }
  std::uint64_t size_of(const isolate::shared_buffer& b) override { return b.size(); }
  isolate::shared_buffer make(std::uint64_t size) override {
    made = isolate::shared_buffer(size);
    return made;
  }
  isolate::shared_buffer made;
};

struct listener_impl final : listener {
  void heard(int n) override { last = n; }
  int last = 0;
};

}  // namespace host_service_calls_test

namespace {

using namespace host_service_calls_test;

constexpr std::size_t max_message = 1 << 16;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A call (or event) from the plugin to service `service` (1-based).
template <class... Args>
wire::buffer call_frame(std::uint8_t service, std::uint16_t method, const Args&... args) {
  wire::buffer frame;
  isolate::detail::encode_call(frame, method, max_message, args...);
  frame.data()[offsetof(wire::frame_header, service)] = static_cast<std::byte>(service);
  wire::set_call_id(frame, 5);
  return frame;
}

struct host {
  bookkeeper_impl books;
  listener_impl ears;
  isolate::host_services services;
  lent_buffers lent;
  isolate::detail::capability_table capabilities{nullptr, nullptr, max_message};
  host() { services.provide<bookkeeper>(books).provide<listener>(ears); }

  bool serve(const wire::buffer& frame, host_service_answer& answer, std::string& violation) {
    return serve_host_call(services, lent, capabilities, wire::parse(frame.bytes(), max_message), max_message, answer,
                           violation);
  }
};

}  // namespace

TEST_CASE("a call runs on the service its frame names, and the answer carries the call's id") {
  host h;
  host_service_answer answer;
  std::string violation;
  REQUIRE(h.serve(call_frame(1, 0, 20, 22), answer, violation));
  CHECK(violation.empty());
  const auto reply = wire::parse(answer.frame.bytes(), max_message);
  CHECK(reply.header.kind == wire::frame_kind::reply);
  CHECK(reply.header.call_id == 5);
  CHECK(reply.header.service == 1);
  CHECK(isolate::detail::decode_reply<int>(answer.frame, max_message) == 42);
  CHECK(answer.buffers.empty());
}

TEST_CASE("what the service throws is the answer, not a violation") {
  host h;
  host_service_answer answer;
  std::string violation;
  REQUIRE(h.serve(call_frame(1, 1, std::string("not today")), answer, violation));
  CHECK(violation.empty());
  CHECK(wire::parse(answer.frame.bytes(), max_message).header.kind == wire::frame_kind::error);
  CHECK(isolate::detail::message_of_error_frame(answer.frame) == "not today");
}

TEST_CASE("an event runs and has no answer") {
  host h;
  auto frame = call_frame(2, 0, 9);
  frame.data()[offsetof(wire::frame_header, kind)] = static_cast<std::byte>(wire::frame_kind::event);
  host_service_answer answer;
  std::string violation;
  REQUIRE(h.serve(frame, answer, violation));
  CHECK(h.ears.last == 9);
  CHECK(answer.frame.size() == 0);
}

TEST_CASE("a service the host does not provide is a violation") {
  host h;
  host_service_answer answer;
  std::string violation;
  SUBCASE("service 0, the plugin's own interface") { CHECK_FALSE(h.serve(call_frame(0, 0, 1, 2), answer, violation)); }
  SUBCASE("past the last service") { CHECK_FALSE(h.serve(call_frame(3, 0, 1, 2), answer, violation)); }
  CHECK(contains(violation, "does not provide"));
}

TEST_CASE("a call that does not decode is a violation naming the service") {
  host h;
  host_service_answer answer;
  std::string violation;
  SUBCASE("an unknown method") { CHECK_FALSE(h.serve(call_frame(1, 17), answer, violation)); }
  SUBCASE("arguments of the wrong size") { CHECK_FALSE(h.serve(call_frame(1, 0, 1), answer, violation)); }
  CHECK(contains(violation, "bookkeeper"));
  CHECK(contains(violation, "does not decode"));
}

TEST_CASE("the plugin may name only the shared buffers lent to it") {
  host h;
  const isolate::shared_buffer buffer(4096);
  host_service_answer answer;
  std::string violation;
  SUBCASE("lent") {
    h.lent.add(buffer);
    REQUIRE(h.serve(call_frame(1, 2, buffer), answer, violation));
    CHECK(isolate::detail::decode_reply<std::uint64_t>(answer.frame, max_message) == 4096);
  }
  SUBCASE("never lent") {
    CHECK_FALSE(h.serve(call_frame(1, 2, buffer), answer, violation));
    CHECK(contains(violation, "never shared"));
  }
}

TEST_CASE("the shared buffers an answer names come with it") {
  host h;
  host_service_answer answer;
  std::string violation;
  REQUIRE(h.serve(call_frame(1, 3, std::uint64_t{8192}), answer, violation));
  REQUIRE(answer.buffers.size() == 1);
  CHECK(answer.buffers.front() == h.books.made);
}
