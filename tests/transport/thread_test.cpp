// What only the thread transport promises.
#include "isolate/transport/thread.hpp"

#include "isolate/plugin.hpp"

#include <asio/use_future.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <sstream>
#include <thread>

namespace thread_test {

ISOLATE_INTERFACE(probe,
                  (std::string, where, ()),
                  (int, unsafe_increment, ()),
                  (void, block_until_released, ()),
                  (int, peak_concurrency, ()));

struct probe_impl final : probe {
  explicit probe_impl(std::promise<void>* entered = nullptr, std::shared_future<void> release = {})
      : constructed_on(std::this_thread::get_id()), entered_(entered), release_(std::move(release)) {}
  std::string where() override {
    std::ostringstream out;
    out << std::this_thread::get_id();
    return out.str();
  }
  int unsafe_increment() override {
    const int now = ++inside;
    int peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    const int seen = counter;
    std::this_thread::yield();
    counter = seen + 1;
    --inside;
    return counter;
  }
  void block_until_released() override {
    if (entered_) entered_->set_value();
    release_.wait();
  }
  int peak_concurrency() override { return peak_.load(); }

  std::thread::id constructed_on;
  std::atomic<int> inside{0};
  std::atomic<int> peak_{0};
  int counter = 0;
  std::promise<void>* entered_;
  std::shared_future<void> release_;
};

std::string id_text(std::thread::id id) {
  std::ostringstream out;
  out << id;
  return out.str();
}

}  // namespace thread_test

using thread_test::probe;

TEST_CASE("the plugin runs on its own thread, where it was also constructed") {
  std::thread::id constructed;
  auto p = isolate::load<probe, isolate::thread>([&] {
    auto impl = std::make_unique<thread_test::probe_impl>();
    constructed = impl->constructed_on;
    return impl;
  });
  const auto where = p->where();
  CHECK(where != thread_test::id_text(std::this_thread::get_id()));
  CHECK(where == thread_test::id_text(constructed));
}

TEST_CASE("calls from many threads never run concurrently in the plugin by default") {
  auto p = isolate::load<probe, isolate::thread>(std::make_unique<thread_test::probe_impl>());
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int i = 0; i < 500; ++i) p->unsafe_increment();
    });
  }
  for (auto& c : callers) c.join();
  CHECK(p->unsafe_increment() == 2001);
  CHECK(p->peak_concurrency() == 1);
}

TEST_CASE("with concurrency > 1 calls do run at the same time") {
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  isolate::thread::options options;
  options.concurrency = 2;
  auto p = isolate::load<probe, isolate::thread>(std::make_unique<thread_test::probe_impl>(&entered, released),
                                                 options);
  auto blocked = p.async(&probe::block_until_released, asio::use_future);
  entered.get_future().wait();
  // One worker is blocked inside the plugin; the other still serves calls.
  CHECK(!p->where().empty());
  release.set_value();
  blocked.get();
}

TEST_CASE("a factory that throws fails the load with load_failed and its message") {
  try {
    auto p = isolate::load<probe, isolate::thread>([]() -> std::unique_ptr<probe> { throw std::runtime_error("no config"); });
    FAIL("load succeeded");
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::load_failed);
    CHECK(std::string(e.what()).find("no config") != std::string::npos);
  }
  CHECK_THROWS_AS((isolate::load<probe, isolate::thread>([] { return std::unique_ptr<probe>(); })), isolate::error);
}

TEST_CASE("unloading fails calls that are still queued instead of hanging them") {
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::future<std::string> queued;
  std::future<void> blocked;
  {
    auto p = isolate::load<probe, isolate::thread>(std::make_unique<thread_test::probe_impl>(&entered, released));
    blocked = p.async(&probe::block_until_released, asio::use_future);
    entered.get_future().wait();
    queued = p.async(&probe::where, asio::use_future);
    release.set_value();
    // The plugin is unloaded here; `queued` may have run or may be failed, but never left pending.
  }
  blocked.get();
  try {
    CHECK(!queued.get().empty());
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::plugin_closed);
  }
}
