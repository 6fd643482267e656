// The virtual-call baseline's target. Its implementation lives in
// virtual_adder.cpp, another translation unit, so the call cannot be
// devirtualized, not even speculatively: the same situation as a plugin's
// vtable reached from the host.
#ifndef ISOLATE_BENCHMARKS_VIRTUAL_ADDER_HPP
#define ISOLATE_BENCHMARKS_VIRTUAL_ADDER_HPP

#include <memory>

namespace isolate::bench {

struct adder {
  virtual ~adder() = default;
  virtual int add(int a, int b) = 0;
};

std::unique_ptr<adder> make_adder();

}  // namespace isolate::bench

#endif
