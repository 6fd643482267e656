// Fuzzes the shared-memory ring (shm/ring.hpp) from the reader's side: one
// ring in ordinary memory, a ring_writer and a ring_reader attached to it,
// and a hostile peer that rewrites the indices and the data between their
// operations. The memory is allocated at exactly the ring's size, so
// AddressSanitizer sees any read past it.
//
// Input: the capacity (u8: 64 << (n % 7) bytes), then operations, each an op
// byte and its arguments: write, reserve-and-commit-part, try_read, read with
// a deadline, release, and the peer's scribbles (write index, read index,
// data bytes or a record header).
//
// Promises checked: a record the reader delivers lies inside the data area
// and is no longer than max_record_size(); every call returns (read() by its
// deadline); until the peer scribbles, the reader delivers exactly the
// records the writer wrote, in order, and neither side calls the ring
// corrupted; after a scribble, either side may refuse (corrupted) but not
// misbehave; corrupted is sticky.
#include "allocation_meter.hpp"

#include "support.hpp"

#include <isolate/shm/ring.hpp>

#include <chrono>
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>

namespace {

using namespace isolate_fuzz;
namespace shm = isolate::shm;

// Record contents derived from their sequence number, so a read can be checked.
std::byte pattern(std::uint64_t seq, std::size_t i) { return static_cast<std::byte>((seq * 131 + i * 7) & 0xff); }

struct free_memory {
  void operator()(void* p) const noexcept { std::free(p); }
};

struct written {
  std::uint64_t seq;
  std::size_t size;
};

class session {
 public:
  explicit session(std::size_t capacity)
      : capacity_(capacity),
        memory_(static_cast<std::byte*>(std::aligned_alloc(ISOLATE_CACHE_LINE, shm::ring::bytes_needed(capacity)))) {
    std::error_code ec;
    shm::ring::format(area(), capacity, ec);
    require(!ec, "ring::format refused a valid capacity: " + ec.message());
    shm::wait_policy no_spin{std::chrono::nanoseconds{0}, false};
    writer_ = shm::ring_writer::attach(area(), capacity, writer_side_, reader_side_, ec, no_spin);
    require(!ec, "ring_writer::attach failed on a fresh ring: " + ec.message());
    reader_ = shm::ring_reader::attach(area(), capacity, reader_side_, writer_side_, ec, no_spin);
    require(!ec, "ring_reader::attach failed on a fresh ring: " + ec.message());
  }

  void run(input& in) {
    for (int ops = 0; ops < 512 && !in.empty(); ++ops) {
      switch (in.take<std::uint8_t>() % 8) {
        case 0: write(in.take<std::uint16_t>()); break;
        case 1: reserve_and_commit(in.take<std::uint16_t>(), in.take<std::uint16_t>()); break;
        case 2: read(reader_.try_read(ec_), "try_read"); break;
        case 3: {
          const auto deadline = shm::ring_reader::clock::now() + std::chrono::microseconds(in.take<std::uint8_t>() % 8);
          read(reader_.read(deadline, ec_), "read");
          break;
        }
        case 4: release(); break;
        case 5: scribble_index(index_of(1), in); break;  // write_index
        case 6: scribble_index(index_of(2), in); break;  // read_index
        case 7: scribble_data(in); break;
      }
    }
  }

 private:
  std::span<std::byte> area() { return {memory_.get(), shm::ring::bytes_needed(capacity_)}; }
  std::byte* data() { return memory_.get() + shm::ring::control_size; }
  // The control block's cache lines: 1 holds write_index, 2 read_index.
  std::atomic<std::uint64_t>& index_of(int line) {
    return *reinterpret_cast<std::atomic<std::uint64_t>*>(memory_.get() + line * ISOLATE_CACHE_LINE);
  }

  void write(std::size_t n) {
    n %= capacity_;
    std::vector<std::byte> payload(n);
    for (std::size_t i = 0; i < n; ++i) payload[i] = pattern(seq_, i);
    if (writer_.try_write({}, payload, ec_)) {
      require(n <= writer_.max_record_size(), "the writer accepted a record over max_record_size()");
      sent_.push_back({seq_++, n});
    } else {
      check_writer_refusal(n);
    }
  }

  void reserve_and_commit(std::size_t n, std::size_t keep) {
    n %= capacity_;
    auto span = writer_.try_reserve(n, ec_);
    if (ec_) return check_writer_refusal(n);
    require(span.size() == n && span.data() >= data() && span.data() + n <= data() + capacity_,
            "try_reserve gave room outside the data area");
    keep %= n + 1;
    for (std::size_t i = 0; i < keep; ++i) span[i] = pattern(seq_, i);
    writer_.commit(keep);
    sent_.push_back({seq_++, keep});
  }

  void check_writer_refusal(std::size_t n) {
    if (ec_ == shm::errc::too_large) {
      require(n > writer_.max_record_size(), "the writer refused a record within max_record_size() as too large");
    } else if (ec_ == shm::errc::corrupted) {
      require(scribbled_, "the writer called an untouched ring corrupted");
    } else {
      require(ec_ == shm::errc::would_block, "the writer failed with " + ec_.message());
    }
  }

  void read(std::span<const std::byte> record, const char* how) {
    const std::string who = std::string("ring_reader::") + how;
    if (ec_) {
      if (ec_ == shm::errc::corrupted) {
        require(scribbled_, who + " called an untouched ring corrupted");
        corrupted_ = true;
      } else {
        require(ec_ == shm::errc::would_block || ec_ == shm::errc::timed_out, who + " failed with " + ec_.message());
        require(!corrupted_, who + " forgot that the ring is corrupted");
        require(scribbled_ || sent_.empty(), who + " found no record where the writer wrote one");
      }
      return;
    }
    require(!corrupted_, who + " delivered a record from a ring it called corrupted");
    require(record.data() >= data() && record.data() + record.size() <= data() + capacity_,
            who + " delivered a record outside the data area");
    require(record.size() <= reader_.max_record_size(), who + " delivered a record over max_record_size()");
    std::uint64_t sum = 0;  // reads every byte, for AddressSanitizer
    for (auto b : record) sum += static_cast<std::uint8_t>(b);
    (void)sum;
    if (scribbled_) return;
    require(!sent_.empty(), who + " delivered a record nobody wrote");
    const written& expected = sent_.front();
    require(record.size() == expected.size, who + " delivered a record of another size than was written");
    for (std::size_t i = 0; i < record.size(); ++i) {
      require(record[i] == pattern(expected.seq, i), who + " delivered other bytes than were written");
    }
    holding_ = true;
  }

  void release() {
    reader_.release();
    if (holding_ && !scribbled_) sent_.pop_front();
    holding_ = false;
  }

  // An index the peer sets: anything, or a step of whole records from where it is.
  void scribble_index(std::atomic<std::uint64_t>& index, input& in) {
    const auto how = in.take<std::uint8_t>();
    const auto value = in.take<std::uint64_t>();
    if (how % 2 == 0) {
      index.store(value, std::memory_order_relaxed);
    } else {
      index.store(index.load(std::memory_order_relaxed) + static_cast<std::int8_t>(value) * 8,
                  std::memory_order_relaxed);
    }
    scribbled_ = true;
  }

  // Bytes the peer writes into the data area: raw, or a record or padding
  // header (which a mutation would rarely hit on by chance) at a record's place.
  void scribble_data(input& in) {
    const auto how = in.take<std::uint8_t>() % 3;
    if (how == 0) {
      const std::size_t offset = in.take<std::uint16_t>() % capacity_;
      const auto bytes = in.take_bytes(std::min<std::size_t>(in.take<std::uint8_t>(), capacity_ - offset));
      std::memcpy(data() + offset, bytes.data(), bytes.size());
    } else {
      const std::size_t offset = (in.take<std::uint16_t>() * 8) % capacity_;
      const std::uint32_t tag = how == 1 ? shm::detail::record_tag : shm::detail::padding_tag;
      const std::uint64_t header = shm::detail::make_record_header(in.take<std::uint32_t>(), tag);
      std::memcpy(data() + offset, &header, sizeof header);
    }
    scribbled_ = true;
  }

  std::size_t capacity_;
  std::unique_ptr<std::byte, free_memory> memory_;
  shm::side_state writer_side_, reader_side_;
  shm::ring_writer writer_;
  shm::ring_reader reader_;
  std::error_code ec_;
  std::deque<written> sent_;  // written and not yet released
  std::uint64_t seq_ = 0;
  bool scribbled_ = false;  // the peer has broken the protocol: only safety is checked
  bool corrupted_ = false;  // the reader said so
  bool holding_ = false;    // the reader holds the oldest record
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  input in(data, size);
  session ring(std::size_t{64} << (in.take<std::uint8_t>() % 7));
  ring.run(in);
  return 0;
}
