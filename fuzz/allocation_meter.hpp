// Counts the bytes the program asks operator new for, so that a target can
// check what decoding allocates against its documented bound. Like
// tests/support/allocation_meter.hpp, but replacing every unaligned form
// itself: under AddressSanitizer the forms left alone would be ASan's, and
// memory from ASan's nothrow new[] (libFuzzer uses it) freed by our delete[]
// is an alloc-dealloc mismatch. Include it in exactly one translation unit.
#ifndef ISOLATE_FUZZ_ALLOCATION_METER_HPP
#define ISOLATE_FUZZ_ALLOCATION_METER_HPP

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace isolate_fuzz {

inline std::atomic<std::size_t> bytes_requested{0};

inline void* counted_malloc(std::size_t size) noexcept {
  bytes_requested.fetch_add(size, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}

}  // namespace isolate_fuzz

void* operator new(std::size_t size) {
  if (void* p = isolate_fuzz::counted_malloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  if (void* p = isolate_fuzz::counted_malloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return isolate_fuzz::counted_malloc(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return isolate_fuzz::counted_malloc(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

#endif
