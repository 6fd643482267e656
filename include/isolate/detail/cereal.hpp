// Cereal, without the <iostream> its access.hpp includes but does not use.
//
// A translation unit that includes <iostream> (GCC's libstdc++) constructs the
// standard streams and the classic locale when its program starts, which
// touches about 0.5 MiB of libstdc++ that then stays resident: in every
// worker process and in every plugin. isolate includes Cereal only through
// this header, which hides <iostream> from it; a program that includes
// <iostream> itself, before or after, still gets it whole.
#ifndef ISOLATE_DETAIL_CEREAL_HPP
#define ISOLATE_DETAIL_CEREAL_HPP

// First, as everywhere, and here for a reason of its own: it includes a
// standard header, which defines __GLIBCXX__ for the test below.
#include "isolate/detail/config.hpp"

#if defined(__GLIBCXX__) && !defined(_GLIBCXX_IOSTREAM)
#define _GLIBCXX_IOSTREAM 1
#define ISOLATE_HID_IOSTREAM
#endif

#include <cereal/cereal.hpp>

#ifdef ISOLATE_HID_IOSTREAM
#undef _GLIBCXX_IOSTREAM
#undef ISOLATE_HID_IOSTREAM
#endif

#endif
