#include "accountant.hpp"

#include <isolate/error.hpp>
#include <isolate/export.hpp>

#include <thread>

namespace services_test {
namespace {

class accountant_impl final : public accountant {
 public:
  explicit accountant_impl(isolate::plugin_context& host)
      : host_(host), ledger_(host.service<ledger>()), ticks_(host.events<ticks>()) {}
  ~accountant_impl() override {
    if (later_.joinable()) later_.join();
  }

  int post(const std::string& entry) override { return ledger_.record(entry); }
  int post_many(int n) override {
    int last = 0;
    for (int i = 0; i < n; ++i) last = ledger_.record("entry " + std::to_string(i));
    return last;
  }
  int double_it(int x) override { return 2 * x; }
  // The host answers by calling this plugin again, while this call waits.
  int round_trip_through_host(int x) override { return ledger_.ask_plugin_to_double_twice(x) + 1; }
  void emit_ticks(int n) override {
    for (int i = 0; i < n; ++i) ticks_.tick(i);
  }
  // Events sent when no call from the host is in flight.
  void emit_ticks_later(int n) override {
    if (later_.joinable()) later_.join();
    later_ = std::thread([this, n] {
      for (int i = 0; i < n; ++i) ticks_.tick(100 + i);
    });
  }
  bool missing_service_is_reported() override {
    try {
      host_.service<unprovided>();
    } catch (const isolate::error& e) {
      return e.code() == isolate::errc::unsupported;
    }
    return false;
  }

 private:
  isolate::plugin_context& host_;
  ledger& ledger_;
  ticks& ticks_;
  std::thread later_;
};

}  // namespace
}  // namespace services_test

ISOLATE_EXPORT_PLUGIN(services_test::accountant, services_test::accountant_impl);
