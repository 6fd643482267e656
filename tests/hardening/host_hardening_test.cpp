// Host hardening: whatever a worker sends, the host neither crashes, nor
// hangs past a deadline, nor believes it; and well-behaved plugins are not
// hurt by the host's own limits. Each case names the item of the issue it checks.
#include "isolate/transport/process.hpp"

#include "support.hpp"

#include "../support/failure.hpp"
#include "../support/sanitizers.hpp"
#include "../support/thread_cpu_time.hpp"

#include <isolate/capability.hpp>
#include <isolate/plugin_library.hpp>

#include <asio/use_future.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace hardening_test;
using namespace std::chrono_literals;
using isolate_test::contains;
using isolate_test::failure_of;
using isolate_test::thread_cpu_time;

namespace {

struct host_library final : library {
  std::string text_of_size(std::uint64_t size) override { return std::string(size, 't'); }
};

struct host_notes final : notes {
  void note(const std::string& text) override {
    count.fetch_add(1);
    bytes.fetch_add(text.size());
    if (slow) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  bool slow = false;  // slower than any worker can send: its ring never runs dry
  std::atomic<int> count{0};
  std::atomic<std::uint64_t> bytes{0};
};

bool expected_bytes(const std::vector<std::uint8_t>& bytes) {
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] != static_cast<std::uint8_t>(i * 7 + 1)) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("1: a plugin loaded on a thread that then exits lives as long as the host") {
  std::optional<hardy_plugin> p;
  std::thread([&] { p.emplace(load_hardy()); }).join();
  CHECK((*p)->add(1, 2) == 3);
  auto later = std::async(std::launch::async, [&] { return (*p)->add(3, 4); });
  CHECK(later.get() == 7);
}

TEST_CASE("2: asynchronous replies as large as the ring and larger arrive whole, over both channels") {
  for (const bool shared_memory : {true, false}) {
    CAPTURE(shared_memory);
    isolate::process::options options;
    options.shared_memory = shared_memory;
    options.call_timeout = 60s;
    auto p = load_hardy(options);
    for (const std::uint64_t size : {std::uint64_t{1} << 20, std::uint64_t{4} << 20, std::uint64_t{64} << 20}) {
      CAPTURE(size);
      auto reply = p.async(&hardy::bytes_of_size, size, asio::use_future);
      REQUIRE(reply.wait_for(60s) == std::future_status::ready);
      const auto bytes = reply.get();
      CHECK(bytes.size() == size);
      CHECK(expected_bytes(bytes));
    }
    CHECK(p->add(1, 1) == 2);
  }
}

TEST_CASE("2: 1 MiB events arrive whole while asynchronous calls are in flight, over both channels") {
  for (const bool shared_memory : {true, false}) {
    CAPTURE(shared_memory);
    host_notes sink;
    isolate::host_services services;
    services.provide<notes>(sink);
    isolate::process::options options;
    options.shared_memory = shared_memory;
    options.call_timeout = 60s;
    options.concurrency = 2;
    auto p = load_hardy(options, services);
    auto noting = p.async(&hardy::send_notes, 16, std::uint64_t{1} << 20, asio::use_future);
    std::vector<std::future<std::vector<std::uint8_t>>> replies;
    for (int i = 0; i < 8; ++i) replies.push_back(p.async(&hardy::bytes_of_size, std::uint64_t{300} << 10, asio::use_future));
    REQUIRE(noting.wait_for(60s) == std::future_status::ready);
    noting.get();
    for (auto& reply : replies) {
      REQUIRE(reply.wait_for(60s) == std::future_status::ready);
      CHECK(expected_bytes(reply.get()));
    }
    CHECK(p->add(1, 1) == 2);  // the events before it were all delivered: they were sent before its reply
    CHECK(sink.count.load() == 16);
    CHECK(sink.bytes.load() == 16 * (std::uint64_t{1} << 20));
  }
}

TEST_CASE("3: with no call timeout, the host's answer to a plugin waits for room in the ring") {
  host_library books;
  isolate::host_services services;
  services.provide<library>(books);
  isolate::process::options options;
  options.call_timeout = 0ms;  // none
  options.ring_capacity = 4096;  // two records at most: the host often waits for room
  auto p = load_hardy(options, services);
  CHECK(p->fetch_from_host(std::uint64_t{4} << 20) == (std::uint64_t{4} << 20));
  CHECK(p->add(1, 2) == 3);
}

TEST_CASE("7: a worker that keeps the ring busy cannot hold a caller past its deadline") {
  host_notes sink;
  sink.slow = true;
  isolate::host_services services;
  services.provide<notes>(sink);
  auto p = load_hostile("flood-events", {}, services);
  const auto e = failure_of([&] { p.with_timeout(300ms)->add(1, 2); });
  CHECK(e.code() == isolate::errc::timeout);
  CHECK(sink.count.load() > 0);  // the flood did reach the host
}

// A large reply is decoded by its caller straight from the ring: a worker
// that stops half-way, or whose records do not add up, is found out there.
TEST_CASE("7: a large reply that stops after its header holds its caller no longer than the call's timeout") {
  auto p = load_hostile("huge-reply");
  const int pid = p.transport().link().pid();
  const auto began = std::chrono::steady_clock::now();
  const auto e = failure_of([&] { p.with_timeout(300ms)->bytes_of_size(1); });
  CHECK(e.code() == isolate::errc::timeout);
  CHECK(std::chrono::steady_clock::now() - began < 10s);
  CHECK(dies_within(pid, 10s));
}

TEST_CASE("11: a large reply whose ring records run past its announced size kills the worker") {
  auto p = load_hostile("torn-reply");
  const int pid = p.transport().link().pid();
  const auto e = failure_of([&] { p->bytes_of_size(1); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK(contains(e.what(), "past the end of its frame"));
  CHECK(dies_within(pid, 10s));
}

TEST_CASE("9: a caller with a short timeout is not held up by one blocked in the send") {
  isolate::process::options options;
  options.ring_capacity = 64 * 1024;
  auto p = load_hostile("deaf", options);
  const std::vector<std::uint8_t> big(std::size_t{1} << 20);
  auto blocked = std::async(std::launch::async, [&] {
    return failure_of([&] { p.with_timeout(30s)->count_bytes(big); });
  });
  // Once the first caller has filled the ring and waits in the send (it
  // cannot finish: nobody reads), try a short call.
  while (!p.transport().link().sending()) std::this_thread::yield();
  const auto started = std::chrono::steady_clock::now();
  const auto e = failure_of([&] { p.with_timeout(100ms)->add(1, 2); });
  CHECK(e.code() == isolate::errc::timeout);
  CHECK(std::chrono::steady_clock::now() - started < 10s);  // not the first caller's 30 s
  CHECK(blocked.get().code() != isolate::errc::protocol_error);
}

TEST_CASE("10: a worker that closes its control socket while loading fails the load within its timeout") {
  isolate::process::options options;
  options.load_timeout = 300ms;
  const auto started = std::chrono::steady_clock::now();
  const auto e = failure_of([&] { load_hostile("silent", options); });
  CHECK((e.code() == isolate::errc::load_failed || e.code() == isolate::errc::timeout));
  CHECK(std::chrono::steady_clock::now() - started < 1500ms);
}

TEST_CASE("10: a control-socket timeout kills the worker, and the restart policy brings it back") {
  isolate::process::options options;
  options.restart = isolate::restart_policy::crash(1, 1ms);
  auto p = load_hostile("deaf-control", options);
  const int pid = p.transport().link().pid();
  const auto e = failure_of([&] { p.transport().link().sync_control(200ms); });
  CHECK(e.code() == isolate::errc::timeout);
  CHECK(dies_within(pid, 10s));
  CHECK(p->add(2, 2) == 4);  // a fresh worker
  CHECK(p.transport().link().pid() != pid);
}

TEST_CASE("10: an oversize control message kills the worker with protocol_error") {
  isolate::process::options options;
  options.call_timeout = 20s;
  auto p = load_hostile("big-control", options);
  const auto e = failure_of([&] { p->add(1, 2); });  // the worker sends the message instead of an answer
  CHECK(e.code() == isolate::errc::protocol_error);
}

TEST_CASE("10: a control message of a type the protocol does not have kills the worker with protocol_error") {
  isolate::process::options options;
  options.call_timeout = 20s;
  auto p = load_hostile("unknown-control", options);
  const int pid = p.transport().link().pid();
  const auto e = failure_of([&] { p->add(1, 2); });  // the worker sends the message instead of an answer
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK_MESSAGE(contains(e.what(), "a control message of type 99"), e.what());
  CHECK(dies_within(pid, 10s));
}

TEST_CASE("10: a worker that rings the doorbell without pause is still answered, and so are the others") {
  // A doorbell costs the worker a write and the host a read: no
  // amplification, and the host's shared io threads go on serving.
  isolate::process::options options;
  options.call_timeout = 20s;
  auto flooding = load_hostile("doorbell-flood", options);
  auto bystander = load_hardy(options);
  for (int i = 0; i < 50; ++i) {
    CHECK(flooding->add(i, 1) == i + 1);
    CHECK(bystander->add(i, 2) == i + 2);
  }
  bystander.transport().link().sync_control(20s);  // its control socket is served too (hostile_worker answers no sync)
  CHECK(flooding.transport().link().up());
}

TEST_CASE("10: a worker that storms the host's futex words keeps no caller busy, nor past its deadline") {
  // Threat model G6 and G12: the worker wakes the bells the host sleeps on
  // without pause, resets them between the host's store and its sleep, and
  // scribbles the side_state words, while it takes 400 ms for each answer.
  isolate::process::options options;
  options.call_timeout = 20s;
  auto p = load_hostile("bell-storm", options);
  const auto cpu_before = thread_cpu_time();
  const auto start = std::chrono::steady_clock::now();
  CHECK(p->add(2, 3) == 5);
  const auto wall = std::chrono::steady_clock::now() - start;
  const auto cpu = thread_cpu_time() - cpu_before;
  // Unpaced, the caller looks after every wake-up: about half its wait on
  // this 2-vCPU guest; paced, ~2%.
  CHECK_MESSAGE(cpu < wall / 4, "the caller's CPU time ", cpu.count(), " ns in ",
                std::chrono::nanoseconds(wall).count(), " ns");
  const auto e = failure_of([&] { p.with_timeout(100ms)->add(1, 1); });
  CHECK(e.code() == isolate::errc::timeout);  // and the worker is killed for it
}

TEST_CASE("11: an isolate::error thrown by the plugin arrives as its exception, not as the host's own code") {
  auto p = load_hardy();
  for (const auto code : {isolate::errc::plugin_crashed, isolate::errc::timeout, isolate::errc::quarantined}) {
    CAPTURE(static_cast<int>(code));
    const auto e = failure_of([&] { p->throw_isolate_error(static_cast<int>(code), "made up"); });
    CHECK(e.code() == isolate::errc::remote_exception);
    CHECK(contains(e.what(), "made up"));
  }
  CHECK(p->add(1, 1) == 2);  // it did not die: it only threw
}

TEST_CASE("11: a plugin's exception message is capped") {
  isolate::process::options options;
  auto p = load_hardy(options);
  const std::string huge(std::size_t{8} << 20, 'm');
  const auto e = failure_of([&] { p->throw_isolate_error(static_cast<int>(isolate::errc::timeout), huge); });
  CHECK(std::string(e.what()).size() < (std::size_t{1} << 20));
}

TEST_CASE("11: a reply that does not decode kills the worker") {
  auto p = load_hostile("garbage-reply");
  const int pid = p.transport().link().pid();
  CHECK(failure_of([&] { p->add(1, 2); }).code() == isolate::errc::protocol_error);
  CHECK(dies_within(pid, 10s));
}

TEST_CASE("11: an accounted call whose reply has no room for its cost kills the worker") {
  auto p = load_hostile("serve");  // answers add() without the cost it was asked for
  const int pid = p.transport().link().pid();
  isolate::call_cost cost;
  const auto e = failure_of([&] { p.with_accounting(cost)->add(1, 2); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK_MESSAGE(contains(e.what(), "accounted"), e.what());
  CHECK_FALSE(cost.measured);
  CHECK(dies_within(pid, 10s));
}

TEST_CASE("11: a plugin that asks the host to account its call is killed") {
  host_notes sink;
  isolate::host_services services;
  services.provide<notes>(sink);
  auto p = load_hostile("account-host", {}, services);
  const int pid = p.transport().link().pid();
  const auto e = failure_of([&] { p->add(1, 2); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK_MESSAGE(contains(e.what(), "account"), e.what());
  CHECK(sink.count.load() == 0);
  CHECK(dies_within(pid, 10s));
}

TEST_CASE("11: a plugin that sends the host a lifecycle frame is killed") {
  host_notes sink;
  isolate::host_services services;
  services.provide<notes>(sink);
  auto p = load_hostile("lifecycle-host", {}, services);
  const int pid = p.transport().link().pid();
  const auto e = failure_of([&] { p->add(1, 2); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK_MESSAGE(contains(e.what(), "lifecycle"), e.what());
  CHECK(sink.count.load() == 0);
  CHECK(dies_within(pid, 10s));
}

TEST_CASE("12: a plugin that calls a host object it was never handed is killed") {
  auto p = load_hostile("object-forge");
  const int pid = p.transport().link().pid();
  const auto e = failure_of([&] { p->add(1, 2); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK_MESSAGE(contains(e.what(), "host object it does not hold"), e.what());
  CHECK(dies_within(pid, 10s));
}

namespace {
ISOLATE_INTERFACE(hands_out, (isolate::capability<notes>, notes_object, ()));
}

TEST_CASE("13: a plugin that sends a capability as a pointer into the host is killed, the pointer never read") {
  isolate::process::options options;
  options.worker = ISOLATE_TEST_HOSTILE_WORKER;
  auto p = isolate::load<hands_out, isolate::process>("local-capability", options);
  const int pid = p.transport().link().pid();
  const auto e = failure_of([&] { p->notes_object(); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK_MESSAGE(contains(e.what(), "unknown tag"), e.what());
  CHECK(dies_within(pid, 10s));
}

TEST_CASE("14: a worker that reports more descriptors or tasks in use than its limit, or a memory limit it has not, is killed") {
  for (const std::string what : {"descriptors", "tasks", "memory"}) {
    CAPTURE(what);
    auto p = load_hostile(what + "-lie");
    const int pid = p.transport().link().pid();
    const auto e = failure_of([&] { p->add(1, 2); });
    CHECK(e.code() == isolate::errc::protocol_error);
    CHECK_MESSAGE(contains(e.what(), what + (what == "memory" ? "_refused" : "_full")), e.what());
    CHECK(dies_within(pid, 10s));
  }
}

TEST_CASE("15: a plugin whose static initialiser forges a limits report and a ready fails its load, the report unbelieved") {
  // The worker reports its limits before it opens the plugin's library; a
  // second report can only be the plugin's, written by its own code.
  for (const isolate::limits::policy& limits : {isolate::limits::policy(isolate::limits::minimal()),
                                                isolate::limits::policy(isolate::limits::strict())}) {
    isolate::process::options options;
    options.limits = limits;
    const auto e = failure_of([&] { isolate::load<hardy, isolate::process>(ISOLATE_TEST_FORGER_PLUGIN, options); });
    CHECK(e.code() == isolate::errc::protocol_error);
    CHECK_MESSAGE(contains(e.what(), "a second limits report"), e.what());
  }
  // The same plugin without the forgery loads, and its report is the worker's.
  auto p = load_hardy(isolate::process::options{});
  CHECK(p->add(1, 2) == 3);
}

TEST_CASE("5: a reply whose decoding would allocate far more than its size kills the worker") {
  auto p = load_hostile("amplify");
  const int pid = p.transport().link().pid();
  const auto e = failure_of([&] { p->names(); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK(contains(e.what(), "allocate"));
  CHECK(dies_within(pid, 10s));
}

TEST_CASE("6: a reply nested deeper than the limit kills the worker, not the host's stack") {
  auto p = load_hostile("deep");
  const int pid = p.transport().link().pid();
  const auto e = failure_of([&] { p->grow(3); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK(dies_within(pid, 10s));
  auto honest = load_hardy();
  CHECK(honest->grow(100).kids.size() == 1);  // legit depth still decodes
}

TEST_CASE("12: a worker that exits unasked is a protocol error, not a crash") {
  SUBCASE("status 0, mid-call") {
    auto p = load_hostile("exit-zero");
    const auto e = failure_of([&] { p->add(1, 2); });
    CHECK(e.code() == isolate::errc::protocol_error);
  }
  // Over the socket (a ring's close is private to its side: to the host, a
  // worker that closed its rings is one that does not answer, and the call
  // timeout ends that). The calls' own timeout is far beyond the waits here.
  isolate::process::options over_socket;
  over_socket.shared_memory = false;
  SUBCASE("it closes its channel and lives on: killed, and every call fails, none hangs") {
    auto p = load_hostile("close-channel", over_socket);
    const int pid = p.transport().link().pid();
    auto pending = p.async(&hardy::add, 1, 2, asio::use_future);
    const auto e = failure_of([&] { p->add(3, 4); });
    CHECK(e.code() == isolate::errc::protocol_error);
    CHECK(contains(e.what(), "closed its channel"));
    REQUIRE(pending.wait_for(10s) == std::future_status::ready);
    CHECK(failure_of([&] { pending.get(); }).code() == isolate::errc::protocol_error);
    CHECK(dies_within(pid, 10s));
  }
  SUBCASE("it closes its channel under asynchronous calls only") {
    auto p = load_hostile("close-channel", over_socket);
    const int pid = p.transport().link().pid();
    auto first = p.async(&hardy::add, 1, 2, asio::use_future);
    REQUIRE(first.wait_for(10s) == std::future_status::ready);
    CHECK(failure_of([&] { first.get(); }).code() == isolate::errc::protocol_error);
    CHECK(dies_within(pid, 10s));
  }
  SUBCASE("the worker found its inbound ring broken") {
    auto p = load_hardy();
    const int pid = p->pid();
    p->break_inbound_ring();
    // The worker reads the ring next and notices; the host must not write to
    // the ring first (that would mend the index), so it waits for the exit.
    REQUIRE(dies_within(pid, 10s));
    const auto e = failure_of([&] { p->add(1, 2); });
    CHECK(e.code() == isolate::errc::protocol_error);
    CHECK(contains(e.what(), "broken"));
  }
}

TEST_CASE("12: a maximum message size that does not fit the frame header is refused at load") {
  isolate::process::options options;
  options.max_message_size = std::size_t{5} << 30;
  const auto e = failure_of([&] { load_hardy(options); });
  CHECK(e.code() == isolate::errc::unsupported);
  CHECK(contains(e.what(), "max_message_size"));
}
