// A well-formed plugin: built with isolate_add_plugin into a shared library.
#include <isolate/export.hpp>

#include "calculator.hpp"

#include <fstream>
#include <functional>
#include <stdexcept>
#include <thread>

// isolate_test_calculator_next builds this file again with another
// greeting: the next version of the same plugin (the manager's hot reload).
#ifndef ISOLATE_TEST_GREETING
#define ISOLATE_TEST_GREETING "hello, "
#endif

namespace plugin_library_test {
namespace {

class calculator_impl final : public calculator {
 public:
  ~calculator_impl() override {
    if (!report_to_.empty()) std::ofstream(report_to_) << "destroyed";
  }
  int add(int a, int b) override { return a + b; }
  std::string greet(const std::string& name) override { return ISOLATE_TEST_GREETING + name; }
  std::uint64_t constructor_thread() override { return std::hash<std::thread::id>{}(constructed_on_); }
  bool on_constructor_thread() override { return std::this_thread::get_id() == constructed_on_; }
  void report_destruction_to(const std::string& path) override { report_to_ = path; }
  void fail(const std::string& message) override { throw std::invalid_argument(message); }

 private:
  std::thread::id constructed_on_ = std::this_thread::get_id();
  std::string report_to_;
};

}  // namespace

ISOLATE_EXPORT_PLUGIN(calculator, calculator_impl);

}  // namespace plugin_library_test
