// libstamp: a tiny date-formatting library, in two releases that share one
// soname (libstamp.so.1) and one set of symbols. 1.1 "fixed" the date format
// to ISO 8601, which breaks every user written against 1.0, and the other way round.
#ifndef STAMP_HPP
#define STAMP_HPP

#include <string>

// The release this header belongs to; the libstamp target sets it for its
// users, as a real release would carry it in its header.
#ifndef STAMP_VERSION
#error "STAMP_VERSION is set by the libstamp target you link"
#endif

// A shared library's API is exported; the plugins using it hide their own symbols.
#define STAMP_API __attribute__((visibility("default")))

namespace stamp {

// The release of the library actually loaded: "1.0" or "1.1".
STAMP_API const char* version();
// 1.0: "12/31/2024"; 1.1: "2024-12-31".
STAMP_API std::string format_date(int year, int month, int day);

}  // namespace stamp

#endif
