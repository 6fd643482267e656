// The consumer's interface, shared by its host and its plugin.
#pragma once
#include <isolate/interface.hpp>

#include <string>

ISOLATE_INTERFACE(greeter, (std::string, greet, (std::string const&)), (int, twice, (int)));
