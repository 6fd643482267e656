// Must not compile: async with the wrong number of arguments
#include <isolate/isolate.hpp>
#include <asio/use_future.hpp>
ISOLATE_INTERFACE(calc, (int, add, (int, int)));
struct impl final : calc { int add(int a, int b) override { return a + b; } };
int main() {
  auto p = isolate::load<calc, isolate::in_process>(std::make_unique<impl>());
  auto f = p.async(&calc::add, 1, asio::use_future);
}
