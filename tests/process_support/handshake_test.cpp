#include "isolate/detail/process/handshake.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <string>
#include <vector>

using namespace isolate::detail;
using isolate::errc;

TEST_CASE("a hello makes the round trip with its services and limits") {
  hello_message hello;
  hello.plugin_path = "/plugins/libcalc.so";
  hello.interface_name = "calculator";
  hello.fingerprint = 0x1234'5678'9abc'def0;
  hello.shared_memory = false;
  hello.ring_capacity = 1 << 16;
  hello.max_message_size = 1 << 20;
  hello.concurrency = 4;
  hello.max_spin_ns = 50'000;
  hello.adaptive_spin = false;
  hello.services = {{"logger", 7}, {"clock", 9}};
  hello.limits.policy = isolate::limits::strict();
  hello.limits.policy.read_only = {"/usr/share", "/etc/ssl"};
  hello.limits.policy.writable = {"/tmp/out"};
  hello.limits.policy.working_directory = "/srv";
  hello.limits.namespaces = true;
  hello.limits.plugin_fd_passed = true;

  const auto back = decode_message<hello_message>(encode_message(hello));
  CHECK(back.protocol_version == process_protocol_version);
  CHECK(back.cache_line == ISOLATE_CACHE_LINE);
  CHECK(back.plugin_path == hello.plugin_path);
  CHECK(back.interface_name == hello.interface_name);
  CHECK(back.fingerprint == hello.fingerprint);
  CHECK_FALSE(back.shared_memory);
  CHECK(back.ring_capacity == hello.ring_capacity);
  CHECK(back.max_message_size == hello.max_message_size);
  CHECK(back.concurrency == 4);
  CHECK(back.max_spin_ns == 50'000);
  CHECK_FALSE(back.adaptive_spin);
  REQUIRE(back.services.size() == 2);
  CHECK(back.services[1].name == "clock");
  CHECK(back.services[1].fingerprint == 9);
  const auto& p = back.limits.policy;
  CHECK(p.preset == isolate::limits::level::strict);
  CHECK(p.memory_mb == hello.limits.policy.memory_mb);
  CHECK(p.cpu_seconds == hello.limits.policy.cpu_seconds);
  CHECK(p.restrict_filesystem);
  CHECK(p.syscalls == hello.limits.policy.syscalls);
  CHECK(p.read_only == hello.limits.policy.read_only);
  CHECK(p.writable == hello.limits.policy.writable);
  CHECK(p.working_directory == "/srv");
  CHECK(back.limits.namespaces);
  CHECK_FALSE(back.limits.network_namespace);
  CHECK(back.limits.plugin_fd_passed);
}

TEST_CASE("the worker's answers make the round trip") {
  const auto ready = decode_message<ready_message>(encode_message(ready_message{true, false}));
  CHECK(ready.on_load);
  CHECK_FALSE(ready.on_stop);

  applied_message applied;
  applied.limits = {{"memory", "RLIMIT_DATA 64 MiB", true}, {"cpu", "refused", false}};
  const auto r = decode_message<applied_message>(encode_message(applied));
  REQUIRE(r.limits.size() == 2);
  CHECK(r.limits[0].limit == "memory");
  CHECK(r.limits[0].in_force);
  CHECK(r.limits[1].mechanism == "refused");
  CHECK_FALSE(r.limits[1].in_force);

  const failed_message failed{static_cast<std::int32_t>(errc::load_failed), "no such file"};
  const auto f = decode_message<failed_message>(encode_message(failed));
  CHECK(f.code == static_cast<std::int32_t>(errc::load_failed));
  CHECK(f.message == "no such file");

  const auto b = decode_message<buffer_message>(encode_message(buffer_message{42, 4096}));
  CHECK(b.id == 42);
  CHECK(b.size == 4096);
  const auto fm = decode_message<forget_message>(encode_message(forget_message{42, 3}));
  CHECK(fm.answers == 3);
  CHECK(decode_message<sync_message>(encode_message(sync_message{17})).token == 17);
}

TEST_CASE("a message that does not decode exactly is a protocol error") {
  auto bytes = encode_message(failed_message{1, "text"});
  SUBCASE("cut short") { bytes.resize(bytes.size() - 2); }
  SUBCASE("with bytes after it") { bytes.push_back(std::byte{0}); }
  try {
    (void)decode_message<failed_message>(bytes);
    FAIL("nothing thrown");
  } catch (const isolate::error& e) {
    CHECK(e.code() == errc::protocol_error);
  }
}

TEST_CASE("the worker's exit statuses are distinct") {
  const std::vector<int> statuses{0, worker_exit_usage, worker_exit_failed, worker_exit_channel_broken,
                                  worker_exit_memory_limit};
  for (std::size_t i = 0; i < statuses.size(); ++i) {
    for (std::size_t j = i + 1; j < statuses.size(); ++j) CHECK(statuses[i] != statuses[j]);
  }
}
