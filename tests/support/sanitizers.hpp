// Which sanitizer this test was built with, for the few checks whose
// figures a sanitizer changes (shadow memory, quarantine of freed memory).
#ifndef ISOLATE_TESTS_SUPPORT_SANITIZERS_HPP
#define ISOLATE_TESTS_SUPPORT_SANITIZERS_HPP

namespace isolate_test {

#if defined(__SANITIZE_THREAD__)
inline constexpr bool under_tsan = true;
#else
inline constexpr bool under_tsan = false;
#endif

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool under_asan = true;
#else
inline constexpr bool under_asan = false;
#endif

}  // namespace isolate_test

#endif
