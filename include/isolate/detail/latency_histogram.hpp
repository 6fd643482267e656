// Call latencies, for a plugin's telemetry: a histogram of durations with
// buckets 1/8 of a power of two wide (so a percentile is off by at most
// 12.5 %), from 1 ns to past an hour, each a relaxed atomic counter.
//
// Thread safety: record() and percentile() may be called from any thread
// at once; a percentile read while calls complete sees some of them.
#ifndef ISOLATE_DETAIL_LATENCY_HISTOGRAM_HPP
#define ISOLATE_DETAIL_LATENCY_HISTOGRAM_HPP

#include "isolate/detail/config.hpp"

#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>

namespace isolate::detail {

class latency_histogram {
 public:
  static constexpr unsigned sub_buckets = 8;  // per power of two
  static constexpr unsigned powers = 43;      // 2^42 ns: 73 minutes
  static constexpr unsigned bucket_count = powers * sub_buckets;

  void record(std::chrono::nanoseconds duration) noexcept {
    buckets_[index_of(duration.count() < 0 ? 0 : static_cast<std::uint64_t>(duration.count()))].fetch_add(
        1, std::memory_order_relaxed);
  }

  std::uint64_t count() const noexcept {
    std::uint64_t total = 0;
    for (const auto& b : buckets_) total += b.load(std::memory_order_relaxed);
    return total;
  }

  // The duration below which `fraction` (0..1) of the recorded ones fall
  // (the middle of its bucket); zero if none was recorded.
  std::chrono::nanoseconds percentile(double fraction) const noexcept {
    std::array<std::uint64_t, bucket_count> counts;
    std::uint64_t total = 0;
    for (unsigned i = 0; i < bucket_count; ++i) total += counts[i] = buckets_[i].load(std::memory_order_relaxed);
    if (total == 0) return std::chrono::nanoseconds::zero();
    const auto rank = static_cast<std::uint64_t>(fraction * static_cast<double>(total - 1)) + 1;
    std::uint64_t seen = 0;
    for (unsigned i = 0; i < bucket_count; ++i) {
      seen += counts[i];
      if (seen >= rank) return std::chrono::nanoseconds(middle_of(i));
    }
    return std::chrono::nanoseconds(middle_of(bucket_count - 1));
  }

  // The bucket of `ns`: below 8 ns, one per nanosecond; above, the power of
  // two and the next three bits.
  static unsigned index_of(std::uint64_t ns) noexcept {
    if (ns < sub_buckets) return static_cast<unsigned>(ns);
    const unsigned power = static_cast<unsigned>(std::bit_width(ns)) - 1;  // >= 3
    const unsigned top = static_cast<unsigned>(ns >> (power - 3)) & (sub_buckets - 1);
    const unsigned index = (power - 2) * sub_buckets + top;
    return index < bucket_count ? index : bucket_count - 1;
  }

  // The smallest duration of bucket `index`, and the middle of it.
  static std::uint64_t lowest_of(unsigned index) noexcept {
    if (index < sub_buckets) return index;
    const unsigned power = index / sub_buckets + 2;
    return (std::uint64_t{sub_buckets} + index % sub_buckets) << (power - 3);
  }
  static std::uint64_t middle_of(unsigned index) noexcept {
    if (index < sub_buckets) return index;
    const unsigned power = index / sub_buckets + 2;
    return lowest_of(index) + ((std::uint64_t{1} << (power - 3)) >> 1);
  }

 private:
  std::array<std::atomic<std::uint64_t>, bucket_count> buckets_{};
};

}  // namespace isolate::detail

#endif
