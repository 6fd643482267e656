#include "isolate/wire/archive.hpp"

#include "isolate/wire/types.hpp"

#include <doctest/doctest.h>

#include "../support/failure.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

using isolate_test::failure_of;

namespace {

struct nested {
  std::string name;
  std::vector<std::optional<int>> values;
  std::map<std::string, std::variant<int, std::string>> attributes;
  bool flag = false;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, values, attributes, flag);
  }
  bool operator==(const nested&) const = default;
};

template <class T>
isolate::wire::buffer encode(const T& value) {
  isolate::wire::buffer out;
  isolate::wire::output_archive archive(out);
  archive(value);
  return out;
}

template <class T>
T decode(std::span<const std::byte> bytes) {
  T value{};
  isolate::wire::input_archive archive(bytes);
  archive(value);
  archive.expect_end();
  return value;
}


}  // namespace

TEST_CASE("values round-trip through the wire archives") {
  const nested original{"n", {1, std::nullopt, 3}, {{"a", 1}, {"b", std::string("two")}}, true};
  const auto bytes = encode(original);
  CHECK(decode<nested>(bytes.bytes()) == original);
  CHECK(decode<std::string>(encode(std::string(10000, 'x')).bytes()) == std::string(10000, 'x'));
  CHECK(decode<double>(encode(2.5).bytes()) == 2.5);
  CHECK(decode<std::vector<std::uint8_t>>(encode(std::vector<std::uint8_t>{1, 2, 3}).bytes()) ==
        std::vector<std::uint8_t>{1, 2, 3});
}

TEST_CASE("a truncated message is a protocol error") {
  const auto bytes = encode(nested{"name", {1, 2}, {{"k", 5}}, true});
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    CHECK(failure_of([&] { decode<nested>(bytes.bytes().first(cut)); }).code() == isolate::errc::protocol_error);
  }
}

TEST_CASE("trailing bytes are a protocol error") {
  auto bytes = encode(42);
  const char extra = 1;
  bytes.append(&extra, 1);
  CHECK(failure_of([&] { decode<int>(bytes.bytes()); }).code() == isolate::errc::protocol_error);
}

TEST_CASE("a forged container size is rejected before allocating") {
  isolate::wire::buffer bytes;
  const std::uint64_t huge = std::uint64_t{1} << 60;
  bytes.append(&huge, sizeof huge);
  CHECK(failure_of([&] { decode<std::string>(bytes.bytes()); }).code() == isolate::errc::protocol_error);
  CHECK(failure_of([&] { decode<std::vector<std::string>>(bytes.bytes()); }).code() == isolate::errc::protocol_error);
}

TEST_CASE("a bool byte other than 0 or 1 is a protocol error") {
  const unsigned char two = 2;
  isolate::wire::buffer bytes;
  bytes.append(&two, 1);
  CHECK(failure_of([&] { decode<bool>(bytes.bytes()); }).code() == isolate::errc::protocol_error);
}

TEST_CASE("random garbage never decodes into undefined behaviour") {
  std::mt19937 random(1234);
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::byte> garbage(random() % 64);
    for (auto& b : garbage) b = static_cast<std::byte>(random());
    try {
      (void)decode<nested>(garbage);
    } catch (const isolate::error& e) {
      CHECK(e.code() == isolate::errc::protocol_error);
    } catch (const cereal::Exception&) {
      // Cereal's own checks (a variant index out of range); the codec maps these to protocol_error.
    }
  }
}
