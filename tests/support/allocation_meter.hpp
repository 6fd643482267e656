// Counts the bytes a program asks operator new for, so that a test can check
// how much decoding a message allocates. It replaces the global operator new
// and delete: include it in exactly one translation unit of a test executable.
#ifndef ISOLATE_TESTS_SUPPORT_ALLOCATION_METER_HPP
#define ISOLATE_TESTS_SUPPORT_ALLOCATION_METER_HPP

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace isolate_test {

inline std::atomic<std::size_t> bytes_requested{0};

// The bytes asked for while `f` runs (by any thread); what `f` throws is let through.
template <class F>
std::size_t bytes_allocated_by(F&& f) {
  const std::size_t before = bytes_requested.load();
  f();
  return bytes_requested.load() - before;
}

}  // namespace isolate_test

// The array, nothrow and sized forms call these; the aligned ones are left alone.
void* operator new(std::size_t size) {
  isolate_test::bytes_requested.fetch_add(size, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// GCC takes free() after an inlined operator new for a mismatch; here it is the pair.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

#endif
