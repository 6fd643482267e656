// A sandboxed function takes values: a pointer would point into the host's memory.
#include <isolate/sandbox.hpp>

int length(const char* text) { return text[0] == 0 ? 0 : 1; }

int run_with_pointer(isolate::sandbox& sb) { return sb.run(length, "host memory"); }
