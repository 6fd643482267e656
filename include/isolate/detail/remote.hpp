// The host side shared by every marshalling transport (thread, process): the
// proxy that implements the interface through a client (detail/client.hpp),
// and asynchronous calls completed through Asio.
#ifndef ISOLATE_DETAIL_REMOTE_HPP
#define ISOLATE_DETAIL_REMOTE_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/call_accounting.hpp"
#include "isolate/detail/client.hpp"
#include "isolate/detail/codec.hpp"
#include "isolate/interface.hpp"
#include "isolate/shared_buffer.hpp"
#include "isolate/detail/link.hpp"

#include <asio/associated_executor.hpp>
#include <asio/post.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/prefer.hpp>

#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace isolate::detail {

// Delivers (exception_ptr[, value]) to an Asio completion handler on the
// handler's associated executor, keeping that executor's work count up while
// the call is in flight (so io_context::run() does not return under it).
// Delivery is posted, never run inline on the transport's thread: a handler
// that makes another call to the same plugin must not block its receiver.
template <class Result, class Handler>
class handler_completion final : public completion {
 public:
  handler_completion(Handler handler, link& from)
      : handler_(std::move(handler)),
        work_(asio::prefer(asio::get_associated_executor(handler_), asio::execution::outstanding_work.tracked)),
        link_(from),
        capabilities_(from.capabilities()),
        max_message_size_(from.max_message_size()) {}

  // Keeps the call's shared_buffers alive until it is over, and says where
  // those named by the reply are found.
  void keep(const buffer_attachments& buffers, buffer_resolver* resolver) {
    attachments_ = buffers;
    resolver_ = resolver;
  }

  // Takes the cost off the reply, into `cost`, before the handler runs.
  void account(call_cost* cost) noexcept { cost_ = cost; }

  // A failed call may complete after its link is gone (a process plugin's
  // pending calls fail on the io thread while the link is destroyed): only a
  // reply to decode touches the link, and then only to report a bad one.
  void complete(std::exception_ptr failure, wire::buffer& reply) noexcept override {
    resolution_scope resolving(resolver_);
    capability_scope objects(capabilities_);
    if (cost_ != nullptr && !failure) failure = decoding_failure([&] { take_cost(reply, *cost_); });
    if constexpr (std::is_void_v<Result>) {
      if (!failure) failure = decoding_failure([&] { decode_reply<void>(reply, max_message_size_); });
      deliver(failure);
    } else {
      std::optional<Result> value;
      if (!failure) failure = decoding_failure([&] { value.emplace(decode_reply<Result>(reply, max_message_size_)); });
      deliver(failure, value ? std::move(*value) : Result{});
    }
  }

  // What decoding the reply threw, if anything; a reply that does not decode
  // is the peer's fault, and the link is told (as client::decode does).
  template <class Decode>
  std::exception_ptr decoding_failure(Decode&& decode) noexcept {
    try {
      decode();
      return nullptr;
    } catch (const error& e) {
      if (e.code() == errc::protocol_error) link_.reply_undecodable(e.what());
      return std::current_exception();
    } catch (...) {
      return std::current_exception();
    }
  }

  template <class... Values>
  void deliver(std::exception_ptr failure, Values&&... values) noexcept {
    asio::post(work_, [handler = std::move(handler_), failure,
                           ... values = std::forward<Values>(values)]() mutable {
      std::move(handler)(failure, std::move(values)...);
    });
  }

 private:
  Handler handler_;
  std::decay_t<decltype(asio::prefer(std::declval<asio::associated_executor_t<Handler>>(),
                                     asio::execution::outstanding_work.tracked))>
      work_;
  link& link_;
  capability_table* capabilities_;
  std::size_t max_message_size_;
  buffer_attachments attachments_;
  buffer_resolver* resolver_ = nullptr;
  call_cost* cost_ = nullptr;
};

// The method id of a member function pointer of Interface (they are compared,
// not hashed: a handful of comparisons, no table).
template <interface Interface, class Method>
std::uint16_t method_id(Method method) {
  using meta = typename Interface::isolate_meta;
  auto id = static_cast<std::uint16_t>(meta::method_count);
  auto check = [&]<std::size_t K>(std::integral_constant<std::size_t, K>) {
    constexpr auto candidate = std::get<K>(meta::pointers);
    if constexpr (std::is_same_v<std::remove_const_t<decltype(candidate)>, Method>) {
      if (candidate == method) id = static_cast<std::uint16_t>(K);
    }
  };
  [&]<std::size_t... K>(std::index_sequence<K...>) {
    (check(std::integral_constant<std::size_t, K>{}), ...);
  }(std::make_index_sequence<meta::method_count>{});
  return id;
}

// A connection through a link: the proxy is what plugin<I>::operator-> returns.
template <interface Interface>
class remote_connection {
 public:
  explicit remote_connection(std::unique_ptr<link> to) : link_(std::move(to)), client_(*link_), proxy_(client_) {}
  remote_connection(const remote_connection&) = delete;
  remote_connection& operator=(const remote_connection&) = delete;

  Interface* target() noexcept { return &proxy_; }
  link& transport() noexcept { return *link_; }

  // Sends method `method` with `args` and completes `handler` with the result.
  template <class Result, class Handler, class... Args>
  void async_call(std::uint16_t method, Handler&& handler, const Args&... args) {
    using completion_type = handler_completion<Result, std::decay_t<Handler>>;
    auto done = std::make_unique<completion_type>(std::forward<Handler>(handler), *link_);
    wire::buffer request;
    attachment_scope attached;
    try {
      capability_scope objects(link_->capabilities());
      encode_call(request, method, link_->max_message_size(), args...);
      done->keep(attached.buffers(), link_->shared_buffers());
      if (call_cost* const cost = std::exchange(next_call_cost, nullptr)) {
        *cost = call_cost{};
        request.data()[offsetof(wire::frame_header, kind)] = static_cast<std::byte>(wire::frame_kind::accounted_call);
        done->account(cost);
      }
    } catch (...) {
      wire::buffer none;
      done->complete(std::current_exception(), none);
      return;
    }
    link_->call_async(std::move(request), std::move(done));
  }

 private:
  std::unique_ptr<link> link_;
  client client_;
  typename Interface::isolate_meta::template proxy<client> proxy_;
};

}  // namespace isolate::detail

#endif
