// A program that uses isolate the way a user's project would; tests/cmake
// builds it through find_package and through add_subdirectory.
#include <isolate/isolate.hpp>

#include <iostream>

namespace {

// Warns under isolate's own flags (-Wconversion): the consumers build with
// -Werror, so this fails to compile if those flags leak into a user's build.
int narrow(long value) { return value; }

}

int main() {
  std::cout << "isolate consumer: " << isolate::make_error_code(isolate::errc::timeout).message() << '\n';
  return narrow(0L);
}
