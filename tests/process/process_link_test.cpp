#include "isolate/detail/process/process_link.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include "faulty.hpp"

#include "../support/failure.hpp"

#include "isolate/detail/client.hpp"

#include <chrono>
#include <string>

using namespace std::chrono_literals;
using namespace isolate::detail;
using isolate::errc;
using isolate_test::failure_of;
using process_test::faulty;

namespace {

launch_spec faulty_spec() {
  launch_spec spec;
  spec.plugin = ISOLATE_TEST_FAULTY_PLUGIN;
  spec.interface_name = std::string(faulty::isolate_meta::interface_name);
  spec.fingerprint = faulty::isolate_meta::fingerprint;
  spec.options.worker = ISOLATE_TEST_WORKER;
  spec.options.ring_capacity = 1 << 16;
  return spec;
}

using add_method = int (faulty::*)(int, int);
using pid_method = int (faulty::*)();
using exit_method = void (faulty::*)(int);

}  // namespace

TEST_CASE("a process link starts its worker and carries calls through a client") {
  process_link link(faulty_spec());
  client calls(link);
  CHECK(calls.call<0, add_method>(2, 40) == 42);
  CHECK(link.pid() > 0);
  CHECK(calls.call<1, pid_method>() == link.pid());
  CHECK(link.restarts() == 0);
  link.sync_control();
  CHECK(link.max_message_size() == ISOLATE_DEFAULT_MAX_MESSAGE_SIZE);
}

TEST_CASE("with restart on crash, a crashed worker is replaced for the next call") {
  auto spec = faulty_spec();
  spec.options.restart = isolate::restart_policy::crash(2, 1ms);
  process_link link(spec);
  client calls(link);
  const pid_t first = link.pid();
  CHECK(failure_of([&] { calls.call<4, exit_method>(3); }).code() == errc::plugin_crashed);
  CHECK(calls.call<0, add_method>(1, 1) == 2);
  CHECK(link.restarts() == 1);
  CHECK(link.pid() != first);
}

TEST_CASE("without restarts, the death is every later call's error") {
  process_link link(faulty_spec());
  client calls(link);
  CHECK(failure_of([&] { calls.call<4, exit_method>(3); }).code() == errc::plugin_crashed);
  CHECK(failure_of([&] { calls.call<0, add_method>(1, 1); }).code() == errc::plugin_crashed);
}

TEST_CASE("options no worker could run with are refused before anything starts") {
  auto spec = faulty_spec();
  spec.options.max_message_size = std::size_t{1} << 40;
  CHECK(failure_of([&] { process_link link(spec); }).code() == errc::unsupported);
}
