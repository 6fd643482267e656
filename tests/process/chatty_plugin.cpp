#include "chatty.hpp"

#include <isolate/export.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace process_test {
namespace {

std::FILE* stream_of(int fd) { return fd == 2 ? stderr : stdout; }

struct chatty_impl final : chatty {
  chatty_impl() {
    const char* lines = std::getenv(load_lines_variable);
    const int count = lines != nullptr ? std::atoi(lines) : 0;
    for (int i = 0; i < count; ++i) std::printf("load %d %s\n", i, std::string(90, 'x').c_str());
  }

  void number_lines(int fd, int count) override {
    for (int i = 0; i < count; ++i) std::fprintf(stream_of(fd), "%d %d\n", fd, i);
  }

  void write_raw(int fd, const std::string& bytes) override {
    std::fflush(stream_of(fd));
    for (std::size_t done = 0; done < bytes.size();) {
      const auto wrote =
          ::write(fd == 2 ? 2 : 1, bytes.data() + done, std::min<std::size_t>(bytes.size() - done, 65536));
      if (wrote < 0) std::abort();
      done += static_cast<std::size_t>(wrote);
    }
  }

  void print_then_abort(const std::string& out, const std::string& err) override {
    std::fputs(out.c_str(), stdout);
    std::fputs(err.c_str(), stderr);
    std::abort();
  }

  int add(int a, int b) override { return a + b; }
};

}  // namespace
}  // namespace process_test

ISOLATE_EXPORT_PLUGIN(process_test::chatty, process_test::chatty_impl);
