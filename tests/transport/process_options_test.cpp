#include "isolate/transport/process_options.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <type_traits>

using namespace std::chrono_literals;

TEST_CASE("process options: what a default load gets") {
  const isolate::process::options options;
  CHECK(options.worker.empty());
  CHECK(options.shared_memory);
  CHECK(options.concurrency == 1);
  CHECK(options.max_message_size == ISOLATE_DEFAULT_MAX_MESSAGE_SIZE);
  CHECK(options.ring_capacity == std::size_t{1} << 20);
  CHECK(options.call_timeout == 30s);
  CHECK_FALSE(options.restart.on_crash);
  CHECK(options.limits.preset == isolate::limits::level::minimal);
  CHECK_FALSE(options.on_output);  // stdout and stderr as limits.worker_output says
  CHECK(options.name.empty());
  CHECK(options.max_output_line == 64 * 1024);
  static_assert(isolate::process::calls_can_time_out);
}

TEST_CASE("restart policies") {
  CHECK_FALSE(isolate::restart_policy::never().on_crash);
  const auto crash = isolate::restart_policy::crash(5, 10ms);
  CHECK(crash.on_crash);
  CHECK(crash.max_restarts == 5);
  CHECK(crash.backoff == 10ms);
}

TEST_CASE("an output line, as on_output receives it") {
  const isolate::output_line line{"parser", isolate::output_stream::err, "text", false};
  CHECK(line.plugin == "parser");
  CHECK(line.stream == isolate::output_stream::err);
  CHECK(line.text == "text");
  CHECK_FALSE(line.cut);
  CHECK(isolate::output_line{}.stream == isolate::output_stream::out);
}
