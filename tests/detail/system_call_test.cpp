#include "isolate/detail/system_call.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <atomic>
#include <cerrno>
#include <csignal>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

using isolate::detail::last_system_error;
using isolate::detail::retry_on_eintr;

namespace {

std::atomic<int> interruptions{0};
extern "C" void count_interruption(int) { interruptions.fetch_add(1); }

}  // namespace

TEST_CASE("retry_on_eintr returns the first result that is not EINTR") {
  int calls = 0;
  CHECK(retry_on_eintr([&] { return ++calls < 3 ? (errno = EINTR, -1) : 7; }) == 7);
  CHECK(calls == 3);

  calls = 0;
  CHECK(retry_on_eintr([&] { return ++calls, errno = EAGAIN, -1; }) == -1);  // other errors are returned
  CHECK(calls == 1);
  CHECK(errno == EAGAIN);

  calls = 0;
  CHECK(retry_on_eintr([&] { return ++calls, errno = EINTR, 0; }) == 0);  // only -1 means failure
  CHECK(calls == 1);
}

TEST_CASE("retry_on_eintr carries a blocking read through a signal") {
  // A handler without SA_RESTART: the kernel fails the read with EINTR.
  struct sigaction action{};
  action.sa_handler = count_interruption;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;
  struct sigaction previous{};
  REQUIRE(::sigaction(SIGUSR1, &action, &previous) == 0);

  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  std::atomic<int> attempts{0};
  std::atomic<bool> reading{false};
  char got = 0;
  ssize_t result = 0;
  std::thread reader([&] {
    reading = true;
    result = retry_on_eintr([&] {
      attempts.fetch_add(1);
      return ::read(fds[0], &got, 1);
    });
  });
  const pthread_t reader_handle = reader.native_handle();
  while (!reading) std::this_thread::yield();
  // Interrupt until the reader has been woken by a signal and gone back to read.
  while (attempts.load() < 2) {
    ::pthread_kill(reader_handle, SIGUSR1);
    std::this_thread::yield();
  }
  const char byte = 'z';
  REQUIRE(::write(fds[1], &byte, 1) == 1);
  reader.join();
  CHECK(result == 1);
  CHECK(got == 'z');
  CHECK(interruptions.load() >= 1);
  ::close(fds[0]);
  ::close(fds[1]);
  ::sigaction(SIGUSR1, &previous, nullptr);
}

TEST_CASE("last_system_error is errno in the system category") {
  errno = ENOENT;
  const std::error_code ec = last_system_error();
  CHECK(ec.value() == ENOENT);
  CHECK(ec.category() == std::system_category());
  CHECK(ec == std::errc::no_such_file_or_directory);
}
