#include "isolate/detail/process/worker_session.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include "faulty.hpp"

#include "../support/failure.hpp"

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using namespace isolate::detail;
using isolate::errc;
using isolate_test::contains;
using isolate_test::failure_of;
using process_test::faulty;
namespace wire = isolate::wire;

namespace {

constexpr auto patience = 20s;

launch_spec faulty_spec() {
  launch_spec spec;
  spec.plugin = ISOLATE_TEST_FAULTY_PLUGIN;
  spec.interface_name = std::string(faulty::isolate_meta::interface_name);
  spec.fingerprint = faulty::isolate_meta::fingerprint;
  spec.options.worker = ISOLATE_TEST_WORKER;
  spec.options.ring_capacity = 1 << 16;
  return spec;
}

// A session started on its own io thread, with its death reported through a future.
struct running_session {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::thread io_thread{[this] { io.run(); }};
  std::shared_ptr<worker_session> session;
  std::promise<void> died;
  std::future<void> death = died.get_future();

  explicit running_session(const launch_spec& spec) {
    session = std::make_shared<worker_session>(spec, asio::make_strand(io));
    session->start([this](const std::shared_ptr<worker_session>&) { died.set_value(); });
  }
  ~running_session() {
    if (session->alive()) session->stop();
    session.reset();
    work.reset();
    io.stop();
    io_thread.join();
  }
};

template <class... Args>
wire::buffer call_frame(std::uint16_t method, const Args&... args) {
  wire::buffer request;
  encode_call(request, method, ISOLATE_DEFAULT_MAX_MESSAGE_SIZE, args...);
  return request;
}

template <class Result, class... Args>
Result call(worker_session& session, std::uint16_t method, const Args&... args) {
  auto request = call_frame(method, args...);
  wire::buffer reply;
  session.call(request, reply, deadline_after(patience), std::chrono::duration_cast<std::chrono::milliseconds>(patience));
  return decode_reply<Result>(reply, ISOLATE_DEFAULT_MAX_MESSAGE_SIZE);
}

// An asynchronous call's outcome, as a future.
struct future_completion final : completion {
  std::promise<std::pair<std::exception_ptr, int>> outcome;
  void complete(std::exception_ptr failure, wire::buffer& reply) noexcept override {
    int value = 0;
    if (!failure) {
      try {
        value = decode_reply<int>(reply, ISOLATE_DEFAULT_MAX_MESSAGE_SIZE);
      } catch (...) {
        failure = std::current_exception();
      }
    }
    outcome.set_value({failure, value});
  }
};

}  // namespace

TEST_CASE("a session serves synchronous calls from several threads, and asynchronous ones") {
  running_session run(faulty_spec());
  CHECK(run.session->alive());
  CHECK_FALSE(run.session->doomed());
  CHECK(run.session->pid() > 0);
  CHECK(call<int>(*run.session, 0, 2, 3) == 5);

  std::vector<std::thread> callers;
  std::atomic<int> right{0};
  for (int t = 0; t < 3; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) right += call<int>(*run.session, 0, t, i) == t + i;
    });
  }
  for (auto& c : callers) c.join();
  CHECK(right == 150);

  auto done = std::make_unique<future_completion>();
  auto outcome = done->outcome.get_future();
  run.session->call_async(call_frame(0, 40, 2), std::move(done), deadline_after(patience), 20'000ms);
  REQUIRE(outcome.wait_for(patience) == std::future_status::ready);
  const auto [failure, value] = outcome.get();
  CHECK_FALSE(failure);
  CHECK(value == 42);
}

TEST_CASE("a worker that exits unasked fails the call in flight and reports its death") {
  running_session run(faulty_spec());
  const auto e = failure_of([&] { call<void>(*run.session, 4, 3); });  // faulty::exit_now(3)
  CHECK(e.code() == errc::plugin_crashed);
  CHECK(contains(e.what(), "exited with status 3"));
  REQUIRE(run.death.wait_for(patience) == std::future_status::ready);
  CHECK_FALSE(run.session->alive());
  CHECK(run.session->death().first == errc::plugin_crashed);
  // Later calls fail the same way, at once.
  CHECK(failure_of([&] { call<int>(*run.session, 0, 1, 1); }).code() == errc::plugin_crashed);
}

TEST_CASE("kill(): the pending calls fail with the reason given, the first one given") {
  running_session run(faulty_spec());
  std::promise<isolate::error> hung;
  auto hung_failure = hung.get_future();
  std::thread caller([&] { hung.set_value(failure_of([&] { call<void>(*run.session, 5); })); });  // faulty::hang
  run.session->kill(errc::timeout, "the test gave up on it");
  run.session->kill(errc::quarantined, "a later reason");
  REQUIRE(hung_failure.wait_for(patience) == std::future_status::ready);
  caller.join();
  const auto e = hung_failure.get();
  CHECK(e.code() == errc::timeout);
  CHECK(contains(e.what(), "the test gave up on it"));
  REQUIRE(run.death.wait_for(patience) == std::future_status::ready);
  CHECK(run.session->doomed());
  CHECK(run.session->death().first == errc::timeout);
}

TEST_CASE("stop(): the worker exits when asked, and later calls fail with plugin_closed") {
  running_session run(faulty_spec());
  CHECK(call<int>(*run.session, 0, 1, 2) == 3);
  run.session->stop();
  REQUIRE(run.death.wait_for(patience) == std::future_status::ready);
  CHECK_FALSE(run.session->alive());
  CHECK(run.session->death().first == errc::plugin_closed);
  CHECK(failure_of([&] { call<int>(*run.session, 0, 1, 2); }).code() == errc::plugin_closed);
}

TEST_CASE("sync_control returns once the worker has handled what was sent before") {
  running_session run(faulty_spec());
  run.session->sync_control(deadline_after(patience));
  CHECK(run.session->alive());
}
