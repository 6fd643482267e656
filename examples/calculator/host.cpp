// The host: loads the plugin and calls it. Changing `policy` (or configuring
// with -DCALCULATOR_POLICY=in_process|thread|process) is the only edit that
// moves the plugin between isolation levels.
#include "calculator.hpp"

#include <isolate/isolate.hpp>

#include <asio/use_future.hpp>

#include <iostream>
#include <unistd.h>

#ifndef CALCULATOR_POLICY
#define CALCULATOR_POLICY process
#endif
using policy = isolate::CALCULATOR_POLICY;

int main(int argc, char** argv) {
  const char* plugin = argc > 1 ? argv[1] : CALCULATOR_PLUGIN_PATH;
  auto calc = isolate::load<calculator, policy>(plugin);

  std::cout << "host process " << ::getpid() << ", " << calc->describe() << "\n";
  std::cout << "2 + 3 = " << calc->add(2, 3) << "\n";
  std::cout << "mean of 1, 2, 4 = " << calc->mean({1, 2, 4}) << "\n";

  std::future<int> sum = calc.async(&calculator::add, 40, 2, asio::use_future);  // any Asio completion token
  std::cout << "40 + 2 = " << sum.get() << " (async)\n";

  try {
    calc->divide(1, 0);
  } catch (const std::invalid_argument& e) {  // the plugin's exception, same type and message
    std::cout << "divide(1, 0) threw std::invalid_argument: " << e.what() << "\n";
  }
}
