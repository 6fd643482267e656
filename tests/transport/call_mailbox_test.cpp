#include "isolate/detail/call_mailbox.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sched.h>

using namespace std::chrono_literals;
using isolate::detail::call_mailbox;
namespace wire = isolate::wire;

namespace {

wire::buffer text_buffer(const std::string& text) {
  wire::buffer b;
  b.append(text.data(), text.size());
  return b;
}

std::string text_of(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// What the workers below answer: the request with a mark, so a caller can
// tell its own answer from another's.
std::string answer_to(const std::string& request) { return "re:" + request; }

// A worker serving calls until `stop`: takes each posted call and answers it.
void serve(call_mailbox& mailbox, const std::atomic<bool>& stop, std::atomic<int>& served) {
  while (!stop.load(std::memory_order_acquire)) {
    if (!mailbox.has_call()) {
      std::this_thread::yield();
      continue;
    }
    const auto ticket = mailbox.try_take();
    if (!ticket) continue;  // another worker took it
    auto reply = text_buffer(answer_to(text_of(mailbox.request())));
    mailbox.answer(*ticket, reply);
    served.fetch_add(1, std::memory_order_relaxed);
  }
}

// One call, as isolate::thread makes it; nothing if the mailbox is closed.
std::optional<std::string> call(call_mailbox& mailbox, const std::string& request_text,
                                std::chrono::nanoseconds spin) {
  auto request = text_buffer(request_text);
  wire::buffer reply;
  while (!mailbox.try_claim()) std::this_thread::yield();
  const auto ticket = mailbox.post(request, reply, ::sched_getcpu());
  if (!ticket) {
    mailbox.release();
    return std::nullopt;
  }
  mailbox.wait_for_answer(*ticket, spin);
  mailbox.take_reply(reply);
  return text_of(reply.bytes());
}

struct worker_threads {
  call_mailbox& mailbox;
  std::atomic<bool> stop{false};
  std::atomic<int> served{0};
  std::vector<std::thread> threads;
  worker_threads(call_mailbox& m, int count) : mailbox(m) {
    for (int i = 0; i < count; ++i) threads.emplace_back([this] { serve(mailbox, stop, served); });
  }
  ~worker_threads() { join(); }
  void join() {
    stop = true;
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
  }
};

}  // namespace

TEST_CASE("one caller at a time holds the mailbox") {
  call_mailbox mailbox;
  CHECK(mailbox.try_claim());
  CHECK_FALSE(mailbox.try_claim());
  mailbox.release();
  CHECK(mailbox.try_claim());
  mailbox.release();
}

TEST_CASE("a call and its answer, small ones inside the mailbox and large ones through the caller's buffers") {
  call_mailbox mailbox;
  worker_threads worker(mailbox, 1);
  for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{8}, std::size_t{40},
                                 std::size_t{ISOLATE_CACHE_LINE}, std::size_t{1000}, std::size_t{100'000}}) {
    CAPTURE(size);
    const std::string request(size, static_cast<char>('a' + size % 26));
    for (const std::chrono::nanoseconds spin : {std::chrono::nanoseconds(0), std::chrono::nanoseconds(50us)}) {
      const auto answer = call(mailbox, request, spin);
      REQUIRE(answer);
      CHECK(*answer == answer_to(request));
    }
  }
  worker.join();
  CHECK(worker.served == 14);
}

TEST_CASE("SYNC POINT \"call posted\" and \"call answered\": many calls in a row, the caller sleeping or spinning") {
  call_mailbox mailbox;
  worker_threads worker(mailbox, 1);
  for (int i = 0; i < 2000; ++i) {
    const std::string request = "call " + std::to_string(i);
    const auto answer = call(mailbox, request, i % 2 == 0 ? 0ns : 20us);
    REQUIRE(answer);
    CHECK(*answer == answer_to(request));
  }
}

TEST_CASE("a failed call rethrows its failure in the caller and releases the claim") {
  call_mailbox mailbox;
  auto request = text_buffer("doomed");
  wire::buffer reply;
  REQUIRE(mailbox.try_claim());
  const auto ticket = mailbox.post(request, reply, -1);
  REQUIRE(ticket);
  CHECK(mailbox.has_call());
  std::thread worker([&] {
    const auto taken = mailbox.try_take();
    CHECK(taken == ticket);
    if (!taken) return;
    CHECK(text_of(mailbox.request()) == "doomed");
    mailbox.fail(*taken, std::make_exception_ptr(std::runtime_error("it failed")));
  });
  mailbox.wait_for_answer(*ticket, 0ns);
  CHECK_THROWS_WITH_AS(mailbox.take_reply(reply), "it failed", std::runtime_error);
  worker.join();
  CHECK_FALSE(mailbox.has_call());
  CHECK(mailbox.try_claim());  // released by take_reply
  mailbox.release();
}

TEST_CASE("a posted call is taken by one worker only") {
  call_mailbox mailbox;
  auto request = text_buffer("once");
  wire::buffer reply;
  REQUIRE(mailbox.try_claim());
  const auto ticket = mailbox.post(request, reply, -1);
  REQUIRE(ticket);
  const auto first = mailbox.try_take();
  CHECK(first == ticket);
  CHECK_FALSE(mailbox.try_take());
  CHECK_FALSE(mailbox.has_call());
  auto answer = text_buffer("done");
  mailbox.answer(*first, answer);
  mailbox.wait_for_answer(*ticket, 0ns);
  mailbox.take_reply(reply);
  CHECK(text_of(reply.bytes()) == "done");
}

TEST_CASE("racing callers and racing workers: every call is answered once, to its own caller") {
  call_mailbox mailbox;
  worker_threads workers(mailbox, 2);
  constexpr int callers = 4, calls_each = 300;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&, c] {
      for (int i = 0; i < calls_each; ++i) {
        const std::string request = std::to_string(c) + "/" + std::to_string(i) + std::string(i % 3 == 0 ? 200 : 0, '.');
        const auto answer = call(mailbox, request, i % 2 == 0 ? 0ns : 10us);
        if (!answer || *answer != answer_to(request)) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  workers.join();
  CHECK(wrong == 0);
  CHECK(workers.served == callers * calls_each);
}

TEST_CASE("close() fails a call posted but never taken, and waits for its caller to let go") {
  call_mailbox mailbox;
  std::atomic<bool> failed_as_closed{false};
  std::thread caller([&] {
    auto request = text_buffer("never served");
    wire::buffer reply;
    CHECK(mailbox.try_claim());
    const auto ticket = mailbox.post(request, reply, -1);
    CHECK(ticket);  // posted before close() (the test waits for it below)
    if (!ticket) return;
    mailbox.wait_for_answer(*ticket, 0ns);
    try {
      mailbox.take_reply(reply);
    } catch (const isolate::error& e) {
      failed_as_closed = e.code() == isolate::errc::plugin_closed;
    }
  });
  // No worker: the call stays posted until close() fails it.
  while (!mailbox.has_call()) std::this_thread::yield();
  mailbox.close(std::make_exception_ptr(isolate::error(isolate::errc::plugin_closed, "unloaded")));
  // close() returned: the caller has released the claim, so it was answered.
  CHECK(mailbox.try_claim());
  caller.join();
  CHECK(failed_as_closed);

  // Later posts fail at once.
  auto request = text_buffer("too late");
  wire::buffer reply;
  CHECK_FALSE(mailbox.post(request, reply, -1));
  mailbox.release();
}

TEST_CASE("close() racing a post: the call is either refused or failed, never lost") {
  for (int round = 0; round < 300; ++round) {
    auto mailbox = std::make_unique<call_mailbox>();
    enum { unset, refused, failed } outcome = unset;
    std::thread caller([&] {
      auto request = text_buffer("racing");
      wire::buffer reply;
      while (!mailbox->try_claim()) std::this_thread::yield();
      const auto ticket = mailbox->post(request, reply, -1);
      if (!ticket) {
        outcome = refused;
        mailbox->release();
        return;
      }
      mailbox->wait_for_answer(*ticket, round % 2 == 0 ? 0ns : 5us);
      try {
        mailbox->take_reply(reply);
      } catch (const std::runtime_error&) {
        outcome = failed;
      }
    });
    mailbox->close(std::make_exception_ptr(std::runtime_error("closed")));
    caller.join();
    CHECK(outcome != unset);
  }
}
