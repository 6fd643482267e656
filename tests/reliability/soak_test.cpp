// Soak: many calls through one process plugin, mixing small, large (argument
// and result), asynchronous, host-service and event calls. Every call is
// checked, and the host's footprint (descriptors, memfds, threads, mappings,
// children, RSS) at the end is what it was after the first 10 %.
//
// 1,000,000 calls (200,000 under a sanitizer); ISOLATE_SOAK_CALLS sets another count.
#include "host_footprint.hpp"

#include "../hardening/support.hpp"

#include <asio/use_future.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <string>
#include <vector>

using namespace hardening_test;
using namespace reliability_test;

namespace {

struct host_library final : library {
  std::string text_of_size(std::uint64_t size) override { return std::string(size, 't'); }
};

struct host_notes final : notes {
  void note(const std::string& text) override { bytes.fetch_add(text.size()); }
  std::atomic<std::uint64_t> bytes{0};
};

bool expected_bytes(const std::vector<std::uint8_t>& bytes) {
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] != static_cast<std::uint8_t>(i * 7 + 1)) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("soak: a mix of calls through one process plugin leaves the host's footprint flat") {
  const long total = count_from_environment("ISOLATE_SOAK_CALLS", sanitized ? 200'000 : 1'000'000);
  host_library library_service;
  host_notes notes_sink;
  isolate::host_services services;
  services.provide<library>(library_service);
  services.provide<notes>(notes_sink);
  auto p = load_hardy({}, services);

  const std::vector<std::uint8_t> large(64 * 1024, 3);
  std::vector<std::future<int>> in_flight;
  std::uint64_t notes_sent = 0;
  long failures = 0;
  host_footprint early;
  const auto started = std::chrono::steady_clock::now();
  for (long i = 0; i < total; ++i) {
    if (i == total / 10) early = host_footprint::now();
    const int n = static_cast<int>(i & 0xffff);
    if (p->add(n, 1) != n + 1) ++failures;
    if (i % 8 == 0) in_flight.push_back(p.async(&hardy::add, n, 2, asio::use_future));
    if (in_flight.size() == 64) {
      for (auto& f : in_flight) failures += f.get() >= 2 ? 0 : 1;
      in_flight.clear();
    }
    if (i % 64 == 0) {
      if (p->count_bytes(large) != large.size()) ++failures;
      if (!expected_bytes(p->bytes_of_size(64 * 1024 + static_cast<std::uint64_t>(n % 7)))) ++failures;
    }
    const auto size = 1024 + static_cast<std::uint64_t>(n % 13);
    if (i % 256 == 0 && p->fetch_from_host(size) != size) ++failures;
    if (i % 256 == 128) {
      p->send_notes(4, 100);
      notes_sent += 4 * 100;
    }
  }
  for (auto& f : in_flight) failures += f.get() >= 2 ? 0 : 1;
  CHECK(p->add(1, 1) == 2);  // the plugin's events before this answer have all been delivered
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const host_footprint late = host_footprint::now();

  MESSAGE(total << " calls (+ " << total / 8 << " async, " << 2 * (total / 64) << " of 64 KiB, " << total / 256
                << " host-service calls, " << total / 256 << " event bursts) in " << seconds << " s\n"
                << "after 10 %: " << early << "\nat the end: " << late);
  CHECK(failures == 0);
  CHECK(notes_sink.bytes.load() == notes_sent);
  CHECK(late.fds == early.fds);
  CHECK(late.memfds == early.memfds);
  // One thread may come or go between the two snapshots: the plugin's
  // receiver (it runs only while asynchronous work is outstanding, and
  // retires after receiver_idle), or a restart's thread finishing.
  // A thread leaked per call or restart would be thousands more.
  CHECK(late.threads <= early.threads + 1);
  CHECK(late.children == early.children);
  CHECK(late.mappings <= early.mappings + 8);
  // Heap arenas settle within the first 10 %; what grows after is a leak.
  // (Not under a sanitizer, whose quarantine of freed memory grows to 256 MiB.)
  if (!sanitized) CHECK(late.rss_bytes <= early.rss_bytes + (std::uint64_t{8} << 20));
}
