// Configuration words (any order): "refuse-early" refuses in the
// constructor, "refuse-late" in on_load (after calling the host); "hang"
// makes on_stop outlast any deadline; "endless-destructor" makes the
// destructor (after on_stop) never return; "greeting=<word>" sets the greeting.
#include "lifecycle.hpp"

#include <isolate/error.hpp>
#include <isolate/export.hpp>

#include <chrono>
#include <thread>

namespace lifecycle_test {
namespace {

class greeter_impl final : public greeter {
 public:
  // The configuration is here; the host's services are not called yet
  // (under process the host serves them once the worker is ready).
  explicit greeter_impl(isolate::plugin_context& host)
      : journal_(host.service<journal>()), configuration_(host.configuration()) {
    if (has("refuse-early")) isolate::refuse_load("the configuration says 'refuse-early'");
    if (const auto at = configuration_.find("greeting="); at != std::string::npos) {
      greeting_ = configuration_.substr(at + 9, configuration_.find(' ', at) - at - 9);
    }
  }

  // "On load": the host answers calls now.
  void on_load() {
    journal_.write("loaded with '" + configuration_ + "'");
    if (has("refuse-late")) isolate::refuse_load("on_load found 'refuse-late'");
  }

  ~greeter_impl() override {
    // The host's services are gone by now (the worker is stopping).
    if (has("endless-destructor")) {
      for (;;) std::this_thread::sleep_for(std::chrono::minutes(5));
    }
  }

  std::string greet(const std::string& who) override { return greeting_ + ", " + who; }
  std::string configuration() override { return configuration_; }

  // "On stop": the host still answers.
  void on_stop() {
    journal_.write("stopping");
    if (has("hang")) std::this_thread::sleep_for(std::chrono::minutes(5));
    journal_.write("stopped");
  }

 private:
  bool has(const std::string& word) const { return configuration_.find(word) != std::string::npos; }

  journal& journal_;
  std::string configuration_;
  std::string greeting_ = "hello";
};

}  // namespace
}  // namespace lifecycle_test

ISOLATE_EXPORT_PLUGIN(lifecycle_test::greeter, lifecycle_test::greeter_impl);
