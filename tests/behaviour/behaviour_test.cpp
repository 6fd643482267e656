// Each behaviour is written once and run under every transport.
#include <isolate/isolate.hpp>

#include "behaviour.hpp"

#include "../support/failure.hpp"

#include <asio/bind_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <doctest/doctest.h>

#include <future>
#include <thread>
#include <vector>

using behaviour_test::behaviour;

namespace {

template <class Policy>
isolate::plugin<behaviour, Policy> load_behaviour() {
  if constexpr (std::is_same_v<Policy, isolate::process>) {
    return isolate::load<behaviour, Policy>(ISOLATE_BEHAVIOUR_PLUGIN_PATH);
  } else {
    return isolate::load<behaviour, Policy>(&behaviour_test::make_behaviour);
  }
}

template <class F>
isolate::errc error_code_of(F&& f) {
  try {
    f();
  } catch (const isolate::error& e) {
    REQUIRE(e.code().category() == isolate::error_category());
    return static_cast<isolate::errc>(e.code().value());
  }
  return isolate::errc{};
}

const bool registered = [] {
  isolate::register_exception<behaviour_test::plugin_failure>();
  return true;
}();

}  // namespace

#define ISOLATE_TEST_POLICIES isolate::in_process, isolate::thread, isolate::process

TEST_CASE_TEMPLATE("synchronous calls return what the plugin returns", Policy, ISOLATE_TEST_POLICIES) {
  auto p = load_behaviour<Policy>();
  CHECK(p->add(2, 3) == 5);
  CHECK(p->add(-7, 7) == 0);
  CHECK(p->greet("ada") == "hello, ada");
  CHECK(p->negate(true) == false);
  CHECK(p->negate(false) == true);
  CHECK(p->scale(1.5, 2.0f) == 3.0);
  CHECK(p->maybe(true) == std::optional<int>(7));
  CHECK(p->maybe(false) == std::nullopt);
  CHECK(p->either(false) == std::variant<int, std::string>(11));
  CHECK(p->either(true) == std::variant<int, std::string>(std::string("text")));
}

TEST_CASE_TEMPLATE("void calls run and state persists between calls", Policy, ISOLATE_TEST_POLICIES) {
  auto p = load_behaviour<Policy>();
  p->remember("one");
  p->remember("two");
  CHECK(p->remembered() == std::vector<std::string>{"one", "two"});
  CHECK(p->calls() == 3);
}

TEST_CASE_TEMPLATE("user structs, containers, optional and variant cross intact", Policy, ISOLATE_TEST_POLICIES) {
  auto p = load_behaviour<Policy>();
  behaviour_test::record in;
  in.points = {{1, 2, "a"}, {3, 4, "b"}};
  in.note = "note";
  in.tagged = behaviour_test::point{5, 6, "tag"};
  in.groups = {{"g", {1, 2, 3}}};
  const auto out = p->transform(in);
  CHECK(out.points == std::vector<behaviour_test::point>{{2, 1, "a"}, {4, 3, "b"}});
  CHECK(out.note == std::optional<std::string>("note!"));
  CHECK(out.tagged == in.tagged);
  CHECK(out.groups.at("g") == std::vector<int>{1, 2, 3});
  CHECK(out.groups.at("size") == std::vector<int>{2});
  const auto counts = p->count_words({"a", "b", "a", "c", "a"});
  CHECK(counts == std::map<std::string, int>{{"a", 3}, {"b", 1}, {"c", 1}});
  std::vector<std::uint8_t> big(1 << 20);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i * 7);
  CHECK(p->echo_bytes(big) == big);
  CHECK(p->echo_bytes({}).empty());
}

TEST_CASE_TEMPLATE("standard exceptions are rethrown as the same type and message", Policy, ISOLATE_TEST_POLICIES) {
  auto p = load_behaviour<Policy>();
  CHECK_THROWS_WITH_AS(p->throw_standard("invalid_argument"), "bad argument", std::invalid_argument);
  CHECK_THROWS_WITH_AS(p->throw_standard("out_of_range"), "out of range", std::out_of_range);
  CHECK_THROWS_WITH_AS(p->throw_standard("logic_error"), "logic", std::logic_error);
  CHECK_THROWS_WITH_AS(p->throw_standard("runtime_error"), "runtime", std::runtime_error);
  CHECK_THROWS_AS(p->throw_standard("bad_alloc"), std::bad_alloc);
  CHECK_THROWS_AS(p->throw_standard("bad_optional_access"), std::bad_optional_access);
  CHECK_THROWS_AS(p->throw_standard("bad_variant_access"), std::bad_variant_access);
  CHECK_THROWS_AS(p->throw_standard("bad_function_call"), std::bad_function_call);
  CHECK_THROWS_AS(p->throw_standard("bad_weak_ptr"), std::bad_weak_ptr);
  if constexpr (std::is_same_v<Policy, isolate::in_process>) {
    CHECK_THROWS_AS(p->throw_standard("system_error"), std::system_error);
  } else {
    // Its error category cannot cross: it arrives by name, with its message.
    const auto e = isolate_test::remote_failure_of([&] { p->throw_standard("system_error"); });
    CHECK(e.type_name() == "std::system_error");
    CHECK(isolate_test::contains(e.message(), "opening"));
  }
  CHECK(p->add(1, 1) == 2);  // the plugin is still usable after throwing
}

TEST_CASE_TEMPLATE("registered exception types arrive as themselves, others as remote_error", Policy,
                   ISOLATE_TEST_POLICIES) {
  REQUIRE(registered);
  auto p = load_behaviour<Policy>();
  CHECK_THROWS_WITH_AS(p->throw_custom("registered"), "registered failure", behaviour_test::plugin_failure);
  if constexpr (std::is_same_v<Policy, isolate::in_process>) {
    // A direct call: the exception is the plugin's own object.
    CHECK_THROWS_AS(p->throw_custom("other"), behaviour_test::unregistered_failure);
  } else {
    try {
      p->throw_custom("other");
      FAIL("nothing thrown");
    } catch (const isolate::remote_error& e) {
      CHECK(e.type_name() == "behaviour_test::unregistered_failure");
      CHECK(e.message() == "unregistered failure");
      CHECK(e.code() == isolate::errc::remote_exception);
    }
    try {
      p->throw_non_standard();
      FAIL("nothing thrown");
    } catch (const isolate::remote_error& e) {
      CHECK(e.type_name() == "unknown");
    }
  }
  if constexpr (std::is_same_v<Policy, isolate::in_process>) {
    // A direct call: the plugin's own isolate::error, code and all.
    CHECK(error_code_of([&] { p->throw_isolate_error(); }) == isolate::errc::unsupported);
  } else {
    // Across a boundary the plugin cannot choose the host's error code; its own is named in the message.
    const auto e = isolate_test::remote_failure_of([&] { p->throw_isolate_error(); });
    CHECK(isolate_test::thrown_by_peer(e, "unsupported"));
    CHECK(isolate_test::contains(e.message(), "not here"));
  }
}

TEST_CASE_TEMPLATE("async calls complete through asio::use_future", Policy, ISOLATE_TEST_POLICIES) {
  auto p = load_behaviour<Policy>();
  std::future<int> sum = p.async(&behaviour::add, 20, 22, asio::use_future);
  std::future<std::string> greeting = p.async(&behaviour::greet, "bob", asio::use_future);
  std::future<void> remembered = p.async(&behaviour::remember, std::string("x"), asio::use_future);
  CHECK(sum.get() == 42);
  CHECK(greeting.get() == "hello, bob");
  remembered.get();
  CHECK(p->remembered() == std::vector<std::string>{"x"});
  auto failing = p.async(&behaviour::throw_standard, "out_of_range", asio::use_future);
  CHECK_THROWS_WITH_AS(failing.get(), "out of range", std::out_of_range);
}

TEST_CASE_TEMPLATE("async calls complete a plain callback on its io_context", Policy, ISOLATE_TEST_POLICIES) {
  auto p = load_behaviour<Policy>();
  asio::io_context io;
  int result = 0;
  std::exception_ptr failure;
  std::thread::id ran_on;
  p.async(&behaviour::add, 1, 2,
          asio::bind_executor(io, [&](std::exception_ptr e, int r) {
            failure = e;
            result = r;
            ran_on = std::this_thread::get_id();
          }));
  bool void_done = false;
  p.async(&behaviour::remember, std::string("y"), asio::bind_executor(io, [&](std::exception_ptr e) {
            CHECK(!e);
            void_done = true;
          }));
  io.run();  // returns only once both completions ran: each call holds work on the io_context
  CHECK(!failure);
  CHECK(result == 3);
  CHECK(void_done);
  CHECK(ran_on == std::this_thread::get_id());
}

TEST_CASE_TEMPLATE("async calls work in a coroutine with use_awaitable", Policy, ISOLATE_TEST_POLICIES) {
  auto p = load_behaviour<Policy>();
  asio::io_context io;
  std::string greeting;
  bool caught = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        greeting = co_await p.async(&behaviour::greet, "coro", asio::use_awaitable);
        co_await p.async(&behaviour::remember, std::string("from coroutine"), asio::use_awaitable);
        try {
          co_await p.async(&behaviour::throw_standard, "invalid_argument", asio::use_awaitable);
        } catch (const std::invalid_argument&) {
          caught = true;
        }
      },
      asio::detached);
  io.run();
  CHECK(greeting == "hello, coro");
  CHECK(caught);
  CHECK(p->remembered() == std::vector<std::string>{"from coroutine"});
}

TEST_CASE_TEMPLATE("deferred async calls run when launched, with their own copy of the arguments", Policy,
                   ISOLATE_TEST_POLICIES) {
  auto p = load_behaviour<Policy>();
  asio::io_context io;
  auto op = [&] {
    std::string temporary = "deferred";
    return p.async(&behaviour::greet, temporary, asio::experimental::deferred);
  }();
  std::string greeting;
  std::move(op)(asio::bind_executor(io, [&](std::exception_ptr, std::string g) { greeting = std::move(g); }));
  io.run();
  CHECK(greeting == "hello, deferred");
}

TEST_CASE_TEMPLATE("many host threads may call one plugin at once", Policy, ISOLATE_TEST_POLICIES) {
  auto p = load_behaviour<Policy>();
  constexpr int threads = 4, calls = 2000;
  std::vector<std::thread> callers;
  std::atomic<int> wrong{0};
  for (int t = 0; t < threads; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < calls; ++i) {
        if (p->add(t, i) != t + i) ++wrong;
      }
    });
  }
  for (auto& c : callers) c.join();
  CHECK(wrong == 0);
}
