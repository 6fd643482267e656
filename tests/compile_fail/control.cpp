// Must compile: proves the compile-fail harness builds a correct file, so the
// failures above are caused by what each case gets wrong.
#include <isolate/isolate.hpp>
#include <isolate/sandbox.hpp>
ISOLATE_INTERFACE(good, (int, add, (int, int)), (void, ping, ()));
struct impl final : good { int add(int a, int b) override { return a + b; } void ping() override {} };
int main() { return isolate::load<good, isolate::in_process>(std::make_unique<impl>())->add(1, -1); }
// A process plugin takes a preset; minimal goes with every policy.
void load_limited() {
  isolate::load<good, isolate::process>("libgood.so", isolate::limits::strict().memory_mb(64));
  isolate::load<good, isolate::thread>("libgood.so", isolate::limits::minimal());
}
// A function, and a lambda without captures, run in a sandbox.
int twice(int x) { return 2 * x; }
int run_sandboxed(isolate::sandbox& sb) { return sb.run(twice, 2) + sb.run([](int x) { return x + 1; }, 2); }
