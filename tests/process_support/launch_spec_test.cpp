#include "isolate/detail/process/launch_spec.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

using isolate::errc;
using isolate::detail::check_options;
using isolate::detail::find_worker;
using isolate::detail::launch_spec;

namespace {

// The isolate::error `f` throws; fails the test if it throws none.
template <class F>
isolate::error failure_of(F&& f) {
  try {
    f();
  } catch (const isolate::error& e) {
    return e;
  }
  FAIL("no isolate::error was thrown");
  return isolate::error(errc::unsupported);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("check_options refuses a message size a 32-bit frame cannot carry") {
  isolate::process::options options;
  CHECK_NOTHROW(check_options(options));

  const std::size_t largest = std::numeric_limits<std::uint32_t>::max() - isolate::wire::header_size;
  options.max_message_size = largest;
  CHECK_NOTHROW(check_options(options));

  options.max_message_size = largest + 1;
  auto e = failure_of([&] { check_options(options); });
  CHECK(e.code() == errc::unsupported);
  CHECK(contains(e.what(), "32-bit"));

  options.max_message_size = std::size_t{1} << 40;
  CHECK(failure_of([&] { check_options(options); }).code() == errc::unsupported);

  options.max_message_size = 0;
  CHECK(failure_of([&] { check_options(options); }).code() == errc::unsupported);
}

TEST_CASE("find_worker: the option first, then beside the plugin, else a list of where it looked") {
  namespace fs = std::filesystem;
  char pattern[] = "/tmp/isolate-launch-spec-XXXXXX";
  REQUIRE(::mkdtemp(pattern) != nullptr);
  const fs::path dir = pattern;
  ::unsetenv("ISOLATE_WORKER");

  launch_spec spec;
  spec.plugin = dir / "libplugin.so";

  SUBCASE("the option is taken as it is") {
    spec.options.worker = "/somewhere/else/isolate-worker";
    CHECK(find_worker(spec) == spec.options.worker);
  }
  SUBCASE("an executable isolate-worker beside the plugin") {
    const fs::path worker = dir / "isolate-worker";
    std::ofstream(worker) << "#!/bin/sh\n";
    fs::permissions(worker, fs::perms::owner_all);
    CHECK(find_worker(spec) == worker);
  }
  SUBCASE("none: load_failed, naming each place tried") {
    auto e = failure_of([&] { (void)find_worker(spec); });
    CHECK(e.code() == errc::load_failed);
    CHECK(contains(e.what(), (dir / "isolate-worker").string()));
  }
  fs::remove_all(dir);
}

TEST_CASE("copies of a spec share the buffers lent to the plugin") {
  launch_spec spec;
  const launch_spec copy = spec;
  CHECK(copy.lent.get() == spec.lent.get());
}
