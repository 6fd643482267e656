// The synchronous half of calling through a link, which both the host's
// proxies and a plugin's calls to its host use: encode the arguments, wait for
// the reply, decode it. No Asio here, so that a plugin's compile pulls in none
// (asynchronous calls are in detail/remote.hpp).
#ifndef ISOLATE_DETAIL_CLIENT_HPP
#define ISOLATE_DETAIL_CLIENT_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/call_accounting.hpp"
#include "isolate/detail/capability_table.hpp"
#include "isolate/detail/codec.hpp"
#include "isolate/detail/link.hpp"
#include "isolate/interface.hpp"
#include "isolate/shared_buffer.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>

namespace isolate::detail {

// What the generated proxy calls: encodes the arguments of method K, waits for
// the reply on the link, and returns the decoded result (or throws).
class client {
 public:
  explicit client(link& to) noexcept : link_(to), capabilities_(to.capabilities()) {}

  template <std::size_t K, class Method, class... Args>
  typename method_traits<Method>::result_type call(const Args&... args) {
    using result = typename method_traits<Method>::result_type;
    constexpr auto method = static_cast<std::uint16_t>(K);
    attachment_scope attached;  // shared_buffers among the arguments: kept alive, sent by the link
    capability_scope objects(capabilities_);  // isolate::capability values in the arguments and result
    wire::buffer reply;
    if (call_cost* const cost = next_call_cost) [[unlikely]] {
      return accounted<result>(method, *cost, args...);
    }
    if constexpr (!(is_raw_value<Args> && ...)) {
      // A large payload goes straight into the transport: measured first, never gathered.
      if (const std::size_t size = payload_size(args...); size >= wire::large_payload) {
        check_payload_size(size, link_.max_message_size());
        const streamed_arguments<Args...> request(method, size, args...);
        return exchange<result>(request, reply);
      }
    }
    wire::buffer request;
    encode_call(request, method, link_.max_message_size(), args...);
    return exchange<result>(request, reply);
  }

 private:
  // A call whose reply carries its cost (plugin::with_accounting), always
  // gathered: the streamed path's frame header is the plain call's.
  template <class Result, class... Args>
  Result accounted(std::uint16_t method, call_cost& cost, const Args&... args) {
    next_call_cost = nullptr;  // this call only, not those the plugin's answer may lead to
    cost = call_cost{};
    wire::buffer request, reply;
    encode_call(request, method, link_.max_message_size(), args...);
    request.data()[offsetof(wire::frame_header, kind)] = static_cast<std::byte>(wire::frame_kind::accounted_call);
    link_.call(request, reply);
    try {
      take_cost(reply, cost);
    } catch (const error& e) {
      link_.reply_undecodable(e.what());
      throw;
    }
    return decode<Result>(reply);
  }

  // Sends the call and returns its decoded result. A result that is not a
  // plain number may be large: the transport may then decode it where it
  // arrives (link::call_decoding), which leaves `reply` empty.
  template <class Result, class Request>
  Result exchange(Request& request, wire::buffer& reply) {
    if constexpr (std::is_void_v<Result> || is_raw_value<Result>) {
      send(request, reply);
    } else {
      decoded_in_place<Result> in_place(link_.shared_buffers());
      try {
        send(request, reply, &in_place);
      } catch (const error& e) {
        if (in_place.threw() && e.code() == errc::protocol_error) link_.reply_undecodable(e.what());
        throw;
      }
      if (in_place.value) return std::move(*in_place.value);
    }
    return decode<Result>(reply);
  }

  void send(wire::buffer& request, wire::buffer& reply, reply_decoder* decoder = nullptr) {
    decoder != nullptr ? link_.call_decoding(request, reply, *decoder) : link_.call(request, reply);
  }
  void send(const streamed_call& request, wire::buffer& reply, reply_decoder* decoder = nullptr) {
    decoder != nullptr ? link_.call_streamed_decoding(request, reply, *decoder) : link_.call_streamed(request, reply);
  }

  // A result decoded by the transport, straight from where it arrived.
  template <class Result>
  class decoded_in_place final : public reply_decoder {
   public:
    explicit decoded_in_place(buffer_resolver* buffers) noexcept : buffers_(buffers) {}
    void decode(const wire::inbound_payload& payload) override {
      resolution_scope resolving(buffers_);
      try {
        value.emplace();
        decode_values(payload, *value);
      } catch (...) {
        value.reset();
        threw_ = true;
        throw;
      }
    }
    // Whether decoding failed (rather than the call).
    bool threw() const noexcept { return threw_; }

    std::optional<Result> value;

   private:
    buffer_resolver* buffers_;
    bool threw_ = false;
  };

  // Decodes a reply; the shared_buffers it names are looked up where the
  // link says. One that does not decode is the peer's fault: the link is told.
  template <class Result>
  Result decode(const wire::buffer& reply) {
    resolution_scope resolving(link_.shared_buffers());
    try {
      return decode_reply<Result>(reply, link_.max_message_size());
    } catch (const error& e) {
      if (e.code() == errc::protocol_error) link_.reply_undecodable(e.what());
      throw;
    }
  }

  link& link_;
  capability_table* capabilities_;
};

}  // namespace isolate::detail

#endif
