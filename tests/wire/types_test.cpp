#include "isolate/wire/types.hpp"

#include <doctest/doctest.h>

#include "isolate/wire/archive.hpp"

#include <array>
#include <chrono>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace wire = isolate::wire;

namespace {

template <class T>
T round_trip(const T& value) {
  wire::buffer out;
  {
    wire::output_archive archive(out);
    archive(value);
  }
  T back{};
  wire::input_archive archive(out.bytes());
  archive(back);
  archive.expect_end();
  return back;
}

}  // namespace

TEST_CASE("standard types serialise without the user including Cereal's headers") {
  CHECK(round_trip(std::string("text")) == "text");
  CHECK(round_trip(std::vector<int>{1, 2, 3}) == std::vector<int>{1, 2, 3});
  CHECK(round_trip(std::array<double, 2>{1.5, 2.5}) == std::array<double, 2>{1.5, 2.5});
  CHECK(round_trip(std::deque<char>{'a', 'b'}) == std::deque<char>{'a', 'b'});
  CHECK(round_trip(std::list<int>{4, 5}) == std::list<int>{4, 5});
  CHECK(round_trip(std::set<std::string>{"x", "y"}) == std::set<std::string>{"x", "y"});
  CHECK(round_trip(std::map<std::string, int>{{"a", 1}}) == std::map<std::string, int>{{"a", 1}});
  CHECK(round_trip(std::unordered_map<int, std::string>{{1, "one"}}) ==
        std::unordered_map<int, std::string>{{1, "one"}});
  CHECK(round_trip(std::optional<int>{7}) == std::optional<int>{7});
  CHECK(round_trip(std::optional<int>{}) == std::nullopt);
  CHECK(round_trip(std::variant<int, std::string>{std::string("v")}) == std::variant<int, std::string>{"v"});
  CHECK(round_trip(std::pair<int, std::string>{1, "p"}) == std::pair<int, std::string>{1, "p"});
  CHECK(round_trip(std::tuple<int, bool, std::string>{1, true, "t"}) == std::tuple<int, bool, std::string>{1, true, "t"});
  CHECK(round_trip(std::chrono::milliseconds(1500)) == std::chrono::milliseconds(1500));
  const auto pointer = round_trip(std::make_unique<int>(9));
  REQUIRE(pointer);
  CHECK(*pointer == 9);
}
