#include "isolate/detail/plugin_object.hpp"

#include <doctest/doctest.h>

#include <memory>

using isolate::detail::plugin_deleter;
using isolate::detail::plugin_factory;
using isolate::detail::plugin_object;

namespace {

struct shape {
  virtual ~shape() = default;
  virtual int sides() const = 0;
};
struct square final : shape {
  explicit square(int& destroyed) : destroyed_(destroyed) {}
  ~square() override { ++destroyed_; }
  int sides() const override { return 4; }
  int& destroyed_;
};

// What a plugin library's entry would do; counts the calls, and whether the
// library was still held when it ran.
int library_destroys = 0;
bool library_alive_at_destroy = false;
std::weak_ptr<const void> library_seen;
void destroy_in_library(void* object) noexcept {
  ++library_destroys;
  library_alive_at_destroy = !library_seen.expired();
  delete static_cast<shape*>(object);
}

}  // namespace

TEST_CASE("an object the host made is destroyed with delete") {
  int destroyed = 0;
  {
    plugin_object<shape> object(std::make_unique<square>(destroyed));  // unique_ptr<Impl> converts
    CHECK(object->sides() == 4);
  }
  CHECK(destroyed == 1);
}

TEST_CASE("an object a library made is destroyed by the library, which stays loaded until then") {
  int destroyed = 0;
  auto library = std::make_shared<int>(0);  // stands for the dlopen handle
  library_seen = library;
  {
    plugin_object<shape> object(new square(destroyed), plugin_deleter(&destroy_in_library, library));
    library.reset();  // the deleter holds the last reference
    CHECK_FALSE(library_seen.expired());
  }
  CHECK(destroyed == 1);
  CHECK(library_destroys == 1);
  CHECK(library_alive_at_destroy);
  CHECK(library_seen.expired());  // let go once the object is gone
}

TEST_CASE("a factory makes the object") {
  int destroyed = 0;
  const plugin_factory<shape> make = [&] { return plugin_object<shape>(std::make_unique<square>(destroyed)); };
  CHECK(make()->sides() == 4);
  CHECK(destroyed == 1);
}
