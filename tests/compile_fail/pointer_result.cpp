// Must not compile: a pointer return type
#include <isolate/isolate.hpp>
ISOLATE_INTERFACE(bad, (int*, where, ()));
int main() {}
