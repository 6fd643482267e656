// A program that uses isolate the way a user's project would; tests/cmake
// builds it through find_package and through add_subdirectory, with a plugin
// made by isolate_add_plugin, and runs it.
#include "greeter.hpp"

#include <isolate/isolate.hpp>

#include <iostream>

namespace {

// Warns under isolate's own flags (-Wconversion): the consumers build with
// -Werror, so this fails to compile if those flags leak into a user's build.
int narrow(long value) { return value; }

template <class Policy>
bool works() {
  auto plugin = isolate::load<greeter, Policy>(CONSUMER_PLUGIN);
  return plugin->greet("consumer") == "hello, consumer" && plugin->twice(21) == 42;
}

}  // namespace

int main() {
  const bool ok = works<isolate::in_process>() && works<isolate::thread>() && works<isolate::process>();
  std::cout << "isolate consumer: " << (ok ? "all three policies work" : "FAILED") << '\n';
  return ok ? narrow(0L) : 1;
}
