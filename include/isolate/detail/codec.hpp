// Encoding a call and decoding its reply (caller side), and running a call on
// an implementation (receiver side). Shared by every marshalling transport.
#ifndef ISOLATE_DETAIL_CODEC_HPP
#define ISOLATE_DETAIL_CODEC_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/call_accounting.hpp"
#include "isolate/error.hpp"
#include "isolate/interface.hpp"
#include "isolate/detail/link.hpp"
#include "isolate/wire/archive.hpp"
#include "isolate/wire/exception_codec.hpp"
#include "isolate/wire/frame.hpp"

#include <algorithm>
#include <array>
#include <exception>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace isolate::detail {

inline void check_payload_size(std::size_t size, std::size_t max_payload) {
  if (size > max_payload) {
    throw error(errc::message_too_large, "message of " + std::to_string(size) +
                                             " bytes exceeds the maximum message size of " +
                                             std::to_string(max_payload) + " bytes");
  }
}

inline void check_size(const wire::buffer& frame, std::size_t max_payload) {
  check_payload_size(frame.size() - wire::header_size, max_payload);
}

// Cereal reports some malformed input with its own exception; from a peer that is a protocol error.
template <class F>
decltype(auto) decoding(F&& decode) {
  try {
    return std::forward<F>(decode)();
  } catch (const cereal::Exception& e) {
    throw error(errc::protocol_error, std::string("malformed message: ") + e.what());
  }
}

// Numbers travel as their bytes, exactly as Cereal's binary archive writes
// them; for calls whose values are all numbers the archive is skipped, since
// setting one up costs more than the call's own work. (bool is left to the
// archive, which checks its byte.)
template <class T>
inline constexpr bool is_raw_value = std::is_arithmetic_v<T> && !std::is_same_v<T, bool>;

template <class... Values>
void encode_values(wire::buffer& out, const Values&... values) {
  if constexpr (sizeof...(Values) == 0) {
    return;
  } else if constexpr ((is_raw_value<Values> && ...)) {
    (out.append(&values, sizeof(Values)), ...);
  } else {
    wire::output_archive archive(out);
    archive(values...);
  }
}

// Decodes `values` from `payload`, which must hold exactly them.
template <class... Values>
void decode_values(std::span<const std::byte> payload, Values&... values) {
  if constexpr ((is_raw_value<Values> && ...)) {
    constexpr std::size_t size = (sizeof(Values) + ... + 0);
    if (payload.size() != size) {
      throw error(errc::protocol_error, "message of " + std::to_string(payload.size()) + " bytes where " +
                                            std::to_string(size) + " were expected");
    }
    std::size_t offset = 0;
    ((std::memcpy(&values, payload.data() + offset, sizeof(Values)), offset += sizeof(Values)), ...);
  } else {
    decoding([&] {
      wire::input_archive archive(payload);
      (archive(values), ...);
      archive.expect_end();
    });
  }
}

// As above, for a payload that may arrive in pieces. The last piece is given
// back once the values are read, before anything else reads the channel.
template <class... Values>
void decode_values(const wire::inbound_payload& payload, Values&... values) {
  if (payload.rest == nullptr) {
    if (payload.first.size() != payload.size) {
      throw error(errc::protocol_error, "message of " + std::to_string(payload.first.size()) + " bytes where " +
                                            std::to_string(payload.size) + " were announced");
    }
    return decode_values(payload.first, values...);
  }
  decoding([&] {
    wire::input_archive archive(payload);
    (archive(values), ...);
    archive.expect_end();
  });
  payload.rest->finish();
}

// The bytes encode_values() would write, found without copying any.
template <class... Values>
std::size_t payload_size(const Values&... values) {
  if constexpr ((is_raw_value<Values> && ...)) {
    return (sizeof(Values) + ... + 0);
  } else {
    wire::counting_sink counter;
    wire::output_archive archive(counter);
    archive(values...);
    return counter.bytes();
  }
}

// A call whose arguments the transport writes straight into its channel.
template <class... Args>
class streamed_arguments final : public streamed_call {
 public:
  streamed_arguments(std::uint16_t method, std::size_t size, const Args&... args)
      : streamed_call(method, size), args_(args...) {}
  void write_payload(wire::output_archive& archive) const override {
    std::apply([&](const auto&... values) { archive(values...); }, args_);
  }

 private:
  std::tuple<const Args&...> args_;
};

template <class... Args>
void encode_call(wire::buffer& out, std::uint16_t method, std::size_t max_payload, const Args&... args) {
  wire::begin_frame(out);
  encode_values(out, args...);
  check_size(out, max_payload);
  wire::finish_frame(out, wire::frame_kind::call, method, 0);
}

// Returns the value in a reply frame, or throws what the plugin threw.
template <class Result>
Result decode_reply(const wire::buffer& reply, std::size_t max_payload) {
  const wire::frame_view frame = wire::parse(reply.bytes(), max_payload);
  if (frame.header.kind == wire::frame_kind::error) {
    decoding([&] { wire::rethrow_encoded(frame.payload); });
  }
  if (frame.header.kind != wire::frame_kind::reply) {
    throw error(errc::protocol_error, "expected a reply frame, got kind " +
                                          std::to_string(static_cast<unsigned>(frame.header.kind)));
  }
  if constexpr (std::is_void_v<Result>) {
    decode_values(frame.payload);
  } else {
    Result value{};
    decode_values(frame.payload, value);
    return value;
  }
}

// Results whose serialisation cannot fail part-way (a count, then raw
// numbers or characters), so that they may be written straight into the
// channel: a frame once begun cannot be taken back.
template <class T>
inline constexpr bool streams_safely = false;
template <class T, class A>
inline constexpr bool streams_safely<std::vector<T, A>> = std::is_arithmetic_v<T> && !std::is_same_v<T, bool>;
template <class C, class Traits, class A>
inline constexpr bool streams_safely<std::basic_string<C, Traits, A>> = true;

// The receiving side of an interface: decodes a call, runs it on the
// implementation and encodes what it returned or threw. Dispatch is a table
// of functions indexed by method id, built at compile time.
template <interface Interface>
class stub {
  using meta = typename Interface::isolate_meta;

 public:
  // Writes the reply (or error) frame for `call` into `reply`; never throws:
  // a bad method id or undecodable arguments become a protocol_error reply,
  // and set `*malformed` when given (the caller may stop trusting the sender).
  // With `stream`, a large result of a plain call that streams_safely is sent
  // straight into the channel, and `reply` is left empty.
  static void handle(Interface& impl, const wire::frame_view& call, wire::buffer& reply, std::size_t max_payload,
                     bool* malformed = nullptr, wire::reply_stream* stream = nullptr) {
    handle(impl, call.header, wire::inbound_payload{call.payload, call.payload.size(), nullptr}, reply, max_payload,
           malformed, stream);
  }

  // As above, for a call whose payload may still be arriving (wire/stream.hpp).
  static void handle(Interface& impl, const wire::frame_header& header, const wire::inbound_payload& payload,
                     wire::buffer& reply, std::size_t max_payload, bool* malformed = nullptr,
                     wire::reply_stream* stream = nullptr) {
    if (header.kind == wire::frame_kind::accounted_call) [[unlikely]] {
      const cost_meter meter;  // its cost follows the reply: always gathered
      run(impl, header, payload, {reply, nullptr, max_payload - std::min(max_payload, sizeof(cost_trailer))}, malformed);
      append_cost(reply, meter.finish());
      return;
    }
    run(impl, header, payload, {reply, header.kind == wire::frame_kind::call ? stream : nullptr, max_payload},
        malformed);
  }

  static void encode_failure(wire::buffer& reply, std::exception_ptr failure, std::uint16_t method,
                             std::uint64_t call_id, std::uint8_t service) {
    wire::begin_frame(reply);
    wire::encode_exception(reply, failure);
    wire::finish_frame(reply, wire::frame_kind::error, method, call_id, service);
  }

 private:
  // Where the answer to one call goes.
  struct answer {
    wire::buffer& reply;
    wire::reply_stream* stream;  // null: gathered into `reply`
    std::size_t max_payload;
  };

  static void run(Interface& impl, const wire::frame_header& header, const wire::inbound_payload& payload,
                  answer to, bool* malformed) {
    const auto method = header.method;
    try {
      if (method >= meta::method_count) {
        if (malformed != nullptr) *malformed = true;
        throw error(errc::protocol_error, "unknown method id " + std::to_string(method) + " for interface " +
                                              std::string(meta::interface_name));
      }
      table()[method](impl, header, payload, to, malformed);
      if (to.reply.size() == 0) return;  // streamed
      check_size(to.reply, to.max_payload);
      wire::finish_frame(to.reply, wire::frame_kind::reply, method, header.call_id, header.service);
    } catch (...) {
      encode_failure(to.reply, std::current_exception(), method, header.call_id, header.service);
    }
  }

  // Sends `result` straight into the channel when it is large enough to be
  // worth it and small enough to be allowed; false: gather it.
  template <class Result>
  static bool stream_result(const wire::frame_header& call, const Result& result, answer to) {
    if (to.stream == nullptr) return false;
    const std::size_t size = payload_size(result);
    if (size < wire::large_payload || size > to.max_payload) return false;
    const wire::frame_header header{static_cast<std::uint32_t>(size), wire::frame_kind::reply, call.service,
                                    call.method, call.call_id};
    to.reply.clear();
    to.stream->send(
        header, [](wire::output_archive& archive, const void* value) { archive(*static_cast<const Result*>(value)); },
        &result);
    return true;
  }

  using entry = void (*)(Interface&, const wire::frame_header&, const wire::inbound_payload&, answer, bool* malformed);

  static constexpr auto table() {
    return []<std::size_t... K>(std::index_sequence<K...>) {
      return std::array<entry, sizeof...(K)>{&invoke<K>...};
    }(std::make_index_sequence<meta::method_count>{});
  }

  template <std::size_t K>
  static void invoke(Interface& impl, const wire::frame_header& header, const wire::inbound_payload& payload, answer to,
                     bool* malformed) {
    constexpr auto pointer = std::get<K>(meta::pointers);
    using traits = method_traits<std::remove_const_t<decltype(pointer)>>;
    using params = typename traits::params;
    typename traits::values args;
    try {
      std::apply([&](auto&... values) { decode_values(payload, values...); }, args);
    } catch (...) {
      if (malformed != nullptr) *malformed = true;
      throw;
    }
    wire::begin_frame(to.reply);
    auto run = [&]<std::size_t... I>(std::index_sequence<I...>) -> decltype(auto) {
      return (impl.*pointer)(static_cast<std::tuple_element_t<I, params>&&>(std::get<I>(args))...);
    };
    constexpr auto indices = std::make_index_sequence<std::tuple_size_v<params>>{};
    if constexpr (std::is_void_v<typename traits::result_type>) {
      run(indices);
    } else {
      const auto& result = run(indices);
      using result_type = std::remove_cvref_t<decltype(result)>;
      if constexpr (streams_safely<result_type>) {
        if (stream_result(header, result, to)) return;
      }
      encode_values(to.reply, result);
    }
  }
};

}  // namespace isolate::detail

#endif
