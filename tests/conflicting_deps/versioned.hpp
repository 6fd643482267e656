// libversioned: a tiny shared library that the tests build twice, as 1.0 and
// as 1.1. Both builds have the same soname (libversioned.so.1) and export the
// same symbols, but 1.1 changed what format() returns and added parse(): the
// kind of "compatible" release that breaks a plugin built against the other.
//
// VERSIONED_LEVEL is the edition of this header a user compiles against (set
// by the library target for whoever links it), like FOO_VERSION macros.
#ifndef ISOLATE_TESTS_CONFLICTING_DEPS_VERSIONED_HPP
#define ISOLATE_TESTS_CONFLICTING_DEPS_VERSIONED_HPP

#include <string>

#ifndef VERSIONED_LEVEL
#error "VERSIONED_LEVEL is set by the libversioned target; link isolate_test_versioned_v1 or _v2"
#endif

// Exported explicitly: the plugins are built with hidden visibility, and the
// clash under test lives in this library's default-visibility symbols.
#define VERSIONED_API __attribute__((visibility("default")))

namespace versioned {

// 1 for libversioned 1.0, 2 for 1.1: what the library loaded at run time is.
VERSIONED_API int api_level();
// 1.0: decimal ("42"); 1.1: hexadecimal ("0x2a").
VERSIONED_API std::string format(int value);

#if VERSIONED_LEVEL >= 2
// New in 1.1: reads back what format() wrote.
VERSIONED_API int parse(const std::string& text);
#endif

}  // namespace versioned

#endif
