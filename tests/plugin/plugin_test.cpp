#include "isolate/plugin.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include "isolate/transport/in_process.hpp"
#include "isolate/transport/thread.hpp"

#include <asio/bind_executor.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>
#include <cereal/types/string.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace plugin_test {

ISOLATE_INTERFACE(counter,
                  (int, add, (int)),
                  (std::string, greet, (std::string const&)),
                  (void, fail, (std::string const&)));

// Thread-safe: under in_process the callers' threads run it at once.
struct counter_impl final : counter {
  int add(int n) override { return total.fetch_add(n) + n; }
  std::string greet(const std::string& who) override { return "hi " + who; }
  void fail(const std::string& why) override { throw std::invalid_argument(why); }
  std::atomic<int> total{0};
};

}  // namespace plugin_test

using plugin_test::counter;
using plugin_test::counter_impl;

TEST_CASE_TEMPLATE("calls through the handle, synchronous and asynchronous", Policy, isolate::in_process,
                   isolate::thread) {
  auto p = isolate::load<counter, Policy>(std::make_unique<counter_impl>());
  CHECK(p->add(2) == 2);
  CHECK((*p).add(3) == 5);
  CHECK(p->greet("ada") == "hi ada");
  CHECK_THROWS_WITH_AS(p->fail("bad input"), "bad input", std::invalid_argument);

  auto sum = p.async(&counter::add, 10, asio::use_future);
  CHECK(sum.get() == 15);
  auto failed = p.async(&counter::fail, std::string("async"), asio::use_future);
  CHECK_THROWS_WITH_AS(failed.get(), "async", std::invalid_argument);

  // A callback completes on its executor, posted: never inline in async().
  asio::io_context io;
  std::string greeting;
  bool completed_inline = true;
  bool in_async = true;
  p.async(&counter::greet, std::string("bob"),
          asio::bind_executor(io, [&](std::exception_ptr failure, std::string value) {
            completed_inline = in_async;
            if (!failure) greeting = std::move(value);
          }));
  in_async = false;
  io.run_for(20s);
  CHECK(greeting == "hi bob");
  CHECK_FALSE(completed_inline);
}

TEST_CASE_TEMPLATE("calls from many threads at once", Policy, isolate::in_process, isolate::thread) {
  auto p = isolate::load<counter, Policy>(std::make_unique<counter_impl>());
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int i = 0; i < 250; ++i) p->add(1);
    });
  }
  for (auto& t : callers) t.join();
  CHECK(p->add(0) == 1000);
}

TEST_CASE_TEMPLATE("a factory that fails makes load fail with load_failed", Policy, isolate::in_process,
                   isolate::thread) {
  try {
    (void)isolate::load<counter, Policy>([]() -> std::unique_ptr<counter> { throw std::runtime_error("broken"); });
    FAIL("nothing thrown");
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::load_failed);
  }
}
