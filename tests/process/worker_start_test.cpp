#include "isolate/detail/process/worker_start.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include "faulty.hpp"

#include "../support/failure.hpp"

#include <chrono>
#include <string>

using namespace std::chrono_literals;
using namespace isolate::detail;
using isolate::errc;
using isolate_test::contains;
using isolate_test::failure_of;
using process_test::faulty;
namespace wire = isolate::wire;

namespace {

constexpr auto patience = 20s;

launch_spec spec_for(const char* plugin) {
  launch_spec spec;
  spec.plugin = plugin;
  spec.interface_name = std::string(faulty::isolate_meta::interface_name);
  spec.fingerprint = faulty::isolate_meta::fingerprint;
  spec.options.worker = ISOLATE_TEST_WORKER;
  spec.options.ring_capacity = 1 << 16;
  return spec;
}

}  // namespace

TEST_CASE("a started worker has loaded its plugin and serves calls on its channel, then stops when told") {
  auto spec = spec_for(ISOLATE_TEST_FAULTY_PLUGIN);
  bool shared_memory = true;
  SUBCASE("over rings") {}
  SUBCASE("over a socket") { shared_memory = false; }
  spec.options.shared_memory = shared_memory;
  auto started = start_worker(spec, deadline_after(patience));
  CHECK(started.child.pid() > 0);
  CHECK(started.channel.uses_shared_memory() == shared_memory);
  CHECK(started.control);

  wire::buffer request, reply;
  encode_call(request, 0, spec.options.max_message_size, 20, 22);  // faulty::add
  wire::set_call_id(request, 1);
  const auto deadline = deadline_after(patience);
  REQUIRE(started.channel.send(request.bytes(), deadline) == channel_status::ok);
  REQUIRE(started.channel.receive(reply, deadline) == channel_status::ok);
  CHECK(wire::parse(reply.bytes(), spec.options.max_message_size).header.call_id == 1);
  CHECK(decode_reply<int>(reply, spec.options.max_message_size) == 42);

  write_message(started.control.get(), static_cast<std::uint32_t>(control_type::shutdown), {}, patience);
  const auto status = started.child.wait_exit(patience);
  REQUIRE(status);
  CHECK(status->exited_with(0));
}

TEST_CASE("a plugin that is not there is load_failed, naming it") {
  const auto e = failure_of([] { start_worker(spec_for("/nonexistent/libno-plugin.so"), deadline_after(patience)); });
  CHECK(e.code() == errc::load_failed);
  CHECK(contains(e.what(), "/nonexistent/libno-plugin.so"));
}

TEST_CASE("a plugin built from another declaration is fingerprint_mismatch") {
  auto spec = spec_for(ISOLATE_TEST_FAULTY_PLUGIN);
  spec.fingerprint ^= 1;
  CHECK(failure_of([&] { start_worker(spec, deadline_after(patience)); }).code() == errc::fingerprint_mismatch);
}

TEST_CASE("a plugin whose constructor never returns is a timeout at the load's deadline") {
  auto spec = spec_for(ISOLATE_TEST_SLOW_START_PLUGIN);
  spec.options.load_timeout = 300ms;
  const auto started = std::chrono::steady_clock::now();
  const auto e = failure_of([&] { start_worker(spec, deadline_for(spec.options.load_timeout)); });
  CHECK(e.code() == errc::timeout);
  CHECK(std::chrono::steady_clock::now() - started < patience);
}

TEST_CASE("a program that is not a worker is refused with load_failed") {
  auto spec = spec_for(ISOLATE_TEST_FAULTY_PLUGIN);
  spec.options.worker = "/bin/true";
  CHECK(failure_of([&] { start_worker(spec, deadline_after(patience)); }).code() == errc::load_failed);
}

TEST_CASE("the hello says what the spec says") {
  auto spec = spec_for(ISOLATE_TEST_FAULTY_PLUGIN);
  spec.options.concurrency = 3;
  spec.options.shared_memory = false;
  const auto hello = worker_start::hello_for(spec);
  CHECK(hello.plugin_path == ISOLATE_TEST_FAULTY_PLUGIN);
  CHECK(hello.interface_name == "faulty");
  CHECK(hello.fingerprint == faulty::isolate_meta::fingerprint);
  CHECK(hello.concurrency == 3);
  CHECK_FALSE(hello.shared_memory);
  CHECK(hello.max_message_size == spec.options.max_message_size);
}
