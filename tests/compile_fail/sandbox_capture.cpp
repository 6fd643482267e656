// A lambda with captures cannot be run in a sandbox: what it captured lives
// in the host's memory, which the sandboxed process does not share.
#include <isolate/sandbox.hpp>

int run_with_capture(isolate::sandbox& sb) {
  int offset = 1;
  return sb.run([offset](int x) { return x + offset; }, 2);
}
