#include "isolate/detail/client.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include "isolate/interface.hpp"

#include <cereal/types/string.hpp>

#include <memory>
#include <string>

namespace wire = isolate::wire;
namespace detail = isolate::detail;

namespace client_test {

ISOLATE_INTERFACE(echo, (int, add, (int, int)), (std::size_t, length, (std::string const&)), (void, ping, ()));

struct echo_impl final : echo {
  int add(int a, int b) override { return a + b; }
  std::size_t length(const std::string& s) override { return s.size(); }
  void ping() override { ++pings; }
  int pings = 0;
};

// A link that runs each call on the stub at once, and records how it was sent.
struct recording_link final : detail::link {
  explicit recording_link(echo& impl, std::size_t max = 1 << 20) : impl_(impl), max_(max) {}
  void call(wire::buffer& request, wire::buffer& reply) override {
    ++gathered;
    last_request_size = request.size();
    detail::stub<echo>::handle(impl_, wire::parse(request.bytes(), max_), reply, max_);
    if (spoil_reply) {  // one byte short of the int it should hold
      reply.resize(reply.size() - 1);
      wire::finish_frame(reply, wire::frame_kind::reply, 0, 0);
    }
  }
  void call_streamed(const detail::streamed_call& request, wire::buffer& reply) override {
    ++streamed;
    last_request_size = wire::header_size + request.payload_size();
    detail::link::call_streamed(request, reply);  // the default: gathered, then call()
    --gathered;
  }
  void call_async(wire::buffer, std::unique_ptr<detail::completion>) override {}
  std::size_t max_message_size() const noexcept override { return max_; }
  void reply_undecodable(const std::string& why) noexcept override { undecodable = why; }

  echo& impl_;
  std::size_t max_;
  int gathered = 0, streamed = 0;
  std::size_t last_request_size = 0;
  bool spoil_reply = false;
  std::string undecodable;
};

}  // namespace client_test

using namespace client_test;

namespace {
using add_method = int (echo::*)(int, int);
using length_method = std::size_t (echo::*)(const std::string&);
using ping_method = void (echo::*)();
}  // namespace

TEST_CASE("a small call is gathered into one frame and its reply decoded") {
  echo_impl impl;
  recording_link link(impl);
  detail::client client(link);
  CHECK(client.call<0, add_method>(20, 22) == 42);
  CHECK(link.gathered == 1);
  CHECK(link.streamed == 0);
  CHECK(link.last_request_size == wire::header_size + 2 * sizeof(int));
  client.call<2, ping_method>();
  CHECK(impl.pings == 1);
  CHECK(client.call<1, length_method>(std::string("abc")) == 3);
  CHECK(link.streamed == 0);
}

TEST_CASE("a large payload is handed to the link as a streamed call") {
  echo_impl impl;
  recording_link link(impl);
  detail::client client(link);
  const std::string big(wire::large_payload, 'b');
  CHECK(client.call<1, length_method>(big) == big.size());
  CHECK(link.streamed == 1);
  CHECK(link.gathered == 0);
  CHECK(link.last_request_size > wire::header_size + big.size());
}

TEST_CASE("a payload over the link's maximum is refused before anything is sent") {
  echo_impl impl;
  recording_link link(impl, 1024);
  detail::client client(link);
  for (const std::size_t size : {std::size_t{2000}, wire::large_payload * 2}) {
    CAPTURE(size);
    try {
      (void)client.call<1, length_method>(std::string(size, 'x'));
      FAIL("nothing thrown");
    } catch (const isolate::error& e) {
      CHECK(e.code() == isolate::errc::message_too_large);
    }
  }
  CHECK(link.gathered == 0);
  CHECK(link.streamed == 0);
}

TEST_CASE("a reply that does not decode is reported to the link, then thrown") {
  echo_impl impl;
  recording_link link(impl);
  link.spoil_reply = true;
  detail::client client(link);
  try {
    (void)client.call<0, add_method>(1, 2);
    FAIL("nothing thrown");
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::protocol_error);
  }
  CHECK_FALSE(link.undecodable.empty());
}
