#include "virtual_adder.hpp"

namespace isolate::bench {
namespace {

struct plain_adder final : adder {
  int add(int a, int b) override { return a + b; }
};

}  // namespace

std::unique_ptr<adder> make_adder() { return std::make_unique<plain_adder>(); }

}  // namespace isolate::bench
