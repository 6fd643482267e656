// The cost trailer of an accounted call's reply: appended by the stub,
// taken off by the host, and a reply with no room for it refused.
#include "isolate/detail/call_accounting.hpp"

#include "isolate/detail/codec.hpp"

#include <doctest/doctest.h>

#include <cstdint>

using namespace isolate;
using namespace isolate::detail;

namespace {

wire::buffer reply_with(int value) {
  wire::buffer reply;
  wire::begin_frame(reply);
  encode_values(reply, value);
  wire::finish_frame(reply, wire::frame_kind::reply, 3, 77);
  return reply;
}

}  // namespace

TEST_CASE("call accounting: the trailer goes on and comes off, leaving the reply as it was") {
  wire::buffer reply = reply_with(42);
  const std::size_t plain = reply.size();
  cost_trailer sent;
  sent.cpu_user_us = 1500;
  sent.cpu_system_us = 20;
  sent.minor_faults = 9;
  sent.major_faults = 1;
  sent.peak_memory_growth_bytes = 4096;
  append_cost(reply, sent);
  CHECK(reply.size() == plain + sizeof(cost_trailer));
  CHECK(wire::parse(reply.bytes(), 1 << 20).payload.size() == plain - wire::header_size + sizeof(cost_trailer));

  call_cost cost;
  take_cost(reply, cost);
  CHECK(reply.size() == plain);
  CHECK(cost.measured);
  CHECK(cost.cpu_user == std::chrono::microseconds(1500));
  CHECK(cost.cpu_system == std::chrono::microseconds(20));
  CHECK(cost.minor_faults == 9);
  CHECK(cost.major_faults == 1);
  CHECK(cost.peak_memory_growth_bytes == 4096);
  CHECK(decode_reply<int>(reply, 1 << 20) == 42);
}

TEST_CASE("call accounting: a reply with no room for the cost is the peer's protocol error") {
  call_cost cost;
  wire::buffer reply = reply_with(42);  // 4 bytes of payload, no trailer
  CHECK_THROWS_AS(take_cost(reply, cost), error);
  try {
    take_cost(reply, cost);
  } catch (const error& e) {
    CHECK(e.code() == errc::protocol_error);
  }
  CHECK_FALSE(cost.measured);

  wire::buffer empty;
  CHECK_THROWS_AS(take_cost(empty, cost), error);

  // A header whose size disagrees with the bytes that arrived.
  wire::buffer lying = reply_with(42);
  append_cost(lying, {});
  lying.resize(lying.size() - 1);
  CHECK_THROWS_AS(take_cost(lying, cost), error);
}

TEST_CASE("call accounting: figures past what a duration holds are capped, not wrapped") {
  wire::buffer reply = reply_with(1);
  cost_trailer sent;
  sent.cpu_user_us = ~std::uint64_t{0};
  append_cost(reply, sent);
  call_cost cost;
  take_cost(reply, cost);
  CHECK(cost.cpu_user.count() > 0);
}

TEST_CASE("call accounting: this thread's usage grows with the work it does") {
  const thread_usage before = thread_usage::now();
  volatile std::uint64_t spin = 0;
  for (int i = 0; i < 20'000'000; ++i) spin = spin + 1;
  const cost_trailer cost = thread_usage::now().since(before);
  CHECK(cost.cpu_user_us + cost.cpu_system_us > 0);
  CHECK(thread_usage::now().since(thread_usage::now()).cpu_user_us == 0);  // never negative
}
