#include "isolate/detail/link.hpp"

#include <doctest/doctest.h>

#include "isolate/wire/archive.hpp"
#include "isolate/wire/frame.hpp"

#include <cereal/types/string.hpp>

#include <memory>
#include <string>

namespace detail = isolate::detail;
namespace wire = isolate::wire;

namespace {

// A streamed call carrying one string.
struct string_call final : detail::streamed_call {
  string_call(std::uint16_t method, std::string text)
      : detail::streamed_call(method, measure(text)), text_(std::move(text)) {}
  void write_payload(wire::output_archive& archive) const override { archive(text_); }
  static std::size_t measure(const std::string& text) {
    wire::counting_sink counter;
    wire::output_archive archive(counter);
    archive(text);
    return counter.bytes();
  }
  std::string text_;
};

// A link that only records the frames its call() gets.
struct recording_link final : detail::link {
  void call(wire::buffer& request, wire::buffer& reply) override {
    last.assign(request.bytes());
    wire::begin_frame(reply);
    wire::finish_frame(reply, wire::frame_kind::reply, 0, 0);
  }
  void call_async(wire::buffer, std::unique_ptr<detail::completion>) override {}
  std::size_t max_message_size() const noexcept override { return 1 << 20; }
  wire::buffer last;
};

}  // namespace

TEST_CASE("a streamed call gathers into a call frame of exactly its announced size") {
  const string_call call(5, std::string(1000, 's'));
  wire::buffer frame;
  call.encode(frame);
  const auto parsed = wire::parse(frame.bytes(), 1 << 20);
  CHECK(parsed.header.kind == wire::frame_kind::call);
  CHECK(parsed.header.method == 5);
  CHECK(parsed.header.call_id == 0);
  CHECK(parsed.payload.size() == call.payload_size());
  std::string back;
  wire::input_archive archive(parsed.payload);
  archive(back);
  CHECK(back == call.text_);
}

TEST_CASE("by default a link sends a streamed call gathered, and trusts what it is told") {
  recording_link link;
  const string_call call(2, "gathered");
  wire::buffer reply;
  link.call_streamed(call, reply);
  wire::buffer expected;
  call.encode(expected);
  CHECK(link.last.size() == expected.size());
  CHECK(link.shared_buffers() == nullptr);
  link.reply_undecodable("ignored by default");
  CHECK_FALSE(detail::next_call_timeout.has_value());
}
