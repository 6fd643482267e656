// A link that hands each call frame straight to the stub, in the calling
// thread: the whole encode -> dispatch -> decode path with no transport, for
// tests of the interface and wire layers.
#ifndef ISOLATE_TESTS_SUPPORT_LOOPBACK_HPP
#define ISOLATE_TESTS_SUPPORT_LOOPBACK_HPP

#include "isolate/detail/codec.hpp"
#include "isolate/detail/remote.hpp"

#include <memory>

namespace isolate_test {

template <isolate::interface Interface>
class loopback {
  struct direct_link final : isolate::detail::link {
    explicit direct_link(Interface& impl) : impl_(impl) {}
    void call(isolate::wire::buffer& request, isolate::wire::buffer& reply) override {
      const auto frame = isolate::wire::parse(request.bytes(), max_message_size());
      isolate::detail::stub<Interface>::handle(impl_, frame, reply, max_message_size());
    }
    void call_async(isolate::wire::buffer request, std::unique_ptr<isolate::detail::completion> done) override {
      isolate::wire::buffer reply;
      call(request, reply);
      done->complete(nullptr, reply);
    }
    std::size_t max_message_size() const noexcept override { return 1 << 20; }
    Interface& impl_;
  };

 public:
  explicit loopback(std::unique_ptr<Interface> impl)
      : impl_(std::move(impl)), connection_(std::make_unique<direct_link>(*impl_)) {}
  Interface* operator->() noexcept { return connection_.target(); }

 private:
  std::unique_ptr<Interface> impl_;
  isolate::detail::remote_connection<Interface> connection_;
};

}  // namespace isolate_test

#endif
