// Large message buffers fault their pages in as they are first written: a
// fresh 64 MiB buffer is 16,384 faults of 4 KiB, which cost several times the
// copy that fills it (benchmarks/README.md, "Large payloads"). Asking for
// transparent huge pages on such a buffer before it is written makes that 32
// faults of 2 MiB. Only the buffer's own, whole 2 MiB stretches are advised,
// so no neighbouring allocation changes; where THP is off ("never"), or the
// kernel has no huge page to give, nothing changes but the cost of a syscall.
#ifndef ISOLATE_DETAIL_HUGE_PAGES_HPP
#define ISOLATE_DETAIL_HUGE_PAGES_HPP

#include "isolate/detail/config.hpp"

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>

// Fresh buffers of at least this many bytes ask for huge pages; 0 never.
#ifndef ISOLATE_HUGE_PAGE_THRESHOLD
#define ISOLATE_HUGE_PAGE_THRESHOLD (std::size_t{4} << 20)
#endif

namespace isolate::detail {

inline void prefer_huge_pages(void* data, std::size_t size) noexcept {
  constexpr std::uintptr_t huge_page = std::uintptr_t{2} << 20;
  if (ISOLATE_HUGE_PAGE_THRESHOLD == 0 || size < ISOLATE_HUGE_PAGE_THRESHOLD) return;
  const auto begin = (reinterpret_cast<std::uintptr_t>(data) + huge_page - 1) & ~(huge_page - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(data) + size) & ~(huge_page - 1);
  // Advice only: a kernel without THP refuses it (EINVAL), and that is fine.
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

}  // namespace isolate::detail

#endif
