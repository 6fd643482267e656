// Single-producer single-consumer ring of variable-length byte records in
// shared memory, safe against a peer that scribbles over it.
//
// Layout of one ring (all offsets, never pointers):
//   control block (4 cache lines) | data area (capacity bytes, a power of two)
// A record is an 8-byte header {length: u32, tag: u32} followed by `length`
// bytes, padded to 8. A record that does not fit before the end of the data
// area is preceded by a padding record that fills the rest of the area; the
// record itself then starts at offset 0, so every record is contiguous.
//
// Indices are byte counts that only grow (wrap-around after 2^64 bytes is
// not a concern); position = index & (capacity - 1). Each side keeps its own
// index privately and only publishes it: what it reads back from shared
// memory is the peer's index, validated before use.
//
// Synchronisation: each pair of a release and an acquire (or of seq_cst
// operations and fences) carries the same SYNC POINT label at both ends:
//   "record published": the writer stores write_index (release) after the
//     record's header and bytes; the reader loads it (acquire) before reading them.
//   "record released": the reader stores read_index (release) after its last
//     read of the record; the writer loads it (acquire) before reusing the room.
//   "endpoint closed": close() sets the private closed flag; every operation,
//     and a waiter about to sleep, loads it (shm/waiter.hpp).
//   "no lost wake-up": between publishing an index and ringing the peer's
//     bell, and between announcing a sleep and looking once more (shm/waiter.hpp).
#ifndef ISOLATE_SHM_RING_HPP
#define ISOLATE_SHM_RING_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/throw_error.hpp"
#include "isolate/shm/error.hpp"
#include "isolate/shm/waiter.hpp"

#include <atomic>
#include <bit>
#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <system_error>

namespace isolate::shm {

namespace detail {

inline constexpr std::uint32_t ring_magic = 0x4752'5349;  // "ISRG"
inline constexpr std::uint32_t ring_version = 1;
inline constexpr std::uint32_t record_tag = 0x3143'4552;   // "REC1"
inline constexpr std::uint32_t padding_tag = 0x3144'4150;  // "PAD1"
inline constexpr std::size_t record_header_size = 8;

constexpr std::uint64_t align8(std::uint64_t n) noexcept { return (n + 7) & ~std::uint64_t{7}; }

constexpr std::uint64_t make_record_header(std::uint32_t length, std::uint32_t tag) noexcept {
  return (std::uint64_t{tag} << 32) | length;
}

struct ring_control {
  // Written once by format(), read once at attach: what both sides must agree on.
  alignas(ISOLATE_CACHE_LINE) std::uint32_t magic;
  std::uint32_t version;
  std::uint64_t capacity;
  std::uint32_t cache_line;

  // The producer's published index, alone on its line: the consumer polls it
  // and must not be disturbed by writes to anything else.
  alignas(ISOLATE_CACHE_LINE) std::atomic<std::uint64_t> write_index;

  // The consumer's published index, alone on its line for the same reason.
  alignas(ISOLATE_CACHE_LINE) std::atomic<std::uint64_t> read_index;

  // Futex words, written only around sleeping, so the publish path's check
  // "does the peer sleep?" reads a line that stays in its own cache.
  alignas(ISOLATE_CACHE_LINE) std::atomic<std::uint32_t> data_bell;  // consumer sleeps here
  std::atomic<std::uint32_t> space_bell;                             // producer sleeps here
};
static_assert(sizeof(ring_control) == 4 * ISOLATE_CACHE_LINE);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "ring indices must be lock-free atomics");
static_assert(std::atomic_ref<std::uint64_t>::required_alignment <= record_header_size);

inline bool aligned_to_cache_line(void const* p) noexcept {
  return reinterpret_cast<std::uintptr_t>(p) % ISOLATE_CACHE_LINE == 0;
}

inline std::uint64_t load_record_header(std::byte const* p) noexcept {
  // One atomic load: the peer may rewrite the header while we look, and we
  // must validate and use the same value (a plain read could be re-fetched).
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(const_cast<std::byte*>(p)))
      .load(std::memory_order_relaxed);
}

inline void store_record_header(std::byte* p, std::uint64_t header) noexcept {
  std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p)).store(header, std::memory_order_relaxed);
}

// What a writer and a reader share: the ring they point at, their waiting
// state, and the private closed/corrupted flags.
class ring_endpoint {
 public:
  using clock = std::chrono::steady_clock;

  std::size_t capacity() const noexcept { return capacity_; }
  // Largest record this ring accepts: half the ring, so a record always fits
  // in an empty ring even behind a padding record.
  std::size_t max_record_size() const noexcept { return capacity_ / 2 - record_header_size; }
  waiter const& wait_state() const noexcept { return waiter_; }
  bool is_closed() const noexcept { return closed_.load(std::memory_order_acquire); }  // SYNC POINT "endpoint closed"
  bool is_corrupted() const noexcept { return corrupted_; }

 protected:
  ring_endpoint() noexcept = default;
  ring_endpoint(ring_endpoint&& other) noexcept
      : control_(other.control_),
        data_(other.data_),
        capacity_(other.capacity_),
        self_(other.self_),
        peer_(other.peer_),
        waiter_(other.waiter_),
        closed_(other.closed_.load(std::memory_order_relaxed)),
        corrupted_(other.corrupted_) {
    other.control_ = nullptr;
    other.closed_.store(true, std::memory_order_relaxed);
  }
  ring_endpoint& operator=(ring_endpoint&& other) noexcept {
    control_ = other.control_;
    data_ = other.data_;
    capacity_ = other.capacity_;
    self_ = other.self_;
    peer_ = other.peer_;
    waiter_ = other.waiter_;
    closed_.store(other.closed_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    corrupted_ = other.corrupted_;
    other.control_ = nullptr;
    other.closed_.store(true, std::memory_order_relaxed);
    return *this;
  }
  ~ring_endpoint() = default;

  // Checks the control block once; afterwards only our private copies of the
  // capacity and pointers are used.
  bool attach_area(std::span<std::byte> area, std::size_t capacity, side_state& self, side_state& peer,
                   wait_policy policy, std::error_code& ec) noexcept;

  std::error_code state_error() const noexcept {
    if (closed_.load(std::memory_order_acquire)) return make_error_code(errc::closed);  // SYNC POINT "endpoint closed"
    if (corrupted_) return make_error_code(errc::corrupted);
    return {};
  }

  std::uint64_t mask() const noexcept { return capacity_ - 1; }

  ring_control* control_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint64_t capacity_ = 0;
  side_state* self_ = nullptr;
  side_state* peer_ = nullptr;
  waiter waiter_;
  std::atomic<bool> closed_{true};  // private: set by close(), never by the peer
  bool corrupted_ = false;          // sticky: the peer broke the protocol once
};

}  // namespace detail

// Sizes and formatting of one ring's memory.
struct ring {
  static constexpr std::size_t control_size = sizeof(detail::ring_control);
  static constexpr std::size_t min_capacity = 64;
  // Record lengths are 32-bit and at most half the ring.
  static constexpr std::size_t max_capacity = std::size_t{1} << 31;

  static constexpr bool valid_capacity(std::size_t capacity) noexcept {
    return capacity >= min_capacity && capacity <= max_capacity && std::has_single_bit(capacity);
  }
  static constexpr std::size_t bytes_needed(std::size_t capacity) noexcept { return control_size + capacity; }
  static constexpr std::size_t max_record_size(std::size_t capacity) noexcept {
    return capacity / 2 - detail::record_header_size;
  }

  // Makes `area` (cache-line aligned, at least bytes_needed(capacity) bytes)
  // an empty ring. Done by the side that creates the memory, before the peer
  // can see it.
  static void format(std::span<std::byte> area, std::size_t capacity, std::error_code& ec) noexcept {
    ec.clear();
    if (!valid_capacity(capacity) || area.size() < bytes_needed(capacity) ||
        !detail::aligned_to_cache_line(area.data())) {
      ec = make_error_code(errc::bad_layout);
      return;
    }
    auto* control = ::new (static_cast<void*>(area.data())) detail::ring_control{};
    control->magic = detail::ring_magic;
    control->version = detail::ring_version;
    control->capacity = capacity;
    control->cache_line = ISOLATE_CACHE_LINE;
  }
};

// The producing end of a ring: reserves room for a record, fills it in place
// and commits it, waiting (spinning, then sleeping) while the ring is full.
//
// Thread safety: one thread at a time may reserve, commit or write (the
// caller serialises them, as frame_channel does with its send lock); close()
// may be called from any thread of this process at any time, also while
// another thread waits in reserve()/write(), which it then wakes. Moving or
// destroying the writer while another thread uses it is not safe. The peer
// process is not trusted: what it publishes is validated (errc::corrupted).
class ring_writer : public detail::ring_endpoint {
 public:
  ring_writer() noexcept = default;
  ring_writer(ring_writer&&) noexcept = default;
  ring_writer& operator=(ring_writer&&) noexcept = default;

  // `self` is this process's side_state, `peer` the other side's.
  static ring_writer attach(std::span<std::byte> area, std::size_t capacity, side_state& self, side_state& peer,
                            std::error_code& ec, wait_policy policy = {}) noexcept {
    ring_writer w;
    if (!w.attach_area(area, capacity, self, peer, policy, ec)) return {};
    return w;
  }

  // A writable span of `n` bytes inside the ring, or an empty span with `ec`
  // set (would_block, too_large, closed, corrupted). Success is `!ec` (n may be 0).
  std::span<std::byte> try_reserve(std::size_t n, std::error_code& ec) noexcept {
    ec = state_error();
    if (ec) return {};
    if (n > max_record_size()) {
      ec = make_error_code(errc::too_large);
      return {};
    }
    std::uint64_t const pos = write_ & mask();
    std::uint64_t const room = capacity_ - pos;  // contiguous bytes before the end
    std::uint64_t const total = detail::record_header_size + detail::align8(n);
    std::uint64_t const pad = total > room ? room : 0;
    if (!has_room(pad + total)) {
      ec = make_error_code(corrupted_ ? errc::corrupted : errc::would_block);
      return {};
    }
    reserved_ = n;
    pad_ = pad;
    reserving_ = true;
    std::byte* record = data_ + (pad != 0 ? 0 : pos);
    return {record + detail::record_header_size, n};
  }

  // As try_reserve, waiting for room until `deadline` (timed_out).
  std::span<std::byte> reserve(std::size_t n, clock::time_point deadline, std::error_code& ec) {
    for (;;) {
      auto span = try_reserve(n, ec);
      if (ec != errc::would_block) return span;
      std::uint64_t const pos = write_ & mask();
      std::uint64_t const total = detail::record_header_size + detail::align8(n);
      std::uint64_t const need = (total > capacity_ - pos ? capacity_ - pos : 0) + total;
      switch (waiter_.wait([&] { return has_room(need) || corrupted_; }, control_->space_bell, *self_, *peer_,
                           closed_, deadline)) {
        case wait_result::ready: break;
        case wait_result::closed: ec = make_error_code(errc::closed); return {};
        case wait_result::timed_out: ec = make_error_code(errc::timed_out); return {};
      }
    }
  }

  std::span<std::byte> reserve(std::size_t n, clock::time_point deadline) {
    std::error_code ec;
    auto span = reserve(n, deadline, ec);
    if (ec) isolate::detail::throw_error(ec, "isolate::shm::ring_writer::reserve");
    return span;
  }

  // Publishes the reserved record, keeping its first `n` bytes (n <= the
  // reserved size), and wakes the reader if it sleeps.
  void commit(std::size_t n) noexcept {
    assert(reserving_ && n <= reserved_);
    if (!reserving_ || control_ == nullptr) return;
    if (n > reserved_) n = reserved_;
    reserving_ = false;
    if (pad_ != 0) {
      detail::store_record_header(data_ + (write_ & mask()),
                                  detail::make_record_header(static_cast<std::uint32_t>(pad_ - detail::record_header_size),
                                                             detail::padding_tag));
      write_ += pad_;
    }
    detail::store_record_header(data_ + (write_ & mask()),
                                detail::make_record_header(static_cast<std::uint32_t>(n), detail::record_tag));
    write_ += detail::record_header_size + detail::align8(n);
    control_->write_index.store(write_, std::memory_order_release);  // SYNC POINT "record published"
    waiter::notify(control_->data_bell, *peer_);  // SYNC POINT "no lost wake-up"
  }

  // Copies `header` then `payload` into one record. Returns whether it was
  // written; otherwise `ec` says why (would_block when the ring is full).
  bool try_write(std::span<std::byte const> header, std::span<std::byte const> payload,
                 std::error_code& ec) noexcept {
    auto span = try_reserve(header.size() + payload.size(), ec);
    if (ec) return false;
    fill(span, header, payload);
    return true;
  }

  // As try_write, waiting for room until `deadline`.
  bool write(std::span<std::byte const> header, std::span<std::byte const> payload, clock::time_point deadline,
             std::error_code& ec) {
    auto span = reserve(header.size() + payload.size(), deadline, ec);
    if (ec) return false;
    fill(span, header, payload);
    return true;
  }

  void write(std::span<std::byte const> header, std::span<std::byte const> payload, clock::time_point deadline) {
    std::error_code ec;
    if (!write(header, payload, deadline, ec)) isolate::detail::throw_error(ec, "isolate::shm::ring_writer::write");
  }

  // Makes every later operation fail with `closed` and wakes a thread blocked
  // in reserve()/write(). Callable from any thread of this process.
  void close() noexcept {
    if (control_ != nullptr) {
      waiter::interrupt(closed_, control_->space_bell);  // SYNC POINT "endpoint closed"
    } else {
      closed_.store(true, std::memory_order_release);  // SYNC POINT "endpoint closed"
    }
  }

 private:
  void fill(std::span<std::byte> span, std::span<std::byte const> header, std::span<std::byte const> payload) noexcept {
    if (!header.empty()) std::memcpy(span.data(), header.data(), header.size());
    if (!payload.empty()) std::memcpy(span.data() + header.size(), payload.data(), payload.size());
    commit(span.size());
  }

  // Whether `need` bytes are free, reloading the reader's index only when the
  // cached one says no (SPSCQueue's trick: the shared line is rarely touched).
  bool has_room(std::uint64_t need) noexcept {
    if (write_ - read_cached_ + need <= capacity_) return true;
    std::uint64_t const r = control_->read_index.load(std::memory_order_acquire);  // SYNC POINT "record released"
    // The reader can only move forward, never past what we wrote, in record steps.
    if (r < read_cached_ || r > write_ || (r & 7) != 0) {
      corrupted_ = true;
      return false;
    }
    read_cached_ = r;
    return write_ - read_cached_ + need <= capacity_;
  }

  std::uint64_t write_ = 0;        // our index: private, the shared copy is only published
  std::uint64_t read_cached_ = 0;  // the reader's index as last validated
  std::uint64_t reserved_ = 0;
  std::uint64_t pad_ = 0;
  bool reserving_ = false;
};

// The consuming end of a ring: reads the next record in place and releases
// it, waiting (spinning, then sleeping) while the ring is empty.
//
// Thread safety: one thread at a time may read and release (a record read
// stays valid for that thread until it releases it); close() may be called
// from any thread of this process at any time, also while another thread
// waits in read(), which it then wakes. Moving or destroying the reader while
// another thread uses it is not safe. The bytes of a record are in shared
// memory and the peer may still change them: parse defensively, or copy first.
class ring_reader : public detail::ring_endpoint {
 public:
  ring_reader() noexcept = default;
  ring_reader(ring_reader&&) noexcept = default;
  ring_reader& operator=(ring_reader&&) noexcept = default;

  static ring_reader attach(std::span<std::byte> area, std::size_t capacity, side_state& self, side_state& peer,
                            std::error_code& ec, wait_policy policy = {}) noexcept {
    ring_reader r;
    if (!r.attach_area(area, capacity, self, peer, policy, ec)) return {};
    return r;
  }

  // The next record, contiguous in the ring, or an empty span with `ec` set
  // (would_block, closed, corrupted). It stays valid until release(); calling
  // again before release() returns the same record. The bytes are in shared
  // memory: a hostile peer may change them while you parse, so parse
  // defensively (or copy first).
  std::span<std::byte const> try_read(std::error_code& ec) noexcept {
    ec = state_error();
    if (ec) return {};
    if (pending_ != 0) return current_;
    if (!has_data()) {
      ec = make_error_code(corrupted_ ? errc::corrupted : errc::would_block);
      return {};
    }
    std::uint64_t avail = write_cached_ - read_;  // validated: 8 <= avail <= capacity
    std::uint64_t pos = read_ & mask();
    std::uint64_t skip = 0;
    std::uint64_t header = detail::load_record_header(data_ + pos);
    if (static_cast<std::uint32_t>(header >> 32) == detail::padding_tag) {
      // Padding fills the rest of the area; a writer pads only when a record
      // follows at offset 0, and publishes both at once.
      std::uint64_t const room = capacity_ - pos;
      if (pos == 0 || static_cast<std::uint32_t>(header) != room - detail::record_header_size ||
          room + detail::record_header_size > avail) {
        return corrupt(ec);
      }
      skip = room;
      avail -= room;
      pos = 0;
      header = detail::load_record_header(data_);
    }
    if (static_cast<std::uint32_t>(header >> 32) != detail::record_tag) return corrupt(ec);
    std::uint64_t const length = static_cast<std::uint32_t>(header);
    std::uint64_t const total = detail::record_header_size + detail::align8(length);
    if (length > max_record_size() || total > avail || pos + total > capacity_) return corrupt(ec);
    pending_ = skip + total;
    current_ = {data_ + pos + detail::record_header_size, static_cast<std::size_t>(length)};
    return current_;
  }

  // As try_read, waiting until `deadline` (timed_out) for a record.
  std::span<std::byte const> read(clock::time_point deadline, std::error_code& ec) {
    for (;;) {
      auto record = try_read(ec);
      if (ec != errc::would_block) return record;
      switch (waiter_.wait([&] { return has_data() || corrupted_; }, control_->data_bell, *self_, *peer_, closed_,
                           deadline)) {
        case wait_result::ready: break;
        case wait_result::closed: ec = make_error_code(errc::closed); return {};
        case wait_result::timed_out: ec = make_error_code(errc::timed_out); return {};
      }
    }
  }

  std::span<std::byte const> read(clock::time_point deadline) {
    std::error_code ec;
    auto record = read(deadline, ec);
    if (ec) isolate::detail::throw_error(ec, "isolate::shm::ring_reader::read");
    return record;
  }

  // Consumes the record try_read()/read() returned, giving its room back to
  // the writer (and waking it if it waits for room).
  void release() noexcept {
    if (pending_ == 0 || control_ == nullptr) return;
    read_ += pending_;
    pending_ = 0;
    current_ = {};
    control_->read_index.store(read_, std::memory_order_release);  // SYNC POINT "record released"
    waiter::notify(control_->space_bell, *peer_);  // SYNC POINT "no lost wake-up"
  }

  // For threads that take turns at this reader (one reads at a time; see
  // process/reading_turns.hpp). How far the reader has consumed: the thread
  // giving up its turn notes it while the turn is still its own.
  std::uint64_t position() const noexcept { return read_; }
  // Asks the writer to ring the data bell for its next record, as a sleeping
  // reader would, without sleeping; then says whether a record past
  // `position` is already published (no ring will announce that one). Any
  // thread may call it; a peer's scribbles only cost a spurious wake-up.
  bool arm_bell(std::uint64_t position) noexcept {
    if (control_ == nullptr) return false;
    control_->data_bell.store(1, std::memory_order_relaxed);
    detail::full_fence();  // SYNC POINT "no lost wake-up": the bell before the look at the index
    return control_->write_index.load(std::memory_order_acquire) != position;
  }
  // The writer need not ring any more: a thread reads (or spins) again.
  void disarm_bell() noexcept {
    if (control_ != nullptr) control_->data_bell.store(0, std::memory_order_relaxed);
  }
  // The word the writer rings; waiting on it needs the reader alive and attached.
  std::atomic<std::uint32_t>& data_bell() noexcept { return control_->data_bell; }

  // Makes every later operation fail with `closed` and wakes a thread blocked
  // in read(). Callable from any thread of this process.
  void close() noexcept {
    if (control_ != nullptr) {
      waiter::interrupt(closed_, control_->data_bell);  // SYNC POINT "endpoint closed"
    } else {
      closed_.store(true, std::memory_order_release);  // SYNC POINT "endpoint closed"
    }
  }

 private:
  std::span<std::byte const> corrupt(std::error_code& ec) noexcept {
    corrupted_ = true;
    ec = make_error_code(errc::corrupted);
    return {};
  }

  // Whether a record is published, reloading the writer's index only when the
  // cached one is used up.
  bool has_data() noexcept {
    if (write_cached_ != read_) return true;
    std::uint64_t const w = control_->write_index.load(std::memory_order_acquire);  // SYNC POINT "record published"
    if (w == write_cached_) {
      // While we poll, keep asking for the line the next record lands in, so
      // it travels alongside the index instead of after it (~5% per round trip).
      __builtin_prefetch(data_ + (read_ & mask()));
      return false;
    }
    // The writer can only move forward, at most a ring ahead of us, in record steps.
    if (w < write_cached_ || w - read_ > capacity_ || (w & 7) != 0) {
      corrupted_ = true;
      return false;
    }
    write_cached_ = w;
    return true;
  }

  std::uint64_t read_ = 0;          // our index: private, the shared copy is only published
  std::uint64_t write_cached_ = 0;  // the writer's index as last validated
  std::uint64_t pending_ = 0;       // bytes the current record (and its padding) spans
  std::span<std::byte const> current_;
};

// Which end of a duplex a process is.
enum class duplex_side { host, worker };

// Two rings and the two sides' states in one region:
//   host side_state | worker side_state | host->worker ring | worker->host ring
struct duplex_layout {
  static constexpr std::size_t bytes_needed(std::size_t capacity) noexcept {
    return 2 * sizeof(side_state) + 2 * ring::bytes_needed(capacity);
  }

  // Formats `memory` (cache-line aligned, e.g. a region) for two rings of `capacity` bytes.
  static void format(std::span<std::byte> memory, std::size_t capacity, std::error_code& ec) noexcept {
    ec.clear();
    if (!ring::valid_capacity(capacity) || memory.size() < bytes_needed(capacity) ||
        !detail::aligned_to_cache_line(memory.data())) {
      ec = make_error_code(errc::bad_layout);
      return;
    }
    ::new (static_cast<void*>(memory.data())) side_state{};
    ::new (static_cast<void*>(memory.data() + sizeof(side_state))) side_state{};
    ring::format(ring_area(memory, capacity, 0), capacity, ec);
    if (!ec) ring::format(ring_area(memory, capacity, 1), capacity, ec);
  }

  struct endpoint {
    ring_writer writer;  // to the other side
    ring_reader reader;  // from the other side
  };

  static endpoint attach(std::span<std::byte> memory, std::size_t capacity, duplex_side side, std::error_code& ec,
                         wait_policy policy = {}) noexcept {
    ec.clear();
    if (!ring::valid_capacity(capacity) || memory.size() < bytes_needed(capacity) ||
        !detail::aligned_to_cache_line(memory.data())) {
      ec = make_error_code(errc::bad_layout);
      return {};
    }
    auto* host = std::launder(reinterpret_cast<side_state*>(memory.data()));
    auto* worker = std::launder(reinterpret_cast<side_state*>(memory.data() + sizeof(side_state)));
    bool const is_host = side == duplex_side::host;
    side_state& self = is_host ? *host : *worker;
    side_state& peer = is_host ? *worker : *host;
    endpoint e;
    e.writer = ring_writer::attach(ring_area(memory, capacity, is_host ? 0 : 1), capacity, self, peer, ec, policy);
    if (ec) return {};
    e.reader = ring_reader::attach(ring_area(memory, capacity, is_host ? 1 : 0), capacity, self, peer, ec, policy);
    if (ec) return {};
    return e;
  }

 private:
  static std::span<std::byte> ring_area(std::span<std::byte> memory, std::size_t capacity, int index) noexcept {
    return memory.subspan(2 * sizeof(side_state) + static_cast<std::size_t>(index) * ring::bytes_needed(capacity),
                          ring::bytes_needed(capacity));
  }
};

inline bool detail::ring_endpoint::attach_area(std::span<std::byte> area, std::size_t capacity, side_state& self,
                                               side_state& peer, wait_policy policy, std::error_code& ec) noexcept {
  ec.clear();
  if (!ring::valid_capacity(capacity) || area.size() < ring::bytes_needed(capacity) ||
      !aligned_to_cache_line(area.data())) {
    ec = make_error_code(errc::bad_layout);
    return false;
  }
  auto* control = std::launder(reinterpret_cast<ring_control*>(area.data()));
  // Read once, compared with what we expect; never used afterwards.
  if (control->magic != ring_magic || control->version != ring_version || control->capacity != capacity ||
      control->cache_line != ISOLATE_CACHE_LINE) {
    ec = make_error_code(errc::bad_layout);
    return false;
  }
  control_ = control;
  data_ = area.data() + ring::control_size;
  capacity_ = capacity;
  self_ = &self;
  peer_ = &peer;
  waiter_ = waiter(policy);
  closed_.store(false, std::memory_order_release);  // SYNC POINT "endpoint closed": open again
  corrupted_ = false;
  return true;
}

}  // namespace isolate::shm

#endif
