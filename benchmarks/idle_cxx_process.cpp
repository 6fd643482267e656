// The floor an idle process plugin is compared with: a trivial dynamically
// linked C++ program (libstdc++, libm, libgcc_s and libc mapped, a
// std::string built). It writes one byte when it is up, then waits for its
// standard input to close.
#include <string>

#include <unistd.h>

int main(int argc, char** argv) {
  std::string const name(argv[0]);
  char const ready = name.empty() ? '0' : static_cast<char>('0' + argc);
  if (::write(STDOUT_FILENO, &ready, 1) != 1) return 1;
  char byte = 0;
  while (::read(STDIN_FILENO, &byte, 1) > 0) {
  }
  return 0;
}
