// Must not compile: two methods share a name
#include <isolate/isolate.hpp>
ISOLATE_INTERFACE(dup, (int, add, (int)), (int, add, (int, int)));
int main() {}
