#include "isolate/detail/process/pending_calls.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using isolate::detail::pending_call;
using isolate::detail::pending_table;
using clock_type = std::chrono::steady_clock;

namespace {
constexpr auto patience = 20s;
}

TEST_CASE("a call already done is not waited for") {
  pending_call call;
  CHECK_FALSE(call.is_done());
  call.set_done();
  CHECK(call.is_done());
  CHECK(call.wait(0ns, clock_type::now()));
}

TEST_CASE("a wait nobody ends stops at its deadline, and the call still waits") {
  pending_call call;
  const auto started = clock_type::now();
  CHECK_FALSE(call.wait(0ns, started + 30ms));
  CHECK(clock_type::now() - started >= 30ms);
  CHECK(call.state.load() == pending_call::waiting);
  call.set_done();
  CHECK(call.wait(1us, clock_type::now() + patience));
}

TEST_CASE("SYNC POINT \"call done\": what the reader wrote before set_done() is seen after the wait") {
  for (int round = 0; round < 200; ++round) {
    pending_call call;
    isolate::wire::buffer reply;
    call.reply = &reply;
    std::thread reader([&] {
      const std::string text = "reply " + std::to_string(round);
      call.reply->assign(std::as_bytes(std::span(text.data(), text.size())));
      call.set_done();
    });
    // Alternate spinning and sleeping at once, so both ways of waking are taken.
    REQUIRE(call.wait(round % 2 == 0 ? 0ns : 20us, clock_type::time_point::max()));
    CHECK(call.is_done());
    const std::string expected = "reply " + std::to_string(round);
    CHECK(std::string(reinterpret_cast<const char*>(reply.data()), reply.size()) == expected);
    reader.join();
  }
}

TEST_CASE("a poke wakes the waiter without ending the call") {
  pending_call call;
  std::thread poker([&] { call.poke(); });
  CHECK(call.wait(0ns, clock_type::now() + patience));
  poker.join();
  CHECK_FALSE(call.is_done());
  CHECK(call.state.load() == pending_call::waiting);  // the poke is used up
  CHECK_FALSE(call.wait(0ns, clock_type::now() + 10ms));
}

TEST_CASE("a poke after the call is done changes nothing") {
  pending_call call;
  call.set_done();
  call.poke();
  CHECK(call.is_done());
}

TEST_CASE("the table finds calls by id, in its slots or past them") {
  pending_table<int> table;
  std::vector<int> calls(200);
  for (std::uint64_t id = 1; id <= 130; ++id) table.insert(id, &calls[id]);  // ids 65.. share slots with 1..
  for (std::uint64_t id = 1; id <= 130; ++id) CHECK(table.find(id) == &calls[id]);
  CHECK(table.find(131) == nullptr);
  CHECK(table.find(0) == nullptr);

  std::set<std::uint64_t> seen;
  table.for_each([&](std::uint64_t id, int* call) {
    CHECK(call == &calls[id]);
    seen.insert(id);
  });
  CHECK(seen.size() == 130);

  CHECK(table.erase(1) == &calls[1]);  // from a slot
  CHECK(table.erase(1) == nullptr);
  CHECK(table.find(65) == &calls[65]);  // its neighbour, in the overflow, is still found
  CHECK(table.erase(65) == &calls[65]);
  CHECK(table.find(129) == &calls[129]);
  table.insert(193, &calls[193]);  // slot 1 is free again
  CHECK(table.find(193) == &calls[193]);

  table.clear();
  int visited = 0;
  table.for_each([&](std::uint64_t, int*) { ++visited; });
  CHECK(visited == 0);
  CHECK(table.find(2) == nullptr);
  CHECK(table.find(100) == nullptr);
}
