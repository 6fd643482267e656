// The plugin of capability_test: makes counters (and counts those alive), and
// calls, keeps and hands back the counters the host gives it.
#include <isolate/export.hpp>

#include "objects.hpp"

#include <atomic>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace {

using namespace objects_test;

std::atomic<int> alive{0};

struct plugin_counter final : counter {
  explicit plugin_counter(int start) : value_(start) { ++alive; }
  ~plugin_counter() override { --alive; }
  int next() override { return ++value_; }
  int value() override { return value_; }
  void fail(const std::string& what) override { throw std::runtime_error(what); }
  void hang() override {
    for (;;) ::pause();
  }

 private:
  std::atomic<int> value_;
};

struct objects_factory final : factory {
  explicit objects_factory(isolate::plugin_context& host) : host_(host) {}

  isolate::capability<counter> make_counter(int start) override {
    return isolate::make_capability<plugin_counter>(start);
  }
  std::vector<isolate::capability<counter>> make_counters(int n) override {
    std::vector<isolate::capability<counter>> made;
    for (int i = 0; i < n; ++i) made.emplace_back(isolate::make_capability<plugin_counter>(i * 100));
    return made;
  }
  int live_counters() override { return alive.load(); }
  int drain(isolate::capability<counter> from, int times) override {
    int last = 0;
    for (int i = 0; i < times; ++i) last = from->next();
    return last;
  }
  void keep(isolate::capability<counter> c) override {
    std::lock_guard lock(mutex_);
    kept_ = std::move(c);
  }
  int next_of_kept() override {
    std::lock_guard lock(mutex_);
    return kept_->next();
  }
  void drop_kept() override {
    std::lock_guard lock(mutex_);
    kept_.reset();
  }
  isolate::capability<counter> echo(isolate::capability<counter> c) override { return c; }
  int publish_one(int start) override {
    return host_.service<registry>().publish(isolate::make_capability<plugin_counter>(start));
  }
  std::string failure_of(isolate::capability<counter> c, std::string what) override {
    try {
      c->fail(what);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "nothing was thrown";
  }
  void crash() override { std::abort(); }

 private:
  isolate::plugin_context& host_;
  std::mutex mutex_;
  isolate::capability<counter> kept_;
};

}  // namespace

ISOLATE_EXPORT_PLUGIN(objects_test::factory, objects_factory);
