#include "isolate/detail/process/reading_turns.hpp"

#include <doctest/doctest.h>

#include "isolate/shm/region.hpp"
#include "isolate/shm/ring.hpp"

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace shm = isolate::shm;
using isolate::detail::reading_turns;
using clock_type = std::chrono::steady_clock;

namespace {

// One duplex in a fresh region: the test writes as the host, threads take
// turns reading as the worker's pool does.
struct duplex {
  duplex() : memory(shm::region::create(shm::duplex_layout::bytes_needed(capacity), "isolate-turns-test")) {
    std::error_code ec;
    shm::duplex_layout::format(memory.bytes(), capacity, ec);
    REQUIRE_FALSE(ec);
    host = shm::duplex_layout::attach(memory.bytes(), capacity, shm::duplex_side::host, ec);
    REQUIRE_FALSE(ec);
    worker = shm::duplex_layout::attach(memory.bytes(), capacity, shm::duplex_side::worker, ec);
    REQUIRE_FALSE(ec);
  }
  static constexpr std::size_t capacity = 4096;
  shm::region memory;
  shm::duplex_layout::endpoint host;
  shm::duplex_layout::endpoint worker;
};

void write_number(shm::ring_writer& writer, std::uint64_t n) {
  std::error_code ec;
  writer.write(std::as_bytes(std::span(&n, 1)), {}, clock_type::now() + 10s, ec);
  REQUIRE_FALSE(ec);
}

// Waits, bounded, for `done` to hold; false if it never did.
template <class Done>
bool eventually(Done done) {
  const auto end = clock_type::now() + 10s;
  while (!done()) {
    if (clock_type::now() > end) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace

TEST_CASE("threads taking turns: a second record is read while the first one's thread still runs it") {
  if (!reading_turns::supported()) return;  // futex_waitv needs Linux 5.16
  duplex d;
  reading_turns turns(d.worker.reader);
  constexpr std::uint64_t pairs = 2000;
  std::atomic<std::uint64_t> read_count{0};
  std::vector<std::atomic<int>> seen(2 * pairs);
  std::atomic<int> stuck{0};

  // Record 2i is a "call" that runs until record 2i+1 has been read by
  // another thread: it can only end if giving up the turn let someone read on.
  auto take_turns = [&] {
    for (;;) {
      while (!turns.try_take()) {
        if (turns.stopping()) return;
        turns.wait();
      }
      std::error_code ec;
      auto record = d.worker.reader.read(clock_type::time_point::max(), ec);
      if (ec) {
        turns.stop();
        return;
      }
      std::uint64_t n = 0;
      std::memcpy(&n, record.data(), sizeof n);
      d.worker.reader.release();
      turns.give_up();
      seen[n].fetch_add(1);
      read_count.fetch_add(1);
      if (n % 2 == 0 && !eventually([&] { return seen[n + 1].load() > 0; })) stuck.fetch_add(1);
    }
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < 3; ++i) pool.emplace_back(take_turns);

  std::minstd_rand random(7);
  for (std::uint64_t i = 0; i < pairs && stuck.load() == 0; ++i) {
    write_number(d.host.writer, 2 * i);
    REQUIRE(eventually([&] { return read_count.load() == 2 * i + 1; }));
    // Now and then let every thread fall asleep before the partner comes.
    if (random() % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(random() % 300));
    write_number(d.host.writer, 2 * i + 1);
    REQUIRE(eventually([&] { return read_count.load() == 2 * i + 2; }));
  }
  d.worker.reader.close();
  turns.stop();
  for (auto& t : pool) t.join();
  CHECK(stuck.load() == 0);
  for (std::uint64_t n = 0; n < 2 * pairs; ++n) {
    CAPTURE(n);
    CHECK(seen[n].load() == 1);  // every record read exactly once
  }
}

TEST_CASE("threads taking turns: stop wakes every sleeping follower, and closing the ring does too") {
  if (!reading_turns::supported()) return;
  for (const bool by_close : {false, true}) {
    CAPTURE(by_close);
    duplex d;
    reading_turns turns(d.worker.reader);
    std::atomic<int> waiting{0};
    std::atomic<int> ended{0};
    auto follow = [&] {
      waiting.fetch_add(1);
      while (!turns.try_take()) {
        if (turns.stopping()) break;
        turns.wait();
      }
      ended.fetch_add(1);
    };
    REQUIRE(turns.try_take());  // the holder never gives it up: the others follow
    std::vector<std::thread> followers;
    for (int i = 0; i < 4; ++i) followers.emplace_back(follow);
    REQUIRE(eventually([&] { return waiting.load() == 4; }));
    if (by_close) {
      d.worker.reader.close();  // as the worker's control thread does on shutdown
      turns.stop();
    } else {
      turns.stop();
    }
    for (auto& t : followers) t.join();  // a follower left asleep hangs here (CTest's timeout fails it)
    CHECK(ended.load() == 4);
    CHECK(turns.stopping());
  }
}
