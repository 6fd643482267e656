#include "isolate/wire/buffer.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <utility>

using isolate::wire::buffer;

namespace {
std::string text_of(const buffer& b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }
}  // namespace

TEST_CASE("a small message stays inline; a large one moves to the heap, keeping its bytes") {
  buffer b;
  CHECK(b.size() == 0);
  CHECK(b.capacity() == buffer::inline_capacity);
  b.append("hello", 5);
  CHECK(text_of(b) == "hello");
  CHECK(b.capacity() == buffer::inline_capacity);

  const std::string more(buffer::inline_capacity, 'x');
  b.append(more.data(), more.size());
  CHECK(b.capacity() >= 5 + more.size());
  CHECK(text_of(b) == "hello" + more);

  const auto capacity = b.capacity();
  b.clear();
  CHECK(b.size() == 0);
  CHECK(b.capacity() == capacity);  // clear keeps the memory
  b.append(nullptr, 0);             // nothing to append is fine
  CHECK(b.size() == 0);
}

TEST_CASE("growth at least doubles, so appending byte by byte is amortised") {
  buffer b;
  std::size_t reallocations = 0;
  auto capacity = b.capacity();
  for (int i = 0; i < 100'000; ++i) {
    const char c = static_cast<char>(i);
    b.append(&c, 1);
    if (b.capacity() != capacity) {
      CHECK(b.capacity() >= 2 * capacity);
      capacity = b.capacity();
      ++reallocations;
    }
  }
  CHECK(reallocations < 20);
  CHECK(b.size() == 100'000);
  CHECK(b.data()[99'999] == static_cast<std::byte>(99'999 & 0xff));
}

TEST_CASE("resize and assign") {
  buffer b;
  b.resize(10);
  CHECK(b.size() == 10);
  std::memset(b.data(), 'a', 10);
  const std::string text = "replaced";
  b.assign(std::as_bytes(std::span(text.data(), text.size())));
  CHECK(text_of(b) == text);
  b.resize(3);
  CHECK(text_of(b) == "rep");
}

TEST_CASE("moving takes the bytes, inline or on the heap, and leaves an empty buffer") {
  for (const std::size_t size : {std::size_t{10}, std::size_t{10'000}}) {
    CAPTURE(size);
    buffer from;
    const std::string text(size, 'm');
    from.append(text.data(), text.size());
    const std::byte* heap = size > buffer::inline_capacity ? from.data() : nullptr;
    buffer to(std::move(from));
    CHECK(text_of(to) == text);
    if (heap != nullptr) CHECK(to.data() == heap);  // the heap block itself moved
    CHECK(from.size() == 0);
    CHECK(from.capacity() == buffer::inline_capacity);
    buffer again;
    again = std::move(to);
    CHECK(text_of(again) == text);
    again = std::move(again);  // self-move keeps it
    CHECK(text_of(again) == text);
  }
}
