// What every fuzz target shares: a reader that takes typed values off the
// front of the fuzz input, and the way a target reports a broken promise.
#ifndef ISOLATE_FUZZ_SUPPORT_HPP
#define ISOLATE_FUZZ_SUPPORT_HPP

#include "isolate/wire/archive.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>

namespace isolate_fuzz {

// A library promise the input broke: say which, and abort so that libFuzzer
// records the input as a crash (and CI fails).
[[noreturn]] inline void broken(const std::string& promise) {
  std::fprintf(stderr, "\nisolate fuzz: broken promise: %s\n", promise.c_str());
  std::abort();
}

inline void require(bool holds, const std::string& promise) {
  if (!holds) broken(promise);
}

// The fuzz input, consumed from the front. Past its end every value is zero,
// so a target never has to check lengths before taking what it needs.
class input {
 public:
  input(const std::uint8_t* data, std::size_t size) : bytes_(reinterpret_cast<const std::byte*>(data), size) {}

  template <class T>
    requires std::is_trivially_copyable_v<T>
  T take() {
    T value{};
    const std::size_t n = std::min(sizeof(T), bytes_.size());
    std::memcpy(&value, bytes_.data(), n);
    bytes_ = bytes_.subspan(n);
    return value;
  }

  // Up to `n` bytes (fewer at the end).
  std::span<const std::byte> take_bytes(std::size_t n) {
    n = std::min(n, bytes_.size());
    auto taken = bytes_.first(n);
    bytes_ = bytes_.subspan(n);
    return taken;
  }

  std::span<const std::byte> rest() { return take_bytes(bytes_.size()); }
  bool empty() const noexcept { return bytes_.empty(); }
  std::size_t size() const noexcept { return bytes_.size(); }

 private:
  std::span<const std::byte> bytes_;
};

// What a decoder allocates without charging it to the budget: the message of
// the error it throws (built by concatenation, ~2 KiB in all), hash-table
// buckets. The default slack (1 MiB) covers it; the fuzz build's slack is
// smaller (fuzz/CMakeLists.txt), so it is allowed here instead.
inline constexpr std::size_t uncharged_allowance = std::size_t{16} << 10;

// Checks the library's promise on decoding untrusted bytes: a payload of
// `payload` bytes never makes its decoder allocate more than
// wire::allocation_budget(payload) (wire/bounded_loads.hpp), give or take
// the uncharged allowance.
inline void require_within_budget(std::size_t allocated, std::size_t payload, const char* what) {
  const std::size_t bound = isolate::wire::allocation_budget(payload) + uncharged_allowance;
  if (allocated > bound) {
    broken(std::string(what) + " of a " + std::to_string(payload) + "-byte payload allocated " +
           std::to_string(allocated) + " bytes, more than its budget and allowance of " + std::to_string(bound) +
           " (wire::allocation_budget + fuzz/support.hpp's uncharged_allowance)");
  }
}

}  // namespace isolate_fuzz

#endif
