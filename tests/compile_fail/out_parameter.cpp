// Must not compile: a non-const reference parameter
#include <isolate/isolate.hpp>
ISOLATE_INTERFACE(bad, (void, fill, (int&)));
int main() {}
