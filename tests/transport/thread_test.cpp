// What only the thread transport promises.
#include "isolate/transport/thread.hpp"

#include "isolate/plugin.hpp"

#include <asio/use_future.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <future>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace thread_test {

ISOLATE_INTERFACE(probe,
                  (std::string, where, ()),
                  (int, unsafe_increment, ()),
                  (void, block_until_released, ()),
                  (int, peak_concurrency, ()),
                  (int, echo, (int)),
                  (std::string, echo_text, (const std::string&)),
                  (void, refuse, (const std::string&)));

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
  int echo(int value) override { return value; }
  std::string echo_text(const std::string& text) override { return text; }
  void refuse(const std::string& why) override { throw std::invalid_argument(why); }

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

// `callers` threads each make `calls` synchronous calls whose answers tell
// them apart; returns how many answers were not the caller's own.
template <class Plugin>
int wrong_answers(Plugin& p, int callers, int calls) {
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < calls; ++i) {
        const int mine = t * 1'000'000 + i;
        if (p->echo(mine) != mine) ++wrong;
        // Every few calls, frames too big for the mailbox's lines (and, for the
        // reply, for a buffer's inline bytes) take the pointer path.
        if (i % 16 == 0) {
          const std::string text(static_cast<std::size_t>(i % 512), static_cast<char>('a' + t % 26));
          if (p->echo_text(text) != text) ++wrong;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return wrong.load();
}

// Keeps the thread busy (not asleep) for about `how_long`.
void busy_for(std::chrono::nanoseconds how_long) {
  const auto until = std::chrono::steady_clock::now() + how_long;
  while (std::chrono::steady_clock::now() < until) {
  }
}

double process_cpu_seconds() {
  timespec now{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

// What block_until_released() waits on, and how a test knows it got there.
struct gate {
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();

  isolate::plugin<probe, isolate::thread> load(const isolate::thread::options& options = {}) {
    return isolate::load<probe, isolate::thread>(std::make_unique<probe_impl>(&entered, released), options);
  }
};

}  // namespace thread_test

using thread_test::gate;
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
  gate g;
  isolate::thread::options options;
  options.concurrency = 2;
  auto p = g.load(options);
  auto blocked = p.async(&probe::block_until_released, asio::use_future);
  g.entered.get_future().wait();
  // One worker is blocked inside the plugin; the other still serves calls.
  CHECK(!p->where().empty());
  g.release.set_value();
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
  gate g;
  std::future<std::string> queued;
  std::future<void> blocked;
  {
    auto p = g.load();
    blocked = p.async(&probe::block_until_released, asio::use_future);
    g.entered.get_future().wait();
    queued = p.async(&probe::where, asio::use_future);
    g.release.set_value();
    // The plugin is unloaded here; `queued` may have run or may be failed, but never left pending.
  }
  blocked.get();
  try {
    CHECK(!queued.get().empty());
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::plugin_closed);
  }
}

TEST_CASE("racing callers each get their own answer, through the mailbox or the queue") {
  for (const std::size_t concurrency : {std::size_t{1}, std::size_t{4}}) {
    CAPTURE(concurrency);
    isolate::thread::options options;
    options.concurrency = concurrency;
    auto p = isolate::load<probe, isolate::thread>(std::make_unique<thread_test::probe_impl>(), options);
    CHECK(thread_test::wrong_answers(p, 8, 2000) == 0);
  }
}

TEST_CASE("workers that sleep between calls are woken for every call") {
  // No spinning at all, then a short spin, with the caller pausing between
  // calls for about as long, so that calls land just as a worker gives up
  // spinning and goes to sleep: no wake-up may be lost (that would hang).
  for (const auto max_spin : {std::chrono::nanoseconds::zero(), std::chrono::nanoseconds(2000)}) {
    CAPTURE(max_spin.count());
    for (const std::size_t concurrency : {std::size_t{1}, std::size_t{3}}) {
      CAPTURE(concurrency);
      isolate::thread::options options;
      options.max_spin = max_spin;
      options.concurrency = concurrency;
      auto p = isolate::load<probe, isolate::thread>(std::make_unique<thread_test::probe_impl>(), options);
      std::minstd_rand random(42);
      for (int i = 0; i < 5000; ++i) {
        REQUIRE(p->echo(i) == i);
        thread_test::busy_for(std::chrono::nanoseconds(random() % 4000));
      }
      CHECK(thread_test::wrong_answers(p, 4, 500) == 0);
    }
  }
}

TEST_CASE("synchronous and asynchronous calls mixed all complete with their own answers") {
  for (const std::size_t concurrency : {std::size_t{1}, std::size_t{2}}) {
    CAPTURE(concurrency);
    isolate::thread::options options;
    options.concurrency = concurrency;
    auto p = isolate::load<probe, isolate::thread>(std::make_unique<thread_test::probe_impl>(), options);
    std::vector<std::future<int>> pending;
    int sync_wrong = -1;
    std::thread sync_caller([&] { sync_wrong = thread_test::wrong_answers(p, 1, 3000); });
    for (int i = 0; i < 3000; ++i) pending.push_back(p.async(&probe::echo, i, asio::use_future));
    int async_wrong = 0;
    for (int i = 0; i < 3000; ++i) async_wrong += pending[static_cast<std::size_t>(i)].get() != i;
    sync_caller.join();
    CHECK(sync_wrong == 0);
    CHECK(async_wrong == 0);
  }
}

TEST_CASE("a synchronous call blocked in the plugin does not hold up others when concurrency > 1") {
  gate g;
  isolate::thread::options options;
  options.concurrency = 2;
  auto p = g.load(options);
  // The blocked call holds the mailbox: the calls below are queued, for the other worker.
  std::thread blocked([&] { p->block_until_released(); });
  g.entered.get_future().wait();
  CHECK(p->echo(7) == 7);
  CHECK(p->echo_text(std::string(300, 'x')) == std::string(300, 'x'));
  g.release.set_value();
  blocked.join();
}

TEST_CASE("exceptions and large frames come back through the mailbox intact") {
  auto p = isolate::load<probe, isolate::thread>(std::make_unique<thread_test::probe_impl>());
  const std::string long_reason(1000, 'r');
  for (const std::string& why : {std::string("no"), long_reason}) {
    try {
      p->refuse(why);
      FAIL("refuse() returned");
    } catch (const std::invalid_argument& e) {
      CHECK(e.what() == why);
    }
  }
  for (const std::size_t size :
       {std::size_t{0}, std::size_t{8}, std::size_t{40}, std::size_t{255}, std::size_t{100'000}}) {
    const std::string text(size, 't');
    CHECK(p->echo_text(text) == text);
  }
}

TEST_CASE("large arguments reach the plugin whole, read in place from the caller's (synchronous and asynchronous)") {
  auto p = isolate::load<probe, isolate::thread>(std::make_unique<thread_test::probe_impl>());
  for (const std::size_t size : {std::size_t{16} << 10, std::size_t{1} << 20, std::size_t{9} << 20}) {
    CAPTURE(size);
    std::string text(size, 'x');
    text.front() = 'a';
    text.back() = 'z';
    CHECK(p->echo_text(text) == text);
    CHECK(p.async(&probe::echo_text, text, asio::use_future).get() == text);
  }
}

TEST_CASE("an idle plugin's worker sleeps instead of spinning") {
  auto p = isolate::load<probe, isolate::thread>(std::make_unique<thread_test::probe_impl>());
  for (int i = 0; i < 100; ++i) REQUIRE(p->echo(i) == i);
  // Nothing to wait on here: idleness is only seen by letting time pass.
  const double before = thread_test::process_cpu_seconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const double used = thread_test::process_cpu_seconds() - before;
  CHECK(used < 0.05);  // a spinning worker would use about 0.2 s
}

TEST_CASE("the mailbox fails a call posted but never taken when it closes, and refuses later ones") {
  isolate::detail::call_mailbox mailbox;
  isolate::wire::buffer request;
  isolate::detail::encode_call(request, 0, 1024);
  std::promise<std::exception_ptr> outcome;
  std::thread caller([&] {
    isolate::wire::buffer reply;
    try {
      if (!mailbox.try_claim()) throw std::logic_error("an idle mailbox could not be claimed");
      const auto ticket = mailbox.post(request, reply, -1);
      if (!ticket) throw std::logic_error("an open mailbox refused a call");
      mailbox.wait_for_answer(*ticket, std::chrono::nanoseconds::zero());  // most likely asleep when answered
      mailbox.take_reply(reply);
      outcome.set_value(nullptr);
    } catch (...) {
      outcome.set_value(std::current_exception());
    }
  });
  while (!mailbox.has_call()) std::this_thread::yield();
  CHECK(!mailbox.try_claim());
  mailbox.close(std::make_exception_ptr(isolate::error(isolate::errc::plugin_closed, "closed")));
  caller.join();
  const auto failure = outcome.get_future().get();
  REQUIRE(failure);
  try {
    std::rethrow_exception(failure);
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::plugin_closed);
  }
  isolate::wire::buffer reply;
  REQUIRE(mailbox.try_claim());
  CHECK(!mailbox.post(request, reply, -1));
  mailbox.release();
}
