// Must not compile: viewing a shared buffer as a type that owns memory
#include <isolate/shared_buffer.hpp>

#include <string>

int main() {
  isolate::shared_buffer buffer(4096);
  return static_cast<int>(buffer.as<std::string>().size());
}
