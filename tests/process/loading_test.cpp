// Loading plugin libraries under the process transport: the worker makes the
// same checks as an in-process load, and reports them to the host.
#include "isolate/transport/process.hpp"

#include "../plugin_library/calculator.hpp"
#include "isolate/plugin_library.hpp"

#include <doctest/doctest.h>

#include "../support/failure.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

using isolate_test::contains;
using isolate_test::failure_of;
using plugin_library_test::calculator;

namespace {

// These libraries have no isolate-worker beside them: name one.
isolate::process::options with_worker() {
  isolate::process::options options;
  options.worker = ISOLATE_TEST_WORKER;
  return options;
}

}  // namespace

TEST_CASE("the same plugin library loads under the process transport") {
  auto calc = isolate::load<calculator, isolate::process>(ISOLATE_TEST_CALCULATOR_PLUGIN);
  CHECK(calc->add(2, 3) == 5);
  CHECK_THROWS_WITH_AS(calc->fail("bad input"), "bad input", std::invalid_argument);
}

TEST_CASE("a plugin built from another declaration is refused, naming both fingerprints") {
  const auto e = failure_of([] { isolate::load<calculator, isolate::process>(ISOLATE_TEST_CALCULATOR_V2_PLUGIN); });
  CHECK(e.code() == isolate::errc::fingerprint_mismatch);
  CHECK(contains(e.what(), "calculator"));
  CHECK(contains(e.what(), fmt::format("{:#018x}", isolate::fingerprint_v<calculator>)));
}

TEST_CASE("a missing library, a library that is not a plugin, and a throwing constructor fail the load") {
  const auto missing =
      failure_of([] { isolate::load<calculator, isolate::process>("/nonexistent/libplugin.so", with_worker()); });
  CHECK(missing.code() == isolate::errc::load_failed);
  CHECK(contains(missing.what(), "/nonexistent/libplugin.so"));

  const auto not_plugin =
      failure_of([] { isolate::load<calculator, isolate::process>(ISOLATE_TEST_NO_ENTRY_LIBRARY, with_worker()); });
  CHECK(not_plugin.code() == isolate::errc::load_failed);
  CHECK(contains(not_plugin.what(), "ISOLATE_EXPORT_PLUGIN"));

  const auto throwing = failure_of([] { isolate::load<calculator, isolate::process>(ISOLATE_TEST_THROWING_PLUGIN); });
  CHECK(throwing.code() == isolate::errc::load_failed);
}

TEST_CASE("unloading shuts the worker down in order: the plugin's destructor runs") {
  const auto report =
      std::filesystem::temp_directory_path() / ("isolate_process_destroyed." + std::to_string(::getpid()));
  std::filesystem::remove(report);
  {
    auto calc = isolate::load<calculator, isolate::process>(ISOLATE_TEST_CALCULATOR_PLUGIN);
    calc->report_destruction_to(report.string());
  }
  std::ifstream in(report);
  CHECK(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()) == "destroyed");
  std::filesystem::remove(report);
}
