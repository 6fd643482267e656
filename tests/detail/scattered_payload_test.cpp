// A large synchronous call under isolate::thread is not gathered: its small
// values are, its large blocks are referenced where the caller holds them
// (detail/scattered_payload.hpp). Read piece by piece, the payload must be the
// very bytes the gathered frame would carry, and decode to the same values.
#include "isolate/detail/scattered_payload.hpp"

#include "isolate/detail/codec.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

std::vector<std::byte> read_all(isolate::detail::scattered_payload& payload, std::size_t* pieces = nullptr) {
  const auto in = payload.payload();
  std::vector<std::byte> all(in.first.begin(), in.first.end());
  std::size_t count = 1;
  for (auto piece = in.rest->next(); !piece.empty(); piece = in.rest->next(), ++count) {
    all.insert(all.end(), piece.begin(), piece.end());
  }
  in.rest->finish();
  if (pieces != nullptr) *pieces = count;
  return all;
}

}  // namespace

TEST_CASE("a scattered payload holds the gathered frame's bytes, its large blocks left in place") {
  const std::vector<std::uint8_t> big(300'000, 7);
  const std::string text(100'000, 't');
  const int small = 42;
  const std::vector<int> numbers{1, 2, 3};
  const isolate::detail::streamed_arguments<int, std::vector<std::uint8_t>, std::vector<int>, std::string> call(
      3, isolate::detail::payload_size(small, big, numbers, text), small, big, numbers, text);

  isolate::wire::buffer gathered;
  call.encode(gathered);
  isolate::detail::scattered_payload scattered(call);

  CHECK(scattered.header().method == 3);
  CHECK(scattered.header().kind == isolate::wire::frame_kind::call);
  CHECK(scattered.header().size == gathered.size() - isolate::wire::header_size);
  std::size_t pieces = 0;
  const auto all = read_all(scattered, &pieces);
  REQUIRE(all.size() == gathered.size() - isolate::wire::header_size);
  CHECK(std::memcmp(all.data(), gathered.data() + isolate::wire::header_size, all.size()) == 0);
  // int + big's size | big | numbers + text's size | text: two blocks referenced.
  CHECK(pieces == 4);

  // The blocks are the caller's own bytes, not copies.
  const auto in = scattered.payload();
  CHECK(in.rest->next().data() == reinterpret_cast<const std::byte*>(big.data()));
  in.rest->finish();

  // And the payload decodes, piece by piece, to the values sent.
  int small_out = 0;
  std::vector<std::uint8_t> big_out;
  std::vector<int> numbers_out;
  std::string text_out;
  isolate::detail::decode_values(scattered.payload(), small_out, big_out, numbers_out, text_out);
  CHECK(small_out == small);
  CHECK(big_out == big);
  CHECK(numbers_out == numbers);
  CHECK(text_out == text);
}

TEST_CASE("a payload of small values only is one gathered piece") {
  const std::string short_text = "abc";
  const int seven = 7;  // named: the call holds references to its arguments
  const isolate::detail::streamed_arguments<std::string, int> call(0, isolate::detail::payload_size(short_text, seven),
                                                                   short_text, seven);
  isolate::detail::scattered_payload scattered(call);
  std::size_t pieces = 0;
  CHECK(read_all(scattered, &pieces).size() == 8 + 3 + sizeof(int));
  CHECK(pieces == 1);
}
