// isolate/worker.hpp: the worker program's main, run in a child of this test
// as the worker program would run it. (Named worker_main_test: worker_test is
// the test of detail/process/worker.hpp, and test names are unique.)
#include "isolate/worker.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <chrono>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
namespace detail = isolate::detail;

namespace {

constexpr auto patience = std::chrono::milliseconds(20'000);

struct outcome {
  int exit_code = -1;
  std::string errors;  // what it wrote to stderr
};

// Runs worker_main(args) in a child, with its stderr captured; `while_running`
// plays the host meanwhile.
template <class WhileRunning>
outcome run_worker_main(std::vector<std::string> args, WhileRunning&& while_running) {
  int err[2];
  REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(err[1], STDERR_FILENO);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>("isolate-worker"));
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::_exit(isolate::worker_main(static_cast<int>(argv.size() - 1), argv.data()));
  }
  ::close(err[1]);
  while_running();
  outcome result;
  char buffer[512];
  for (ssize_t n; (n = ::read(err[0], buffer, sizeof buffer)) > 0;) result.errors.append(buffer, static_cast<std::size_t>(n));
  ::close(err[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  result.exit_code = WEXITSTATUS(status);
  return result;
}

}  // namespace

TEST_CASE("worker_main without a control descriptor says how it is meant to run, and exits with usage") {
  const auto result = run_worker_main({}, [] {});
  CHECK(result.exit_code == detail::worker_exit_usage);
  CHECK(result.errors.find("started by the host") != std::string::npos);
}

TEST_CASE("worker_main leaves when its parent is not the host that started it") {
  std::error_code ec;
  auto [host_end, worker_end] = detail::make_socket_pair(ec);
  REQUIRE_FALSE(ec);
  // PID 1 is never this test: the worker concludes its host died before it started.
  const auto result = run_worker_main(
      {"--isolate-control-fd=" + std::to_string(worker_end.get()), "--isolate-parent=1"}, [] {});
  CHECK(result.exit_code == 1);
}

TEST_CASE("worker_main serves the host on its control descriptor") {
  std::error_code ec;
  auto [host_end, worker_end] = detail::make_socket_pair(ec);
  REQUIRE_FALSE(ec);
  // Inherited across fork() (close-on-exec only matters for exec).
  const int fd = worker_end.get();
  detail::failed_message failure;
  const auto result = run_worker_main(
      {"--isolate-control-fd=" + std::to_string(fd), "--isolate-parent=" + std::to_string(::getpid())}, [&] {
        worker_end.reset();
        detail::hello_message hello;
        hello.protocol_version = detail::process_protocol_version + 1;
        hello.shared_memory = false;
        detail::write_message(host_end.get(), static_cast<std::uint32_t>(detail::control_type::hello),
                              detail::encode_message(hello), patience);
        auto [mine, theirs] = detail::make_socket_pair(ec);
        const int channel = theirs.get();
        const std::byte mark{1};
        detail::send_with_fds(host_end.get(), std::span<const std::byte>(&mark, 1), std::span<const int>(&channel, 1),
                              patience);
        const auto message = detail::read_message(host_end.get(), 64 * 1024, patience);
        CHECK(message.type == static_cast<std::uint32_t>(detail::control_type::failed));
        failure = detail::decode_message<detail::failed_message>(message.body);
      });
  CHECK(result.exit_code == detail::worker_exit_failed);
  CHECK(failure.code == static_cast<std::int32_t>(isolate::errc::protocol_error));
}
