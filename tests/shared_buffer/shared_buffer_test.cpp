// isolate::shared_buffer passed to a real plugin, written once and run under
// every transport; then what only the process transport promises: each
// buffer sent to a worker once, unmapped there once released, sent again
// after a restart, and a plugin that lies about buffers refused.
#include "isolate/shared_buffer.hpp"

#include <isolate/isolate.hpp>

#include "buffers.hpp"

#include <doctest/doctest.h>

#include <asio/use_future.hpp>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <future>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "../support/failure.hpp"
#include "../support/sanitizers.hpp"

using namespace shared_buffer_test;
using isolate_test::failure_of;
using namespace std::chrono_literals;

namespace {

std::uint64_t sum(const isolate::shared_buffer& buffer) {
  const auto bytes = buffer.as<const std::uint8_t>();
  return std::accumulate(bytes.begin(), bytes.end(), std::uint64_t{0});
}

// A buffer whose byte i is i % 251.
isolate::shared_buffer patterned(std::size_t size) {
  isolate::shared_buffer buffer(size);
  auto bytes = buffer.as<std::uint8_t>();
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(i % 251);
  return buffer;
}

struct host_side final : buffer_host {
  std::uint64_t checksum_on_host(const isolate::shared_buffer& buffer) override {
    std::lock_guard lock(mutex);
    got_own_buffer_back = !given.empty() && buffer == given;
    return sum(buffer);
  }
  isolate::shared_buffer buffer_from_host(std::uint64_t size) override {
    isolate::shared_buffer made(size);
    std::ranges::fill(made.as<std::uint8_t>(), std::uint8_t{3});
    return made;
  }

  std::mutex mutex;
  isolate::shared_buffer given;  // what the test handed the plugin
  bool got_own_buffer_back = false;
};

template <class Policy>
typename Policy::options options_for() {
  return {};
}

template <class Policy>
struct fixture {
  explicit fixture(typename Policy::options options = options_for<Policy>())
      : plugin([&] {
          isolate::host_services services;
          services.provide<buffer_host>(host);
          return isolate::load<buffer_user, Policy>(ISOLATE_TEST_BUFFER_PLUGIN, options, services);
        }()) {}
  host_side host;
  isolate::plugin<buffer_user, Policy> plugin;
};

// How many shared buffers process `pid` maps (the host's memfds are named so).
std::size_t mapped_buffers(int pid) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::size_t count = 0;
  for (std::string line; std::getline(maps, line);) {
    if (line.find("isolate-shared-buffer") != std::string::npos) ++count;
  }
  return count;
}

using process_fixture = fixture<isolate::process>;

}  // namespace

#define ISOLATE_TEST_POLICIES isolate::in_process, isolate::thread, isolate::process

TEST_CASE_TEMPLATE("the plugin reads what the host wrote", Policy, ISOLATE_TEST_POLICIES) {
  fixture<Policy> f;
  const auto buffer = patterned(1 << 20);
  CHECK(f.plugin->checksum(buffer) == sum(buffer));
  CHECK(f.plugin->checksum(isolate::shared_buffer()) == 0);
}

TEST_CASE_TEMPLATE("the host sees what the plugin wrote, even through a buffer passed by value", Policy,
                   ISOLATE_TEST_POLICIES) {
  fixture<Policy> f;
  isolate::shared_buffer buffer(64 << 10);
  f.plugin->fill(buffer, 7);
  CHECK(std::ranges::all_of(buffer.as<std::uint8_t>(), [](std::uint8_t b) { return b == 7; }));
  // And the other way again, on the same mapping.
  buffer.as<std::uint8_t>()[100] = 8;
  CHECK(f.plugin->checksum(buffer) == 7u * (64 << 10) + 1);
}

TEST_CASE_TEMPLATE("a buffer passed many times is the same mapping every time", Policy, ISOLATE_TEST_POLICIES) {
  fixture<Policy> f;
  const auto buffer = patterned(4096);
  const auto first = f.plugin->address_of(buffer);
  for (int i = 0; i < 100; ++i) REQUIRE(f.plugin->address_of(buffer) == first);
  if constexpr (std::is_same_v<Policy, isolate::process>) {
    CHECK(f.plugin.transport().link().buffers_shared() == 1);
    CHECK(mapped_buffers(f.plugin->pid()) == 1);
  } else {
    CHECK(first == reinterpret_cast<std::uintptr_t>(buffer.data()));  // the host's own mapping
  }
}

TEST_CASE_TEMPLATE("two buffers in one call, or one buffer twice", Policy, ISOLATE_TEST_POLICIES) {
  fixture<Policy> f;
  const auto a = patterned(10'000);
  isolate::shared_buffer b(3000);
  std::ranges::fill(b.as<std::uint8_t>(), std::uint8_t{1});
  CHECK(f.plugin->sum_of_two(a, b) == sum(a) + 3000);
  CHECK(f.plugin->sum_of_two(a, a) == 2 * sum(a));
  if constexpr (std::is_same_v<Policy, isolate::process>) {
    CHECK(f.plugin.transport().link().buffers_shared() == 2);
    CHECK(mapped_buffers(f.plugin->pid()) == 2);
  }
}

TEST_CASE_TEMPLATE("a plugin returns a buffer it was given: the host gets its own back", Policy,
                   ISOLATE_TEST_POLICIES) {
  fixture<Policy> f;
  const auto buffer = patterned(8192);
  const auto back = f.plugin->echo(buffer);
  CHECK(back == buffer);
  CHECK(back.data() == buffer.data());
  CHECK(f.plugin->echo(isolate::shared_buffer()).empty());
}

TEST_CASE_TEMPLATE("an asynchronous call keeps its buffer alive until it is over", Policy, ISOLATE_TEST_POLICIES) {
  fixture<Policy> f;
  std::uint64_t expected = 0;
  std::future<std::uint64_t> answer;
  {
    const auto buffer = patterned(100'000);
    expected = sum(buffer);
    answer = f.plugin.async(&buffer_user::checksum, buffer, asio::use_future);
  }  // the caller's last handle goes before the plugin has run
  REQUIRE(answer.wait_for(20s) == std::future_status::ready);
  CHECK(answer.get() == expected);
}

TEST_CASE_TEMPLATE("buffers go to host services and come from them", Policy, ISOLATE_TEST_POLICIES) {
  fixture<Policy> f;
  f.host.given = patterned(5000);
  CHECK(f.plugin->pass_to_host(f.host.given) == sum(f.host.given));
  CHECK(f.host.got_own_buffer_back);
  CHECK(f.plugin->checksum_of_host_buffer(1000) == 3000);
}

TEST_CASE_TEMPLATE("a buffer the plugin made itself: as is in process, refused across a boundary", Policy,
                   ISOLATE_TEST_POLICIES) {
  fixture<Policy> f;
  if constexpr (std::is_same_v<Policy, isolate::in_process>) {
    const auto own = f.plugin->make_own(100);  // the object itself: nothing crosses
    CHECK(own.size() == 100);
    CHECK(sum(own) == 900);
  } else {
    // Under process the host never gave it; under thread no one holds it once
    // the plugin has returned (the thread transport keeps the process rules).
    CHECK(failure_of([&] { f.plugin->make_own(100); }).code() == isolate::errc::protocol_error);
  }
  if constexpr (!std::is_same_v<Policy, isolate::process>) {
    CHECK(f.plugin->pass_own_to_host(10) == 90);  // a direct call to the host's object
  }
}

TEST_CASE_TEMPLATE("callers on several threads share buffers, each sent to a worker once", Policy,
                   ISOLATE_TEST_POLICIES) {
  fixture<Policy> f;
  const auto common = patterned(1 << 16);
  std::vector<std::thread> callers;
  std::vector<int> wrong(4, 0);
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      const auto own = patterned(1000 + static_cast<std::size_t>(t));
      for (int i = 0; i < 50; ++i) {
        if (f.plugin->sum_of_two(common, own) != sum(common) + sum(own)) ++wrong[static_cast<std::size_t>(t)];
      }
    });
  }
  for (auto& caller : callers) caller.join();
  CHECK(wrong == std::vector<int>(4, 0));
  if constexpr (std::is_same_v<Policy, isolate::process>) {
    CHECK(f.plugin.transport().link().buffers_shared() == 5);
  }
}

TEST_CASE("process: buffers work with the socket channel too") {
  isolate::process::options options;
  options.shared_memory = false;
  process_fixture f(options);
  const auto buffer = patterned(1 << 20);
  CHECK(f.plugin->checksum(buffer) == sum(buffer));
  f.plugin->fill(buffer, 1);
  CHECK(sum(buffer) == 1u << 20);
}

TEST_CASE("process: a buffer the host released is unmapped in the worker once the plugin lets go too") {
  process_fixture f;
  const int pid = f.plugin->pid();
  {
    const auto buffer = patterned(1 << 16);
    CHECK(f.plugin->checksum(buffer) == sum(buffer));
    CHECK(mapped_buffers(pid) == 1);
  }
  f.plugin.transport().link().sync_control();  // the worker has handled the release
  CHECK(mapped_buffers(pid) == 0);

  {
    const auto kept = patterned(1 << 16);
    f.plugin->keep(kept);
  }
  f.plugin.transport().link().sync_control();
  CHECK(mapped_buffers(pid) == 1);  // the plugin still holds it
  f.plugin->drop_kept();
  CHECK(mapped_buffers(pid) == 0);
}

TEST_CASE("process: a restarted worker is sent the buffer again on its next use") {
  isolate::process::options options;
  options.restart = isolate::restart_policy::crash(1, 1ms);
  process_fixture f(options);
  const auto buffer = patterned(1 << 20);
  const int first = f.plugin->pid();
  CHECK(f.plugin->checksum(buffer) == sum(buffer));
  CHECK(failure_of([&] { f.plugin->crash(); }).code() == isolate::errc::plugin_crashed);
  CHECK(f.plugin->checksum(buffer) == sum(buffer));  // waits for the restart
  const int second = f.plugin->pid();
  CHECK(second != first);
  CHECK(f.plugin.transport().link().buffers_shared() == 1);
  CHECK(mapped_buffers(second) == 1);
  f.plugin->fill(buffer, 5);
  CHECK(sum(buffer) == 5u << 20);
}

TEST_CASE("process: a plugin naming a buffer the host never gave it is a protocol error") {
  isolate::process::options options;
  options.restart = isolate::restart_policy::crash(1, 1ms);
  process_fixture f(options);
  const int first = f.plugin->pid();
  const auto e = failure_of([&] { f.plugin->make_own(4096); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK(std::string(e.what()).find("never shared with it") != std::string::npos);
  // A reply that does not decode: the worker is not trusted again, and a fresh one takes over.
  CHECK(f.plugin->checksum(patterned(10)) == 45);
  CHECK(f.plugin->pid() != first);
}

TEST_CASE("process: a plugin giving a buffer another size is a protocol error") {
  isolate::process::options options;
  options.restart = isolate::restart_policy::crash(1, 1ms);
  process_fixture f(options);
  const auto buffer = patterned(4096);
  f.plugin->keep(buffer);
  const auto e = failure_of([&] { f.plugin->resize_kept(8192); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK(std::string(e.what()).find("size of 8192 bytes") != std::string::npos);
  f.plugin->keep(buffer);  // to the fresh worker that replaced the one killed for it
  CHECK(f.plugin->return_kept() == buffer);
}

TEST_CASE("process: a plugin returning a buffer the host has released is a protocol error") {
  process_fixture f;
  {
    const auto buffer = patterned(4096);
    f.plugin->keep(buffer);
  }
  const auto e = failure_of([&] { f.plugin->return_kept(); });
  CHECK(e.code() == isolate::errc::protocol_error);
}

TEST_CASE("process: a plugin passing a host service a buffer it was never given is killed with protocol_error") {
  // The host decodes the plugin's service call against the buffers it lent:
  // a call that does not decode is a protocol violation the host saw itself.
  isolate::process::options options;
  options.restart = isolate::restart_policy::crash(1, 1ms);
  process_fixture f(options);
  const int first = f.plugin->pid();
  const auto e = failure_of([&] { f.plugin->pass_own_to_host(100); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK(std::string(e.what()).find("never shared with it") != std::string::npos);
  CHECK(f.plugin->pid() != first);  // a fresh worker took over
}

TEST_CASE_TEMPLATE("a lend (read-only, for one call, both) carries the same bytes under every transport", Policy,
                   ISOLATE_TEST_POLICIES) {
  fixture<Policy> f;
  const auto buffer = patterned(64 << 10);
  CHECK(f.plugin->checksum(buffer.read_only()) == sum(buffer));
  CHECK(f.plugin->checksum(buffer.for_one_call()) == sum(buffer));
  CHECK(f.plugin->checksum(buffer.read_only().for_one_call()) == sum(buffer));
  isolate::shared_buffer target(4096);
  f.plugin->fill(target.for_one_call(), 9);
  CHECK(std::ranges::all_of(target.as<std::uint8_t>(), [](std::uint8_t b) { return b == 9; }));

  // A lend is a handle of its own on the same bytes; lends combine.
  const auto lent = buffer.read_only().for_one_call();
  CHECK(lent.data() == buffer.data());
  CHECK(lent.size() == buffer.size());
  CHECK(lent.is_read_only());
  CHECK(lent.is_for_one_call());
  CHECK_FALSE(buffer.is_read_only());
  CHECK_FALSE(buffer.read_only().is_for_one_call());
  CHECK_FALSE(lent == buffer);
  CHECK(isolate::shared_buffer().read_only().empty());
}

TEST_CASE("process: a buffer lent read-only is read by the plugin; its write kills the plugin, not the host") {
  process_fixture f;
  auto buffer = patterned(4096);
  const auto before = sum(buffer);
  const auto lent = buffer.read_only();
  CHECK(f.plugin->checksum(lent) == before);
  // A hostile plugin cannot make its mapping writable: the descriptor it came from is read-only.
  CHECK(f.plugin->make_writable(lent) == EACCES);
  const auto failure = failure_of([&] { f.plugin->fill(lent, 1); });
  CHECK(failure.code() == isolate::errc::plugin_crashed);
  // (Under TSan the worker's runtime reports the fault and exits instead.)
  if (!isolate_test::under_tsan) CHECK(std::string(failure.what()).find("SIGSEGV") != std::string::npos);
  CHECK(sum(buffer) == before);  // untouched, and the host still writes its own
  buffer.as<std::uint8_t>()[0] = 200;
  CHECK(sum(buffer) == before + 200);
}

TEST_CASE("process: a buffer lent for one call is gone from the plugin when the call returns") {
  process_fixture f;
  const auto buffer = patterned(8192);
  const int pid = f.plugin->pid();
  // Shared as usual, a buffer the plugin keeps stays readable after the call.
  f.plugin->keep(buffer);
  CHECK(f.plugin->checksum_kept() == sum(buffer));
  f.plugin->drop_kept();
  CHECK(mapped_buffers(pid) == 1);

  const auto lent = buffer.for_one_call();
  f.plugin->keep(lent);  // the plugin keeps the handle, but the bytes went with the call
  CHECK(mapped_buffers(pid) == 1);  // only `buffer`'s mapping: the lend's is revoked
  // Passed again, it is lent again for that call.
  CHECK(f.plugin->checksum(lent) == sum(buffer));
  CHECK(f.plugin.transport().link().buffers_shared() == 3);  // `buffer` once, the lend once per call
  CHECK(mapped_buffers(pid) == 1);
  // A later access through the kept handle faults the plugin, not the host.
  const auto failure = failure_of([&] { f.plugin->checksum_kept(); });
  CHECK(failure.code() == isolate::errc::plugin_crashed);
  // (Under TSan the worker's runtime reports the fault and exits instead.)
  if (!isolate_test::under_tsan) CHECK(std::string(failure.what()).find("SIGSEGV") != std::string::npos);
  CHECK(sum(buffer) == sum(patterned(8192)));
}

TEST_CASE("process, sandboxed: a plugin cannot keep a second mapping of a buffer lent for one call") {
  isolate::process::options options;
  options.limits = isolate::limits::standard();
  process_fixture f(options);
  const auto buffer = patterned(8192);
  const auto lent = buffer.for_one_call();
  // mremap with an old size of 0 would map the same pages again, out of the
  // worker's reach when it revokes the lend: the sandbox's filter refuses it.
  CHECK(f.plugin->duplicate_mapping(lent) != 0);
  f.plugin->keep(lent);
  CHECK(failure_of([&] { f.plugin->checksum_kept(); }).code() == isolate::errc::plugin_crashed);
}
