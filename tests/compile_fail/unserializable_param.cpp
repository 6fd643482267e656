// Must not compile: a parameter type Cereal cannot serialize
#include <isolate/isolate.hpp>
struct opaque { int x; };
ISOLATE_INTERFACE(bad, (void, take, (opaque)));
int main() {}
