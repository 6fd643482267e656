// The interface, shared by the host and the plugin.
#pragma once
#include <isolate/interface.hpp>

#include <string>
#include <vector>

ISOLATE_INTERFACE(calculator,
                  (int, add, (int, int)),
                  (double, divide, (double, double)),
                  (double, mean, (std::vector<double> const&)),
                  (std::string, describe, ()));
