// detail/cereal.hpp keeps <iostream> out of every translation unit that
// includes isolate, and out of the way of one that includes it itself.
#include "isolate/detail/cereal.hpp"

#include <doctest/doctest.h>

#if defined(__GLIBCXX__) && defined(_GLIBCXX_IOSTREAM)
#error "detail/cereal.hpp left <iostream>'s guard defined: a later #include <iostream> would be empty"
#endif
#ifdef ISOLATE_HID_IOSTREAM
#error "detail/cereal.hpp leaked its helper macro"
#endif

#include <iostream>  // a user's own, after isolate's: whole

#include "isolate/wire/archive.hpp"

#include <sstream>

namespace {
struct point {
  int x = 0, y = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x, y);
  }
};
}  // namespace

TEST_CASE("Cereal works through it, and <iostream> included afterwards is whole") {
  isolate::wire::buffer out;
  {
    isolate::wire::output_archive archive(out);
    archive(point{3, 4});
  }
  point back;
  isolate::wire::input_archive archive(out.bytes());
  archive(back);
  CHECK(back.x == 3);
  CHECK(back.y == 4);
  std::ostringstream text;
  std::cout.flush();
  text << back.x;
  CHECK(text.str() == "3");
}
