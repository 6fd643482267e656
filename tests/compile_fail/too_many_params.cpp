// Must not compile: 17 parameters
#include <isolate/isolate.hpp>
ISOLATE_INTERFACE(bad, (int, f, (int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int, int)));
int main() {}
