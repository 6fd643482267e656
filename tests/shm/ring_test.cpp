#include "isolate/shm/ring.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include "isolate/shm/region.hpp"

#include "../support/thread_cpu_time.hpp"

#include <array>
#include <atomic>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
namespace shm = isolate::shm;
using shm::duplex_layout;
using shm::duplex_side;
using shm::errc;
using shm::ring;
using shm::ring_reader;
using shm::ring_writer;
using clock_type = std::chrono::steady_clock;
using isolate_test::thread_cpu_time;

#if defined(__SANITIZE_THREAD__)
#define ISOLATE_TEST_TSAN 1
#else
#define ISOLATE_TEST_TSAN 0
#endif

namespace {

constexpr std::size_t ring_control_size = ring::control_size;

// One duplex in a fresh region; host writes, worker reads (and back).
struct duplex_fixture {
  explicit duplex_fixture(std::size_t ring_capacity, shm::wait_policy policy = {})
      : capacity(ring_capacity),
        memory(shm::region::create(duplex_layout::bytes_needed(ring_capacity), "isolate-ring-test")) {
    std::error_code ec;
    duplex_layout::format(memory.bytes(), capacity, ec);
    REQUIRE_FALSE(ec);
    host = duplex_layout::attach(memory.bytes(), capacity, duplex_side::host, ec, policy);
    REQUIRE_FALSE(ec);
    worker = duplex_layout::attach(memory.bytes(), capacity, duplex_side::worker, ec, policy);
    REQUIRE_FALSE(ec);
  }

  // Where the host->worker ring (index 0) or the worker->host ring (1) lives.
  std::byte* ring_base(int index) const {
    return memory.data() + 2 * sizeof(shm::side_state) + static_cast<std::size_t>(index) * ring::bytes_needed(capacity);
  }
  std::atomic<std::uint64_t>& write_index(int index) const {
    return *reinterpret_cast<std::atomic<std::uint64_t>*>(ring_base(index) + ISOLATE_CACHE_LINE);
  }
  std::atomic<std::uint64_t>& read_index(int index) const {
    return *reinterpret_cast<std::atomic<std::uint64_t>*>(ring_base(index) + 2 * ISOLATE_CACHE_LINE);
  }
  std::byte* data(int index) const { return ring_base(index) + ring_control_size; }
  shm::side_state& side(duplex_side s) const {
    return *reinterpret_cast<shm::side_state*>(memory.data() + (s == duplex_side::host ? 0 : sizeof(shm::side_state)));
  }

  std::size_t capacity;
  shm::region memory;
  duplex_layout::endpoint host;
  duplex_layout::endpoint worker;
};

std::span<std::byte const> bytes_of(std::vector<std::byte> const& v) { return {v.data(), v.size()}; }

// Record contents derived from its sequence number, so the reader can check them.
std::byte pattern(std::uint64_t seq, std::size_t i) {
  return static_cast<std::byte>((seq * 131 + i * 7 + (i >> 8)) & 0xff);
}

void fill_record(std::span<std::byte> out, std::uint64_t seq) {
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = pattern(seq, i);
}

bool record_matches(std::span<std::byte const> in, std::uint64_t seq) {
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != pattern(seq, i)) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("ring sizes") {
  static_assert(ring::bytes_needed(4096) == ring::control_size + 4096);
  static_assert(ring::control_size % ISOLATE_CACHE_LINE == 0);
  static_assert(ring::valid_capacity(64) && ring::valid_capacity(1 << 20));
  static_assert(!ring::valid_capacity(0) && !ring::valid_capacity(32) && !ring::valid_capacity(1000));
  static_assert(ring::max_record_size(4096) == 2048 - 8);
  static_assert(duplex_layout::bytes_needed(4096) % ISOLATE_CACHE_LINE == 0);
  duplex_fixture f(4096);
  CHECK(f.host.writer.capacity() == 4096);
  CHECK(f.host.writer.max_record_size() == ring::max_record_size(4096));
  CHECK(f.worker.reader.max_record_size() == ring::max_record_size(4096));
}

TEST_CASE("format and attach reject a layout they do not expect") {
  auto memory = shm::region::create(duplex_layout::bytes_needed(4096), "isolate-ring-test");
  std::error_code ec;
  duplex_layout::format(memory.bytes(), 1000, ec);
  CHECK(ec == errc::bad_layout);
  duplex_layout::format(memory.bytes().first(1024), 4096, ec);
  CHECK(ec == errc::bad_layout);
  duplex_layout::format(memory.bytes().subspan(8), 1024, ec);
  CHECK(ec == errc::bad_layout);

  // Never formatted: no magic.
  auto e = duplex_layout::attach(memory.bytes(), 4096, duplex_side::host, ec);
  CHECK(ec == errc::bad_layout);
  CHECK(e.writer.is_closed());

  duplex_layout::format(memory.bytes(), 4096, ec);
  REQUIRE_FALSE(ec);
  duplex_layout::attach(memory.bytes(), 2048, duplex_side::host, ec);  // capacity mismatch
  CHECK(ec == errc::bad_layout);
  duplex_layout::attach(memory.bytes().first(4096), 4096, duplex_side::host, ec);  // too small
  CHECK(ec == errc::bad_layout);

  // A peer that rewrote the header (version) is rejected at attach.
  memory.data()[2 * sizeof(shm::side_state) + 4] = std::byte{99};
  duplex_layout::attach(memory.bytes(), 4096, duplex_side::host, ec);
  CHECK(ec == errc::bad_layout);
  duplex_layout::attach(memory.bytes(), 4096, duplex_side::worker, ec);
  CHECK(ec == errc::bad_layout);

  // A default-constructed endpoint is closed.
  ring_reader reader;
  reader.try_read(ec);
  CHECK(ec == errc::closed);
}

TEST_CASE("records go through in order, including empty and largest ones") {
  duplex_fixture f(1024);
  auto& w = f.host.writer;
  auto& r = f.worker.reader;
  std::error_code ec;

  r.try_read(ec);
  CHECK(ec == errc::would_block);

  std::vector<std::byte> header{std::byte{1}, std::byte{2}, std::byte{3}};
  std::vector<std::byte> payload(20, std::byte{9});
  CHECK(w.try_write(bytes_of(header), bytes_of(payload), ec));
  CHECK_FALSE(ec);
  CHECK(w.try_write({}, {}, ec));  // an empty record is a record
  auto rec = r.try_read(ec);
  REQUIRE_FALSE(ec);
  CHECK(rec.size() == 23);
  CHECK(rec[0] == std::byte{1});
  CHECK(rec[2] == std::byte{3});
  CHECK(rec[3] == std::byte{9});
  CHECK(rec[22] == std::byte{9});
  CHECK(r.try_read(ec).data() == rec.data());  // the same record until release()
  r.release();
  auto empty = r.try_read(ec);
  CHECK_FALSE(ec);
  CHECK(empty.empty());
  r.release();

  // The largest record fits whenever the ring is empty, even when it has to
  // wrap behind padding; two do not fit at once.
  std::vector<std::byte> largest(w.max_record_size(), std::byte{5});
  CHECK(w.try_write({}, bytes_of(largest), ec));
  CHECK_FALSE(w.try_write({}, bytes_of(largest), ec));
  CHECK(ec == errc::would_block);
  rec = r.try_read(ec);
  REQUIRE_FALSE(ec);
  CHECK(rec.size() == largest.size());
  r.release();
  CHECK(w.try_write({}, bytes_of(largest), ec));
  rec = r.try_read(ec);
  REQUIRE_FALSE(ec);
  CHECK(rec.size() == largest.size());
  CHECK(std::memcmp(rec.data(), largest.data(), largest.size()) == 0);
  r.release();
  r.release();  // nothing pending: no effect
  r.try_read(ec);
  CHECK(ec == errc::would_block);

  std::vector<std::byte> too_large(w.max_record_size() + 1);
  CHECK_FALSE(w.try_write({}, bytes_of(too_large), ec));
  CHECK(ec == errc::too_large);
  w.try_reserve(w.max_record_size() + 1, ec);
  CHECK(ec == errc::too_large);
}

TEST_CASE("reserve then commit fewer bytes than reserved") {
  duplex_fixture f(256);
  std::error_code ec;
  for (std::uint64_t seq = 0; seq < 100; ++seq) {
    auto span = f.host.writer.try_reserve(100, ec);
    REQUIRE_FALSE(ec);
    REQUIRE(span.size() == 100);
    std::size_t const used = seq % 101;
    fill_record(span.first(used), seq);
    f.host.writer.commit(used);
    auto rec = f.worker.reader.try_read(ec);
    REQUIRE_FALSE(ec);
    REQUIRE(rec.size() == used);
    CHECK(record_matches(rec, seq));
    f.worker.reader.release();
  }
}

TEST_CASE("a full ring says would_block, then takes records again once read") {
  duplex_fixture f(256);
  std::error_code ec;
  std::array<std::byte, 24> payload{};
  int written = 0;
  while (f.host.writer.try_write({}, payload, ec)) ++written;
  CHECK(ec == errc::would_block);
  CHECK(written == 256 / 32);
  f.worker.reader.try_read(ec);
  REQUIRE_FALSE(ec);
  f.worker.reader.release();
  CHECK(f.host.writer.try_write({}, payload, ec));
  CHECK_FALSE(f.host.writer.try_write({}, payload, ec));
}

TEST_CASE("wrap-around with every record size, single thread") {
  duplex_fixture f(512);
  std::error_code ec;
  std::mt19937_64 rng(7);
  std::size_t const max = f.host.writer.max_record_size();
  std::uint64_t next_read = 0;
  std::uint64_t next_write = 0;
  std::uniform_int_distribution<std::size_t> size_of(0, max);
  std::vector<std::size_t> sizes;
  while (next_read < 20000) {
    std::size_t const n = next_write % 7 == 0 ? next_write % (max + 1) : size_of(rng);
    auto span = f.host.writer.try_reserve(n, ec);
    if (!ec) {
      fill_record(span, next_write);
      f.host.writer.commit(n);
      sizes.push_back(n);
      ++next_write;
      if (rng() % 3 != 0) continue;  // sometimes let the ring fill up
    } else {
      REQUIRE(ec == errc::would_block);
    }
    auto rec = f.worker.reader.try_read(ec);
    if (ec == errc::would_block) continue;
    REQUIRE_FALSE(ec);
    REQUIRE(rec.size() == sizes[next_read]);
    REQUIRE(record_matches(rec, next_read));
    // Every record is inside the data area and 8-byte aligned after its header.
    REQUIRE(rec.data() >= f.data(0));
    REQUIRE(rec.data() + rec.size() <= f.data(0) + f.capacity);
    REQUIRE(reinterpret_cast<std::uintptr_t>(rec.data()) % 8 == 0);
    f.worker.reader.release();
    ++next_read;
  }
}

TEST_CASE("two threads stream 1e5 variable-size records with checksums") {
  duplex_fixture f(4096);
  constexpr std::uint64_t count = 100'000;
  auto const deadline = clock_type::now() + 40s;
  std::size_t const max = f.host.writer.max_record_size();

  std::thread producer([&] {
    std::mt19937_64 rng(1);
    std::error_code ec;
    for (std::uint64_t seq = 0; seq < count; ++seq) {
      std::size_t const n = seq % 1000 == 0 ? max : static_cast<std::size_t>(rng() % (max + 1));
      auto span = f.host.writer.reserve(n, deadline, ec);
      if (ec) return;
      fill_record(span, seq);
      f.host.writer.commit(n);
    }
  });

  std::mt19937_64 rng(1);
  std::error_code ec;
  std::uint64_t seq = 0;
  for (; seq < count; ++seq) {
    std::size_t const n = seq % 1000 == 0 ? max : static_cast<std::size_t>(rng() % (max + 1));
    auto rec = f.worker.reader.read(deadline, ec);
    if (ec) break;
    if (rec.size() != n || !record_matches(rec, seq)) break;
    f.worker.reader.release();
  }
  CHECK_FALSE(ec);
  CHECK(seq == count);
  f.host.writer.close();  // unblock the producer if the reader gave up
  producer.join();
}

TEST_CASE("a blocked writer times out at its deadline") {
  duplex_fixture f(256);
  std::error_code ec;
  std::array<std::byte, 100> payload{};
  while (f.host.writer.try_write({}, payload, ec)) {
  }
  auto const start = clock_type::now();
  CHECK_FALSE(f.host.writer.write({}, payload, start + 50ms, ec));
  CHECK(ec == errc::timed_out);
  CHECK(clock_type::now() - start >= 50ms);
  CHECK_THROWS_AS(f.host.writer.write({}, payload, clock_type::now() + 1ms), std::system_error);
}

TEST_CASE("a blocked writer resumes when the reader makes room") {
  duplex_fixture f(256);
  std::error_code ec;
  std::array<std::byte, 100> payload{};
  int written = 0;
  while (f.host.writer.try_write({}, payload, ec)) ++written;
  CHECK(written == 2);
  std::thread reader([&] {
    // Once the writer sleeps for room, free one record: release() must wake it.
    while (f.side(duplex_side::host).sleeping.load() != 1) std::this_thread::yield();
    std::error_code rec_ec;
    f.worker.reader.try_read(rec_ec);
    f.worker.reader.release();
  });
  CHECK(f.host.writer.write({}, payload, clock_type::now() + 10s, ec));
  CHECK_FALSE(ec);
  reader.join();
}

TEST_CASE("a reader times out at its deadline") {
  duplex_fixture f(256);
  std::error_code ec;
  auto const start = clock_type::now();
  auto rec = f.worker.reader.read(start + 50ms, ec);
  CHECK(ec == errc::timed_out);
  CHECK(rec.empty());
  CHECK(clock_type::now() - start >= 50ms);
  CHECK_THROWS_AS(f.worker.reader.read(clock_type::now() + 1ms), std::system_error);
}

TEST_CASE("close wakes a reader sleeping in the futex") {
  duplex_fixture f(256);
  std::error_code ec;
  std::thread sleeper([&] { f.worker.reader.read(clock_type::time_point::max(), ec); });
  // The reader spins its budget, then sleeps.
  while (f.side(duplex_side::worker).sleeping.load() != 1) std::this_thread::yield();
  auto const start = clock_type::now();
  f.worker.reader.close();
  sleeper.join();
  CHECK(clock_type::now() - start < 1s);
  CHECK(ec == errc::closed);
  f.worker.reader.try_read(ec);
  CHECK(ec == errc::closed);
  CHECK(f.worker.reader.is_closed());
}

TEST_CASE("close wakes a writer sleeping on a full ring") {
  duplex_fixture f(256);
  std::error_code ec;
  std::array<std::byte, 100> payload{};
  while (f.host.writer.try_write({}, payload, ec)) {
  }
  std::thread sleeper([&] { f.host.writer.write({}, payload, clock_type::time_point::max(), ec); });
  while (f.side(duplex_side::host).sleeping.load() != 1) std::this_thread::yield();
  f.host.writer.close();
  sleeper.join();
  CHECK(ec == errc::closed);
}

TEST_CASE("an idle reader sleeps in the futex and burns no CPU") {
  duplex_fixture f(4096);
  std::error_code ec;
  // The writer's side looks awake on another CPU: the reader spins its budget first.
  f.side(duplex_side::host).cpu.store(shm::side_state::unknown_cpu - 1);
  auto const cpu_before = thread_cpu_time();
  auto const start = clock_type::now();
  f.worker.reader.read(start + 200ms, ec);
  auto const cpu_used = thread_cpu_time() - cpu_before;
  CHECK(ec == errc::timed_out);
  CHECK(clock_type::now() - start >= 200ms);
  MESSAGE("CPU used by an idle reader over 200 ms: " << cpu_used.count() << " ns");
  CHECK(cpu_used < 5ms);
}

TEST_CASE("ping-pong with a forked process through both rings") {
  constexpr std::size_t capacity = 4096;
  auto memory = shm::region::create(duplex_layout::bytes_needed(capacity), "isolate-ring-test");
  std::error_code ec;
  duplex_layout::format(memory.bytes(), capacity, ec);
  REQUIRE_FALSE(ec);
  constexpr std::uint64_t rounds = 20000;

  // Forked before this process starts any thread.
  std::fflush(nullptr);  // the child must not print our buffered output again
  pid_t const child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // Worker: its own mapping of the memfd, as after fd passing.
    std::error_code cec;
    auto mine = shm::region::attach(memory.fd(), memory.size(), cec);
    if (cec) ::_exit(10);
    auto end = duplex_layout::attach(mine.bytes(), capacity, duplex_side::worker, cec);
    if (cec) ::_exit(11);
    auto const deadline = clock_type::now() + 30s;
    for (std::uint64_t i = 0; i < rounds; ++i) {
      auto rec = end.reader.read(deadline, cec);
      if (cec || rec.size() != sizeof(std::uint64_t)) ::_exit(12);
      std::uint64_t value = 0;
      std::memcpy(&value, rec.data(), sizeof value);
      end.reader.release();
      value += 1;
      auto out = end.writer.reserve(sizeof value, deadline, cec);
      if (cec) ::_exit(13);
      std::memcpy(out.data(), &value, sizeof value);
      end.writer.commit(sizeof value);
    }
    ::_exit(0);
  }

  auto host = duplex_layout::attach(memory.bytes(), capacity, duplex_side::host, ec);
  REQUIRE_FALSE(ec);
  auto const deadline = clock_type::now() + 30s;
  std::uint64_t value = 0;
  std::uint64_t i = 0;
  for (; i < rounds; ++i) {
    std::span<std::byte const> out{reinterpret_cast<std::byte const*>(&value), sizeof value};
    if (!host.writer.write({}, out, deadline, ec)) break;
    auto rec = host.reader.read(deadline, ec);
    if (ec || rec.size() != sizeof value) break;
    std::uint64_t answer = 0;
    std::memcpy(&answer, rec.data(), sizeof answer);
    host.reader.release();
    if (answer != value + 1) break;
    value = answer + 1;
  }
  CHECK_FALSE(ec);
  CHECK(i == rounds);
  CHECK(value == 2 * rounds);
  if (i != rounds) ::kill(child, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

// ---- A peer that breaks the protocol -------------------------------------

TEST_CASE("a reader rejects published write indices that cannot be right") {
  duplex_fixture f(256);
  std::error_code ec;
  std::array<std::byte, 8> payload{};
  REQUIRE(f.host.writer.try_write({}, payload, ec));
  auto& wi = f.write_index(0);

  SUBCASE("more than a ring ahead") { wi.store(256 + 8); }
  SUBCASE("misaligned") { wi.store(20); }
  SUBCASE("moved backwards") {
    f.worker.reader.try_read(ec);
    REQUIRE_FALSE(ec);
    f.worker.reader.release();  // reader cached 16
    wi.store(8);
  }
  SUBCASE("huge") { wi.store(~std::uint64_t{0} - 7); }
  f.worker.reader.try_read(ec);
  if (!ec) {
    f.worker.reader.release();
    f.worker.reader.try_read(ec);
  }
  CHECK(ec == errc::corrupted);
  CHECK(f.worker.reader.is_corrupted());
  // Sticky, and a blocking read reports it too instead of waiting.
  f.worker.reader.read(clock_type::now() + 10s, ec);
  CHECK(ec == errc::corrupted);
}

TEST_CASE("a reader rejects bogus record headers") {
  duplex_fixture f(256);
  std::error_code ec;
  std::array<std::byte, 8> payload{};
  REQUIRE(f.host.writer.try_write({}, payload, ec));
  auto* header = f.data(0);
  auto set_header = [&](std::uint32_t length, std::uint32_t tag) {
    std::memcpy(header, &length, 4);
    std::memcpy(header + 4, &tag, 4);
  };
  std::uint32_t const rec_tag = 0x3143'4552;
  std::uint32_t const pad_tag = 0x3144'4150;

  SUBCASE("length beyond what was published") { set_header(9, rec_tag); }
  SUBCASE("length beyond the ring") { set_header(0xffff'fff0, rec_tag); }
  SUBCASE("length beyond the largest record") { set_header(200, rec_tag); }
  SUBCASE("unknown tag") { set_header(8, 0xdead'beef); }
  SUBCASE("padding at the start of the area") { set_header(256 - 8, pad_tag); }
  CHECK(f.worker.reader.try_read(ec).empty());
  CHECK(ec == errc::corrupted);
}

TEST_CASE("a reader rejects bad padding records") {
  duplex_fixture f(256);
  std::error_code ec;
  std::array<std::byte, 88> payload{};
  // Two 96-byte records leave 64 bytes before the end; the third record wraps.
  for (int i = 0; i < 2; ++i) {
    REQUIRE(f.host.writer.try_write({}, payload, ec));
    f.worker.reader.try_read(ec);
    REQUIRE_FALSE(ec);
    f.worker.reader.release();
  }
  REQUIRE(f.host.writer.try_write({}, payload, ec));
  std::byte* pad = f.data(0) + 192;
  std::uint32_t length = 0;
  std::uint32_t tag = 0;
  std::memcpy(&length, pad, 4);
  std::memcpy(&tag, pad + 4, 4);
  REQUIRE(tag == 0x3144'4150);
  REQUIRE(length == 64 - 8);

  SUBCASE("padding length that does not reach the end") {
    length = 8;
    std::memcpy(pad, &length, 4);
  }
  SUBCASE("padding followed by padding") {
    std::memcpy(f.data(0), pad, 8);
  }
  SUBCASE("padding published without its record") { f.write_index(0).store(192 + 64); }
  CHECK(f.worker.reader.try_read(ec).empty());
  CHECK(ec == errc::corrupted);
}

TEST_CASE("a writer rejects published read indices that cannot be right") {
  duplex_fixture f(256);
  std::error_code ec;
  std::array<std::byte, 24> payload{};
  for (int i = 0; i < 4; ++i) REQUIRE(f.host.writer.try_write({}, payload, ec));
  auto& ri = f.read_index(0);

  SUBCASE("ahead of what was written") { ri.store(4096); }
  SUBCASE("misaligned") { ri.store(4); }
  SUBCASE("moved backwards") {
    // Fill the ring so the writer reloads the index, then move it back.
    while (f.host.writer.try_write({}, payload, ec)) {
    }
    ri.store(64);
    REQUIRE(f.host.writer.try_write({}, payload, ec));  // writer now caches 64
    ri.store(32);
  }
  // Fill until the writer must reload the reader's index.
  for (int i = 0; i < 16 && f.host.writer.try_write({}, payload, ec); ++i) {
  }
  CHECK(ec == errc::corrupted);
  CHECK(f.host.writer.is_corrupted());
  f.host.writer.write({}, payload, clock_type::now() + 10s, ec);
  CHECK(ec == errc::corrupted);
}

TEST_CASE("random garbage in the ring yields records in bounds or an error, never a crash") {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 2000; ++round) {
    duplex_fixture f(256);
    std::error_code ec;
    std::vector<std::byte> payload(rng() % 120);
    for (int i = 0; i < 3; ++i) f.host.writer.try_write({}, bytes_of(payload), ec);
    // Scribble over the control block and the data.
    int const hits = 1 + static_cast<int>(rng() % 16);
    for (int h = 0; h < hits; ++h) {
      std::size_t const offset = rng() % (ring_control_size + 256);
      std::size_t const len = 1 + rng() % 16;
      for (std::size_t i = 0; i < len && offset + i < ring_control_size + 256; ++i) {
        if (offset + i < 64) continue;  // the header is checked at attach only
        f.ring_base(0)[offset + i] = static_cast<std::byte>(rng());
      }
    }
    if (rng() % 2) f.write_index(0).store(rng() % 4096);
    for (int i = 0; i < 64; ++i) {
      auto rec = f.worker.reader.try_read(ec);
      if (ec) {
        REQUIRE((ec == errc::would_block || ec == errc::corrupted));
        break;
      }
      REQUIRE(rec.data() >= f.data(0));
      REQUIRE(rec.data() + rec.size() <= f.data(0) + 256);
      f.worker.reader.release();
    }
    for (int i = 0; i < 64; ++i) {
      if (!f.host.writer.try_write({}, bytes_of(payload), ec)) {
        REQUIRE((ec == errc::would_block || ec == errc::corrupted));
        break;
      }
    }
  }
}

#if !ISOLATE_TEST_TSAN
// A racing scribbler is a data race by design (that is what a hostile peer
// does); TSan would rightly flag it, so this runs under ASan/UBSan only.
TEST_CASE("a peer scribbling while we read and write never makes us crash or hang") {
  duplex_fixture f(1024);
  std::atomic<bool> stop{false};
  std::thread scribbler([&] {
    std::mt19937_64 rng(3);
    auto* base = f.ring_base(0) + 64;  // everything after the attach-time header
    std::size_t const span = ring_control_size - 64 + f.capacity;
    while (!stop.load(std::memory_order_relaxed)) {
      std::size_t const offset = rng() % span;
      auto const value = static_cast<std::byte>(rng());
      if (rng() % 4 == 0) {
        // A whole index or header word at once: likelier to look plausible.
        std::size_t const aligned = offset & ~std::size_t{7};
        std::uint64_t const word = rng() % 2 ? rng() % 2048 : rng();
        std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(base + aligned))
            .store(word, std::memory_order_relaxed);
      } else {
        std::atomic_ref<std::byte>(base[offset]).store(value, std::memory_order_relaxed);
      }
    }
  });

  auto const until = clock_type::now() + 1s;
  std::vector<std::byte> payload(100, std::byte{1});
  int corrupted = 0;
  int records = 0;
  while (clock_type::now() < until) {
    std::error_code ec;
    auto& w = f.host.writer;
    auto& r = f.worker.reader;
    w.try_write({}, bytes_of(payload), ec);
    auto rec = r.read(clock_type::now() + 1ms, ec);
    if (!ec) {
      REQUIRE(rec.data() >= f.data(0));
      REQUIRE(rec.data() + rec.size() <= f.data(0) + f.capacity);
      std::size_t sum = 0;
      for (auto b : rec) sum += static_cast<std::size_t>(b);
      (void)sum;
      r.release();
      ++records;
    } else {
      REQUIRE((ec == errc::timed_out || ec == errc::corrupted));
    }
    if (r.is_corrupted() || w.is_corrupted()) {
      ++corrupted;
      // Start over on the same (still scribbled) memory, as after a reconnect.
      std::error_code fec;
      f.host = duplex_layout::attach(f.memory.bytes(), f.capacity, duplex_side::host, fec);
      f.worker = duplex_layout::attach(f.memory.bytes(), f.capacity, duplex_side::worker, fec);
      if (fec) {
        duplex_layout::format(f.memory.bytes(), f.capacity, fec);
        REQUIRE_FALSE(fec);
        f.host = duplex_layout::attach(f.memory.bytes(), f.capacity, duplex_side::host, fec);
        f.worker = duplex_layout::attach(f.memory.bytes(), f.capacity, duplex_side::worker, fec);
      }
    }
  }
  stop.store(true);
  scribbler.join();
  MESSAGE("records read: " << records << ", corruptions detected: " << corrupted);
  CHECK(corrupted > 0);
}
#endif
