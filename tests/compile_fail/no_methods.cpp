// Must not compile: an interface with no methods
#include <isolate/isolate.hpp>
ISOLATE_INTERFACE(empty);
int main() {}
