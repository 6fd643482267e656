// The child program the process_support tests start. argv[1] picks a behaviour;
// fd 3 (or the fd given) is the control channel when one is used.
#include "isolate/detail/process/control_channel.hpp"
#include "isolate/detail/process/fd_passing.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

// Let the signals these tests provoke kill the process, as they would in a
// real worker, instead of being turned into a sanitizer report and exit(1).
extern "C" char const* __asan_default_options() { return "handle_segv=0:handle_abort=0:detect_leaks=0"; }
extern "C" char const* __tsan_default_options() { return "handle_segv=0:handle_abort=0"; }

namespace {

using namespace isolate::detail;
using namespace std::chrono_literals;

constexpr int channel = 3;
constexpr auto patience = std::chrono::milliseconds(20'000);

std::span<std::byte const> bytes_of(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

void send_text(int fd, std::uint32_t type, std::string_view text) {
  std::error_code ec;
  write_message(fd, type, bytes_of(text), patience, ec);
  if (ec) std::_Exit(100);
}

// Blocks until the host closes its end, so the child never outlives its test.
void wait_for_eof(int fd) {
  char c;
  while (::read(fd, &c, 1) > 0) {
  }
}

std::string list_fds() {
  std::string list;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) std::_Exit(101);
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    int const fd = std::atoi(entry->d_name);
    if (fd == ::dirfd(dir)) continue;
    list += std::to_string(fd) + " ";
  }
  ::closedir(dir);
  return list;
}

}  // namespace

int main(int argc, char** argv) {
  rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);  // the crash tests must not litter cores
  if (argc < 2) return 64;
  std::string_view const mode = argv[1];

  if (mode == "exit" && argc == 3) return std::atoi(argv[2]);
  if (mode == "segv") {
    std::raise(SIGSEGV);
    return 65;
  }
  if (mode == "abort") std::abort();
  if (mode == "hang") {
    send_text(channel, 1, "ready");
    for (;;) ::pause();
  }
  if (mode == "list-fds") {
    // list-fds [channel fd [fd to write "pipe" to]]
    int const out = argc > 2 ? std::atoi(argv[2]) : channel;
    if (argc > 3 && ::write(std::atoi(argv[3]), "pipe", 4) != 4) return 102;
    send_text(out, 2, list_fds());
    return 0;
  }
  if (mode == "getenv" && argc == 3) {
    char const* value = std::getenv(argv[2]);
    send_text(channel, 3, value != nullptr ? value : "<unset>");
    return 0;
  }
  if (mode == "echo") {
    // Echoes every message; type 99 aborts mid-conversation, 98 exits.
    for (;;) {
      std::error_code ec;
      control_message m = read_message(channel, 16 << 20, patience, ec);
      if (ec) return ec == asio::error::eof ? 0 : 103;
      if (m.type == 99) std::abort();
      if (m.type == 98) return 0;
      write_message(channel, m.type, m.body, patience, ec);
      if (ec) return 104;
    }
  }
  if (mode == "recv-fd") {
    // Receives 8 bytes of text with one fd, writes the text to the fd, acks.
    std::array<std::byte, 8> payload;
    std::error_code ec;
    auto fds = receive_with_fds(channel, payload, 1, patience, ec);
    if (ec) return 105;
    if (::write(fds[0].get(), payload.data(), payload.size()) != 8) return 106;
    send_text(channel, 4, "done");
    return 0;
  }
  if (mode == "silent") {
    wait_for_eof(channel);
    return 0;
  }
  if (mode == "partial-frame") {
    // Half a header, then death: the host must see eof, not wait for the rest.
    if (::write(channel, "\x07\x00", 2) != 2) return 107;
    return 0;
  }
  return 64;
}
