// Payloads read in pieces (wire/stream.hpp): a large call is decoded straight
// from the ring, record by record, and must decode exactly as if whole, with
// the same checks against a peer that lies about sizes.
#include "isolate/wire/stream.hpp"

#include "isolate/detail/codec.hpp"
#include "isolate/wire/archive.hpp"
#include "isolate/wire/types.hpp"

#include <doctest/doctest.h>

#include "../support/failure.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

using isolate_test::failure_of;

namespace {

using isolate::wire::inbound_payload;

struct record {
  std::string name;
  std::vector<std::uint8_t> bytes;
  std::map<std::string, std::vector<int>> groups;
  std::optional<bool> flag;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, bytes, groups, flag);
  }
  bool operator==(const record&) const = default;
};

record sample() {
  record r;
  r.name = std::string(3000, 'n');
  r.bytes.resize(70'000);
  std::mt19937 random(3);
  for (auto& b : r.bytes) b = static_cast<std::uint8_t>(random());
  r.groups = {{"a", {1, 2, 3}}, {"b", std::vector<int>(5000, 7)}};
  r.flag = true;
  return r;
}

isolate::wire::buffer encode(const record& value) {
  isolate::wire::buffer out;
  isolate::wire::output_archive archive(out);
  archive(value);
  return out;
}

// Hands out `bytes` in pieces of the given sizes (the last size repeats),
// and checks that each piece is given back before the next is asked for.
class pieces final : public isolate::wire::chunk_source {
 public:
  pieces(std::span<const std::byte> bytes, std::vector<std::size_t> sizes) : bytes_(bytes), sizes_(std::move(sizes)) {}
  std::span<const std::byte> next() override {
    ++asked;
    const std::size_t size = std::min(sizes_[std::min(index_, sizes_.size() - 1)], bytes_.size() - offset_);
    ++index_;
    auto piece = bytes_.subspan(offset_, size);
    offset_ += size;
    return piece;
  }
  void finish() noexcept override { ++finished; }
  int asked = 0;
  int finished = 0;

 private:
  std::span<const std::byte> bytes_;
  std::vector<std::size_t> sizes_;
  std::size_t index_ = 0;
  std::size_t offset_ = 0;
};

record decode_in_pieces(std::span<const std::byte> first, std::size_t size, isolate::wire::chunk_source& rest) {
  record value;
  isolate::detail::decode_values(inbound_payload{first, size, &rest}, value);
  return value;
}


}  // namespace

TEST_CASE("a payload read in pieces decodes exactly as one read whole") {
  const record value = sample();
  const auto bytes = encode(value);
  const auto all = bytes.bytes();
  for (std::vector<std::size_t> sizes : {std::vector<std::size_t>{1}, {7}, {4096}, {65536}, {3, 100000, 1}}) {
    for (std::size_t first : {std::size_t{0}, std::size_t{5}, std::size_t{20000}}) {
      CAPTURE(sizes.front());
      CAPTURE(first);
      pieces rest(all.subspan(first), sizes);
      CHECK(decode_in_pieces(all.first(first), all.size(), rest) == value);
      CHECK(rest.finished == 1);  // the last piece is given back once decoding is done
    }
  }
}

TEST_CASE("counting what an archive writes gives the size it writes") {
  const record value = sample();
  CHECK(isolate::detail::payload_size(value) == encode(value).size());
  CHECK(isolate::detail::payload_size(std::string("abc"), 5, std::vector<double>(9)) ==
        8 + 3 + sizeof(int) + 8 + 9 * sizeof(double));
  CHECK(isolate::detail::payload_size(1, 2.0) == sizeof(int) + sizeof(double));
}

TEST_CASE("pieces that add up to more than the announced size are a protocol error") {
  const auto bytes = encode(sample());
  const auto all = bytes.bytes();
  pieces rest(all, {4096});
  // Announce fewer bytes than the pieces carry.
  CHECK(failure_of([&] { decode_in_pieces({}, all.size() - 100, rest); }).code() == isolate::errc::protocol_error);
}

TEST_CASE("a source that runs dry before the announced size is a protocol error") {
  const auto bytes = encode(sample());
  const auto all = bytes.bytes();
  pieces rest(all.first(all.size() / 2), {4096});
  CHECK(failure_of([&] { decode_in_pieces({}, all.size(), rest); }).code() == isolate::errc::protocol_error);
}

TEST_CASE("a forged container size is checked against the whole payload, not the piece at hand") {
  // A byte vector claiming 1000 elements where the payload has 500 bytes in all.
  isolate::wire::buffer forged;
  const std::uint64_t claimed = 1000;
  forged.append(&claimed, sizeof claimed);
  const std::vector<std::byte> filler(500);
  forged.append(filler.data(), filler.size());
  pieces lying(forged.bytes(), {16});
  std::vector<std::uint8_t> out;
  CHECK(failure_of([&] { isolate::detail::decode_values(inbound_payload{{}, forged.size(), &lying}, out); }).code() ==
        isolate::errc::protocol_error);
  // An honest claim larger than the piece at hand is fine.
  isolate::wire::buffer honest;
  {
    isolate::wire::output_archive archive(honest);
    archive(std::vector<std::uint8_t>(1000, 9));
  }
  pieces small(honest.bytes(), {16});
  isolate::detail::decode_values(inbound_payload{{}, honest.size(), &small}, out);
  CHECK(out == std::vector<std::uint8_t>(1000, 9));
}

TEST_CASE("a whole payload whose size disagrees with the announced one is a protocol error") {
  const auto bytes = encode(sample());
  record value;
  CHECK(failure_of([&] {
          isolate::detail::decode_values(inbound_payload{bytes.bytes(), bytes.size() + 1, nullptr}, value);
        }).code() == isolate::errc::protocol_error);
}

TEST_CASE("a payload read in pieces gets its allocation budget from its announced size") {
  // 200,000 empty strings: 1.6 MB on the wire, 6.4 MB in memory, more than
  // the budget's fixed slack, so the budget must come from the whole payload,
  // not from the first piece (here empty).
  const std::vector<std::string> many(200'000);
  isolate::wire::buffer honest;
  {
    isolate::wire::output_archive archive(honest);
    archive(many);
  }
  pieces rest(honest.bytes(), {4096});
  std::vector<std::string> out;
  isolate::detail::decode_values(inbound_payload{{}, honest.size(), &rest}, out);
  CHECK(out == many);

  // 64 empty optionals of a mebibyte each, two bytes apiece on the wire.
  isolate::wire::buffer hostile;
  {
    isolate::wire::output_archive archive(hostile);
    archive(cereal::make_size_tag(cereal::size_type{64}));
    for (int i = 0; i < 64; ++i) archive(std::optional<std::array<char, 1 << 20>>());
  }
  pieces lying(hostile.bytes(), {16});
  std::vector<std::optional<std::array<char, 1 << 20>>> huge;
  const auto e =
      failure_of([&] { isolate::detail::decode_values(inbound_payload{{}, hostile.size(), &lying}, huge); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK(isolate_test::contains(e.what(), "std::vector"));
}

TEST_CASE("a block of bytes that starts a piece is read from that piece, and an empty piece is a protocol error") {
  // A vector's size ends one piece, its bytes fill the next: they are read in
  // place (bounded_loads: no zeroing, then copying) from the second piece.
  const std::vector<std::uint8_t> bytes(100'000, 3);
  const std::string text(50'000, 's');
  isolate::wire::buffer whole;
  {
    isolate::wire::output_archive archive(whole);
    archive(bytes, text);
  }
  const auto all = whole.bytes();
  for (const std::size_t first : {std::size_t{8}, std::size_t{0}, std::size_t{3}}) {
    CAPTURE(first);
    pieces rest(all.subspan(first), {8 - std::min<std::size_t>(first, 8) + bytes.size(), 8, text.size()});
    std::vector<std::uint8_t> bytes_out;
    std::string text_out;
    isolate::detail::decode_values(inbound_payload{all.first(first), all.size(), &rest}, bytes_out, text_out);
    CHECK(bytes_out == bytes);
    CHECK(text_out == text);
  }
  // The same payload with an empty piece where the bytes were due.
  class with_a_gap final : public isolate::wire::chunk_source {
   public:
    explicit with_a_gap(std::span<const std::byte> rest) : rest_(rest) {}
    std::span<const std::byte> next() override {
      if (std::exchange(gap_, false)) return {};
      return std::exchange(rest_, {});
    }
    void finish() noexcept override {}

   private:
    std::span<const std::byte> rest_;
    bool gap_ = true;
  } gap(all.subspan(8));
  std::vector<std::uint8_t> bytes_out;
  std::string text_out;
  CHECK(failure_of([&] {
          isolate::detail::decode_values(inbound_payload{all.first(8), all.size(), &gap}, bytes_out, text_out);
        }).code() == isolate::errc::protocol_error);
}
