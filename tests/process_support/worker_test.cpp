#include "isolate/detail/process/worker.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <chrono>
#include <cstring>
#include <string>
#include <system_error>

#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using namespace isolate::detail;
using isolate::errc;

namespace {

constexpr auto patience = std::chrono::milliseconds(20'000);

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A host played by the test: a detail::worker runs in a child process (its
// limits and exit are its own) on one end of a socket pair; the test holds
// the other end, as the real host's control socket.
struct fake_host {
  unique_fd control;
  pid_t child = -1;

  fake_host() {
    std::error_code ec;
    auto [host_end, worker_end] = make_socket_pair(ec);
    REQUIRE_FALSE(ec);
    child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      host_end.reset();
      ::_exit(worker(worker_end.get()).run());
    }
    control = std::move(host_end);
  }
  ~fake_host() {
    if (child > 0) {
      control.reset();  // a worker still waiting sees the host go
      ::waitpid(child, nullptr, 0);
    }
  }

  void send_hello(const hello_message& hello) {
    write_message(control.get(), static_cast<std::uint32_t>(control_type::hello), encode_message(hello), patience);
  }
  // The channel's descriptor, as the host sends it after the hello (a socket: no shared memory).
  void send_channel() {
    std::error_code ec;
    auto [mine, theirs] = make_socket_pair(ec);
    REQUIRE_FALSE(ec);
    const int fd = theirs.get();
    const std::byte mark{1};
    send_with_fds(control.get(), std::span<const std::byte>(&mark, 1), std::span<const int>(&fd, 1), patience);
  }
  // The failure, after the limits report when the worker got that far (it
  // reports its limits before it opens the plugin).
  failed_message expect_failure() {
    auto message = read_message(control.get(), 64 * 1024, patience);
    if (message.type == static_cast<std::uint32_t>(control_type::limits_applied)) {
      message = read_message(control.get(), 64 * 1024, patience);
    }
    REQUIRE(message.type == static_cast<std::uint32_t>(control_type::failed));
    return decode_message<failed_message>(message.body);
  }
  int exit_code() {
    int status = 0;
    REQUIRE(::waitpid(std::exchange(child, -1), &status, 0) > 0);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
  }
};

hello_message socket_hello(std::string plugin) {
  hello_message hello;
  hello.plugin_path = std::move(plugin);
  hello.interface_name = "nothing";
  hello.shared_memory = false;
  hello.max_message_size = 1 << 20;
  return hello;
}

}  // namespace

TEST_CASE("a hello of another protocol version is refused with protocol_error") {
  fake_host host;
  auto hello = socket_hello("/nonexistent/libplugin.so");
  hello.protocol_version = process_protocol_version + 1;
  host.send_hello(hello);
  host.send_channel();
  const auto failure = host.expect_failure();
  CHECK(failure.code == static_cast<std::int32_t>(errc::protocol_error));
  CHECK(contains(failure.message, "disagree on the protocol"));
  CHECK(host.exit_code() == worker_exit_failed);
}

TEST_CASE("a hello of another protocol version that does not decode at all is still told apart by its version") {
  fake_host host;
  // An older host's hello: its version, then fields this worker would read otherwise.
  const std::uint32_t older = process_protocol_version - 1;
  std::vector<std::byte> body(sizeof older);
  std::memcpy(body.data(), &older, sizeof older);
  write_message(host.control.get(), static_cast<std::uint32_t>(control_type::hello), body, patience);
  const auto failure = host.expect_failure();
  CHECK(failure.code == static_cast<std::int32_t>(errc::protocol_error));
  CHECK_MESSAGE(contains(failure.message, "disagree on the protocol (host: version " + std::to_string(older)),
                failure.message);
  CHECK(host.exit_code() == worker_exit_failed);
}

TEST_CASE("a hello of another cache line size is refused with protocol_error") {
  fake_host host;
  auto hello = socket_hello("/nonexistent/libplugin.so");
  hello.cache_line = ISOLATE_CACHE_LINE * 2;
  host.send_hello(hello);
  host.send_channel();
  CHECK(host.expect_failure().code == static_cast<std::int32_t>(errc::protocol_error));
  CHECK(host.exit_code() == worker_exit_failed);
}

TEST_CASE("a hello naming a missing plugin gets load_failed, naming it") {
  fake_host host;
  host.send_hello(socket_hello("/nonexistent/isolate-missing-plugin.so"));
  host.send_channel();
  const auto failure = host.expect_failure();
  CHECK(failure.code == static_cast<std::int32_t>(errc::load_failed));
  CHECK(contains(failure.message, "/nonexistent/isolate-missing-plugin.so"));
  CHECK(host.exit_code() == worker_exit_failed);
}

TEST_CASE("a hello that does not decode is a protocol_error") {
  fake_host host;
  const std::byte garbage[3]{std::byte{1}, std::byte{2}, std::byte{3}};
  write_message(host.control.get(), static_cast<std::uint32_t>(control_type::hello), garbage, patience);
  const auto failure = host.expect_failure();
  CHECK(failure.code == static_cast<std::int32_t>(errc::protocol_error));
  CHECK(contains(failure.message, "malformed hello"));
  CHECK(host.exit_code() == worker_exit_failed);
}

TEST_CASE("another message in place of the hello is a protocol_error") {
  fake_host host;
  write_message(host.control.get(), static_cast<std::uint32_t>(control_type::shutdown), {}, patience);
  CHECK(host.expect_failure().code == static_cast<std::int32_t>(errc::protocol_error));
  CHECK(host.exit_code() == worker_exit_failed);
}

TEST_CASE("a host that goes away before its hello leaves the worker failing") {
  fake_host host;
  host.control.reset();
  CHECK(host.exit_code() == worker_exit_failed);
}
