#include "isolate/shm/futex.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include "isolate/shm/region.hpp"

#include <atomic>
#include <cstdio>
#include <chrono>
#include <new>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using isolate::shm::futex_status;
using isolate::shm::futex_wait;
using isolate::shm::futex_wake;

TEST_CASE("futex_wait returns at once when the word does not hold the expected value") {
  std::atomic<std::uint32_t> word{5};
  CHECK(futex_wait(word, 4) == futex_status::value_changed);
  CHECK(futex_wait(word, 4, 1s) == futex_status::value_changed);
}

TEST_CASE("futex_wait times out") {
  std::atomic<std::uint32_t> word{0};
  auto const start = std::chrono::steady_clock::now();
  CHECK(futex_wait(word, 0, 20ms) == futex_status::timed_out);
  CHECK(std::chrono::steady_clock::now() - start >= 20ms);

  // A timeout already spent does not enter the kernel.
  CHECK(futex_wait(word, 0, 0ns) == futex_status::timed_out);
  CHECK(futex_wait(word, 1, -5ns) == futex_status::value_changed);
}

TEST_CASE("futex_wake with nobody waiting wakes nobody") {
  std::atomic<std::uint32_t> word{0};
  CHECK(futex_wake(word) == 0);
}

TEST_CASE("futex_wake wakes a waiting thread") {
  std::atomic<std::uint32_t> word{0};
  std::atomic<bool> sleeping{false};
  std::thread waiter([&] {
    while (word.load() == 0) {
      sleeping.store(true);
      futex_wait(word, 0);
    }
  });
  while (!sleeping.load()) std::this_thread::yield();
  word.store(1);
  futex_wake(word);
  waiter.join();
  CHECK(word.load() == 1);
}

TEST_CASE("futex wait and wake work across processes on a shared memfd") {
  auto region = isolate::shm::region::create(4096, "isolate-futex-test");
  auto* word = ::new (static_cast<void*>(region.data())) std::atomic<std::uint32_t>{0};
  auto* ack = ::new (static_cast<void*>(region.data() + 64)) std::atomic<std::uint32_t>{0};

  std::fflush(nullptr);  // the child must not print our buffered output again
  pid_t const child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // Child: wait (bounded) until the parent flips the word, then answer.
    auto const deadline = std::chrono::steady_clock::now() + 10s;
    while (word->load() == 0 && std::chrono::steady_clock::now() < deadline) futex_wait(*word, 0, 100ms);
    ack->store(word->load() == 1 ? 2u : 3u);
    futex_wake(*ack);
    ::_exit(0);
  }

  word->store(1);
  futex_wake(*word);
  auto const deadline = std::chrono::steady_clock::now() + 10s;
  while (ack->load() == 0 && std::chrono::steady_clock::now() < deadline) futex_wait(*ack, 0, 100ms);
  CHECK(ack->load() == 2);

  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
