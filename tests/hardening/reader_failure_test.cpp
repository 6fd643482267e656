// Item 8: no exception may leave the host's reading path. This executable
// replaces operator new so that any allocation of 512 MiB or more fails, and
// a hostile worker announces a 1 GiB reply: the host cannot hold it, kills
// the worker with a named error, and fails the pending calls; nothing
// terminates, nothing dangles (ASan checks the latter).
#include "isolate/transport/process.hpp"

#include "support.hpp"

#include "../support/failure.hpp"

#include <asio/use_future.hpp>
#include <doctest/doctest.h>

#include <cstdlib>
#include <future>
#include <new>
#include <thread>

namespace {
constexpr std::size_t refused = std::size_t{512} << 20;
void* allocate(std::size_t size) {
  if (size >= refused) throw std::bad_alloc();
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
}  // namespace

// malloc/free underneath, all variants, so that sanitizers see matching pairs.
void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return size >= refused ? nullptr : std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return size >= refused ? nullptr : std::malloc(size == 0 ? 1 : size);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

using namespace hardening_test;
using namespace std::chrono_literals;
using isolate_test::failure_of;

namespace {
isolate::process::options huge_messages() {
  isolate::process::options options;
  options.max_message_size = std::size_t{1} << 30;
  options.call_timeout = 30s;
  return options;
}
}  // namespace

TEST_CASE("8: a reply the host cannot allocate fails an asynchronous call, read by the receiver thread") {
  auto p = load_hostile("huge-reply", huge_messages());
  auto reply = p.async(&hardy::add, 1, 2, asio::use_future);
  REQUIRE(reply.wait_for(20s) == std::future_status::ready);
  const auto e = failure_of([&] { reply.get(); });
  CHECK(e.code() == isolate::errc::protocol_error);
}

TEST_CASE("8: ... and synchronous calls, whichever thread reads") {
  auto p = load_hostile("huge-reply", huge_messages());
  auto other = std::async(std::launch::async, [&] { return failure_of([&] { p->add(3, 4); }); });
  const auto e = failure_of([&] { p->add(1, 2); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK(other.get().code() == isolate::errc::protocol_error);
}
