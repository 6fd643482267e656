#include "behaviour.hpp"

#include <isolate/error.hpp>
#include <isolate/export.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <variant>
#include <thread>

namespace behaviour_test {
namespace {

class behaviour_impl final : public behaviour {
 public:
  int add(int a, int b) override { return count(), a + b; }
  std::string greet(const std::string& name) override { return count(), "hello, " + name; }
  void remember(std::string text) override { count(), memory_.push_back(std::move(text)); }
  std::vector<std::string> remembered() override { return count(), memory_; }
  record transform(const record& in) override {
    count();
    record out = in;
    for (auto& p : out.points) std::swap(p.x, p.y);
    out.note = in.note ? std::optional<std::string>(*in.note + "!") : std::nullopt;
    out.groups["size"] = {static_cast<int>(in.points.size())};
    return out;
  }
  std::map<std::string, int> count_words(const std::vector<std::string>& words) override {
    count();
    std::map<std::string, int> counts;
    for (const auto& w : words) ++counts[w];
    return counts;
  }
  std::optional<int> maybe(bool some) override { return count(), some ? std::optional<int>(7) : std::nullopt; }
  std::variant<int, std::string> either(bool text) override {
    count();
    if (text) return std::string("text");
    return 11;
  }
  bool negate(bool b) override { return count(), !b; }
  double scale(double x, float factor) override { return count(), x * factor; }
  std::vector<std::uint8_t> echo_bytes(const std::vector<std::uint8_t>& bytes) override { return count(), bytes; }
  void throw_standard(const std::string& kind) override {
    count();
    if (kind == "invalid_argument") throw std::invalid_argument("bad argument");
    if (kind == "out_of_range") throw std::out_of_range("out of range");
    if (kind == "logic_error") throw std::logic_error("logic");
    if (kind == "bad_alloc") throw std::bad_alloc();
    if (kind == "bad_optional_access") return (void)std::optional<int>().value();
    if (kind == "bad_variant_access") return (void)std::get<int>(std::variant<int, double>(1.0));
    if (kind == "bad_function_call") return std::function<void()>()();
    if (kind == "bad_weak_ptr") return (void)std::shared_ptr<int>(std::weak_ptr<int>());
    if (kind == "system_error") throw std::system_error(std::make_error_code(std::errc::permission_denied), "opening");
    throw std::runtime_error("runtime");
  }
  void throw_custom(const std::string& kind) override {
    count();
    if (kind == "registered") throw plugin_failure("registered failure");
    throw unregistered_failure("unregistered failure");
  }
  void throw_isolate_error() override { count(), throw isolate::error(isolate::errc::unsupported, "not here"); }
  void throw_non_standard() override { count(), throw 42; }
  // Not atomic on purpose: the transport must not run the plugin concurrently
  // with itself, so any lost increment reveals overlapping calls.
  int serial_counter() override {
    count();
    const int seen = counter_;
    std::this_thread::yield();
    counter_ = seen + 1;
    return counter_;
  }
  int calls() override { return calls_; }

 private:
  void count() { ++calls_; }
  std::vector<std::string> memory_;
  int counter_ = 0;
  std::atomic<int> calls_{0};  // under in_process, host threads call concurrently
};

}  // namespace

// Linked into the host (isolate_behaviour_plugin) or loaded by path (isolate_behaviour_module).
std::unique_ptr<behaviour> make_behaviour() { return std::make_unique<behaviour_impl>(); }

ISOLATE_EXPORT_PLUGIN(behaviour, behaviour_impl);

}  // namespace behaviour_test
