#include "isolate/transport/in_process.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include "isolate/plugin.hpp"

#include <cereal/types/string.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

namespace in_process_test {

ISOLATE_INTERFACE(namer, (std::string, name, (int)), (void, fail, ()));

struct namer_impl final : namer {
  std::string name(int n) override { return "n" + std::to_string(n); }
  void fail() override { throw std::logic_error("as asked"); }
  std::thread::id made_on = std::this_thread::get_id();
};

}  // namespace in_process_test

using in_process_test::namer;
using in_process_test::namer_impl;

TEST_CASE("the plugin is the object itself: calls are virtual calls on the caller's thread") {
  auto raw = std::make_unique<namer_impl>();
  namer_impl* object = raw.get();
  isolate::in_process::connection<namer> connection(
      [&]() -> isolate::detail::plugin_object<namer> { return std::move(raw); }, {});
  CHECK(connection.target() == object);
  CHECK(connection.target()->name(3) == "n3");
  CHECK(object->made_on == std::this_thread::get_id());
  CHECK_THROWS_AS(connection.target()->fail(), std::logic_error);  // the same exception, not a copy of it
  static_assert(!isolate::in_process::calls_can_time_out);
}

TEST_CASE("a factory that throws or makes nothing is load_failed") {
  try {
    isolate::in_process::connection<namer> connection(
        []() -> isolate::detail::plugin_object<namer> { throw std::runtime_error("no"); }, {});
    FAIL("nothing thrown");
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::load_failed);
    CHECK(std::string(e.what()).find("no") != std::string::npos);
  }
  try {
    isolate::in_process::connection<namer> connection([] { return isolate::detail::plugin_object<namer>(); }, {});
    FAIL("nothing thrown");
  } catch (const isolate::error& e) {
    CHECK(e.code() == isolate::errc::load_failed);
  }
}
