// The plugin: a plain class implementing the interface, built as a shared
// library with isolate_add_plugin().
#include "calculator.hpp"

#include <isolate/export.hpp>

#include <numeric>
#include <stdexcept>
#include <unistd.h>

struct my_calculator final : calculator {
  int add(int a, int b) override { return a + b; }
  double divide(double a, double b) override {
    if (b == 0) throw std::invalid_argument("division by zero");
    return a / b;
  }
  double mean(const std::vector<double>& values) override {
    if (values.empty()) throw std::out_of_range("mean of nothing");
    return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  }
  std::string describe() override { return "calculator in process " + std::to_string(::getpid()); }
};

ISOLATE_EXPORT_PLUGIN(calculator, my_calculator);
