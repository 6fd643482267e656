#include "isolate/detail/remote.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <asio/bind_executor.hpp>
#include <asio/io_context.hpp>
#include <cereal/types/string.hpp>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
namespace detail = isolate::detail;
namespace wire = isolate::wire;

namespace remote_test {

ISOLATE_INTERFACE(speaker,
                  (std::string, say, (std::string const&)),
                  (int, twice, (int)),
                  (void, fail, ()));

struct speaker_impl final : speaker {
  std::string say(const std::string& s) override { return "said " + s; }
  int twice(int n) override { return 2 * n; }
  void fail() override { throw std::out_of_range("nothing to say"); }
};

// A link whose asynchronous calls complete later, on a thread of their own,
// as a transport's would; it can spoil its replies.
struct deferred_link final : detail::link {
  explicit deferred_link(speaker& impl) : impl_(impl) {}
  ~deferred_link() override {
    for (auto& t : threads_) t.join();
  }
  void call(wire::buffer& request, wire::buffer& reply) override {
    detail::stub<speaker>::handle(impl_, wire::parse(request.bytes(), max_message_size()), reply, max_message_size());
    if (spoil) {  // a reply with no value in it
      reply.resize(wire::header_size);
      wire::finish_frame(reply, wire::frame_kind::reply, 0, 0);
    }
  }
  void call_async(wire::buffer request, std::unique_ptr<detail::completion> done) override {
    threads_.emplace_back([this, request = std::move(request), done = std::move(done)]() mutable {
      wire::buffer reply;
      call(request, reply);
      done->complete(nullptr, reply);
    });
  }
  std::size_t max_message_size() const noexcept override { return 1 << 20; }
  void reply_undecodable(const std::string&) noexcept override { ++undecodable; }
  speaker& impl_;
  bool spoil = false;
  int undecodable = 0;
  std::vector<std::thread> threads_;
};

}  // namespace remote_test

using namespace remote_test;

TEST_CASE("method_id finds a method by its pointer") {
  CHECK(detail::method_id<speaker>(&speaker::say) == 0);
  CHECK(detail::method_id<speaker>(&speaker::twice) == 1);
  CHECK(detail::method_id<speaker>(&speaker::fail) == 2);
}

TEST_CASE("the proxy calls through the link") {
  speaker_impl impl;
  detail::remote_connection<speaker> connection(std::make_unique<deferred_link>(impl));
  CHECK(connection.target()->say("hi") == "said hi");
  CHECK(connection.target()->twice(21) == 42);
  CHECK_THROWS_AS(connection.target()->fail(), std::out_of_range);
}

TEST_CASE("an asynchronous call completes on its handler's executor, which has work until then") {
  speaker_impl impl;
  auto owned = std::make_unique<deferred_link>(impl);
  auto& link = *owned;
  detail::remote_connection<speaker> connection(std::move(owned));
  asio::io_context io;
  std::thread::id completed_on;
  int twice = 0;
  std::exception_ptr failed;
  connection.async_call<int>(1, asio::bind_executor(io, [&](std::exception_ptr failure, int value) {
                               completed_on = std::this_thread::get_id();
                               failed = failure;
                               twice = value;
                             }),
                             21);
  std::exception_ptr thrown;
  connection.async_call<void>(2, asio::bind_executor(io, [&](std::exception_ptr failure) { thrown = failure; }));
  // run() returns only when both completed: the calls keep the executor busy meanwhile.
  io.run_for(20s);
  CHECK(completed_on == std::this_thread::get_id());
  CHECK_FALSE(failed);
  CHECK(twice == 42);
  REQUIRE(thrown);
  CHECK_THROWS_AS(std::rethrow_exception(thrown), std::out_of_range);
  CHECK(link.undecodable == 0);
}

TEST_CASE("an asynchronous reply that does not decode completes with protocol_error and tells the link") {
  speaker_impl impl;
  auto owned = std::make_unique<deferred_link>(impl);
  auto& link = *owned;
  link.spoil = true;
  detail::remote_connection<speaker> connection(std::move(owned));
  asio::io_context io;
  std::exception_ptr failed;
  connection.async_call<int>(1, asio::bind_executor(io, [&](std::exception_ptr failure, int) { failed = failure; }), 1);
  io.run_for(20s);
  REQUIRE(failed);
  try {
    std::rethrow_exception(failed);
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::protocol_error);
  }
  CHECK(link.undecodable == 1);
}

TEST_CASE("arguments over the maximum complete the call with message_too_large, never sent") {
  speaker_impl impl;
  detail::remote_connection<speaker> connection(std::make_unique<deferred_link>(impl));
  asio::io_context io;
  std::exception_ptr failed;
  connection.async_call<std::string>(
      0, asio::bind_executor(io, [&](std::exception_ptr failure, std::string) { failed = failure; }),
      std::string(2 << 20, 'x'));
  io.run_for(20s);
  REQUIRE(failed);
  try {
    std::rethrow_exception(failed);
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::message_too_large);
  }
}
