#include "isolate/detail/preprocessor.hpp"

#include <doctest/doctest.h>

#include <map>
#include <string_view>
#include <type_traits>

// Each helper, checked at compile time; the interface macros built on them
// are tested at every arity in tests/interface/arity_test.cpp.
static_assert(ISOLATE_DETAIL_COUNT() == 0);
static_assert(ISOLATE_DETAIL_COUNT(a) == 1);
static_assert(ISOLATE_DETAIL_COUNT(a, b, c) == 3);
static_assert(ISOLATE_DETAIL_COUNT(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
                                   24, 25, 26, 27, 28, 29, 30, 31, 32, 33) == 33);
static_assert(ISOLATE_DETAIL_IS_PAREN((int)) == 1);
static_assert(ISOLATE_DETAIL_IS_PAREN(int) == 0);
static_assert(std::is_same_v<ISOLATE_DETAIL_STRIP((std::map<int, int>)), std::map<int, int>>);
static_assert(std::is_same_v<ISOLATE_DETAIL_STRIP(int), int>);
#define ISOLATE_TEST_AB ISOLATE_DETAIL_CAT(12, 34)
static_assert(ISOLATE_TEST_AB == 1234);

namespace {

// Loops: the index and the element, with the data passed through.
#define ISOLATE_TEST_TERM(d, i, x) +(d * (i + 1) * x)
constexpr int weighted_sum = 0 ISOLATE_DETAIL_FOR_EACH_METHOD(ISOLATE_TEST_TERM, 10, 1, 2, 3);
static_assert(weighted_sum == 10 * (1 * 1 + 2 * 2 + 3 * 3));

#define ISOLATE_TEST_PARAM(d, i, x) x p##i
constexpr int sum3(ISOLATE_DETAIL_LIST_PARAMS(ISOLATE_TEST_PARAM, ~, int, long, short)) {
  return static_cast<int>(p0 + p1 + p2);
}
static_assert(sum3(1, 2, 3) == 6);

// Past the maximum the loops name what went wrong, for the interface macros' static_assert.
#define ISOLATE_DETAIL_TOO_MANY_PARAMS(d) "too many"
constexpr std::string_view too_many = ISOLATE_DETAIL_LIST_PARAMS(ISOLATE_TEST_PARAM, ~, int, int, int, int, int, int,
                                                                 int, int, int, int, int, int, int, int, int, int, int);

}  // namespace

TEST_CASE("preprocessor helpers (checked at compile time)") {
  CHECK(std::string_view(ISOLATE_DETAIL_STR(a, b)) == "a, b");
  CHECK(too_many == "too many");
}
