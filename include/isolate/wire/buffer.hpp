// A growable byte buffer for one message. Small messages live inline (no heap
// allocation on the common call path); growth never zero-fills, since every
// byte is about to be overwritten by the archive.
#ifndef ISOLATE_WIRE_BUFFER_HPP
#define ISOLATE_WIRE_BUFFER_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/huge_pages.hpp"

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <utility>

namespace isolate::wire {

class buffer {
 public:
  static constexpr std::size_t inline_capacity = 256;

  buffer() noexcept = default;
  buffer(buffer&& other) noexcept { *this = std::move(other); }
  buffer& operator=(buffer&& other) noexcept {
    if (this != &other) {
      heap_ = std::move(other.heap_);
      capacity_ = std::exchange(other.capacity_, inline_capacity);
      size_ = std::exchange(other.size_, 0);
      if (!heap_) std::memcpy(inline_, other.inline_, size_);
    }
    return *this;
  }
  buffer(const buffer&) = delete;
  buffer& operator=(const buffer&) = delete;

  std::byte* data() noexcept { return heap_ ? heap_.get() : inline_; }
  const std::byte* data() const noexcept { return heap_ ? heap_.get() : inline_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  std::span<const std::byte> bytes() const noexcept { return {data(), size_}; }

  void clear() noexcept { size_ = 0; }
  // Sets the size; new bytes are left uninitialised.
  void resize(std::size_t n) {
    reserve(n);
    size_ = n;
  }
  void reserve(std::size_t n) {
    if (n <= capacity_) return;
    std::size_t grown = capacity_ * 2 > n ? capacity_ * 2 : n;
    auto fresh = std::make_unique_for_overwrite<std::byte[]>(grown);
    detail::prefer_huge_pages(fresh.get(), grown);
    std::memcpy(fresh.get(), data(), size_);
    heap_ = std::move(fresh);
    capacity_ = grown;
  }
  void append(const void* bytes, std::size_t n) {
    if (n == 0) return;
    reserve(size_ + n);
    std::memcpy(data() + size_, bytes, n);
    size_ += n;
  }
  void assign(std::span<const std::byte> bytes) {
    clear();
    append(bytes.data(), bytes.size());
  }

 private:
  std::unique_ptr<std::byte[]> heap_;
  std::size_t capacity_ = inline_capacity;
  std::size_t size_ = 0;
  alignas(16) std::byte inline_[inline_capacity];
};

}  // namespace isolate::wire

#endif
