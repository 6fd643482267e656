// Must not compile: parameters not in parentheses
#include <isolate/isolate.hpp>
ISOLATE_INTERFACE(bad, (int, add, int, int));
int main() {}
