// Must not compile: a return type Cereal cannot serialize
#include <isolate/isolate.hpp>
struct opaque { int x; };
ISOLATE_INTERFACE(bad, (opaque, give, ()));
int main() {}
