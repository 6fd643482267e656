// Feeds a zlib plugin untrusted input under isolate::limits::strict(): a
// normal document, a decompression bomb, and documents that send it to the
// network and to a file outside its paths. Prints what happened to each and a
// verdict. See README.md.
#define ZLIB_CONST  // zlib's next_in is a pointer to const
#include "unpacker.hpp"

#include <isolate/isolate.hpp>
#include <isolate/limits.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using unpacker = isolate::plugin<example::unpacker, isolate::process>;

// `text` repeated `times` times, as a zlib stream. Z_RLE looks for runs only:
// all a bomb of zeros needs, and twice as fast as the default on 1 GiB.
std::vector<std::uint8_t> compress(std::string_view text, std::size_t times = 1) {
  z_stream stream{};
  if (deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, 15, 9, Z_RLE) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::vector<std::uint8_t> out;
  std::uint8_t chunk[64 * 1024];
  for (std::size_t i = 0; i < times + 1; ++i) {
    const bool last = i == times;
    stream.next_in = reinterpret_cast<const Bytef*>(text.data());
    stream.avail_in = last ? 0 : static_cast<uInt>(text.size());
    do {
      stream.next_out = chunk;
      stream.avail_out = sizeof chunk;
      deflate(&stream, last ? Z_FINISH : Z_NO_FLUSH);
      out.insert(out.end(), chunk, chunk + (sizeof chunk - stream.avail_out));
    } while (stream.avail_out == 0);
  }
  deflateEnd(&stream);
  return out;
}

// "connect() failed with ENETUNREACH (Network is unreachable)"
std::string refusal(const example::unpacked& doc) {
  return doc.refused + "() failed with " + ::strerrorname_np(doc.error) + " (" + std::strerror(doc.error) + ")";
}

// A TCP port on 127.0.0.1 that this host listens on (and never answers).
int listen_on_loopback(int& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 || ::listen(fd, 4) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw std::runtime_error(std::string("cannot listen on 127.0.0.1: ") + std::strerror(errno));
  }
  port = ntohs(address.sin_port);
  return fd;
}

// What went wrong, for the verdict; empty when everything held.
std::vector<std::string> failures;

void expect(bool held, const std::string& what) {
  if (!held) failures.push_back(what);
}

void print_limits(const isolate::limits::report& report) {
  std::printf("limits in force in the worker:\n");
  for (const auto& limit : report) {
    std::printf("  %-15s %-3s %s\n", limit.limit.c_str(), limit.in_force ? "yes" : "NO", limit.mechanism.c_str());
  }
}

// 1. What the plugin is for.
void normal_input(unpacker& plugin) {
  const std::string text = "Hello from a compressed document.";
  const auto input = compress(text);
  const auto doc = plugin->unpack(input);
  std::printf("1. normal input (%zu bytes): inflated to \"%s\"\n", input.size(), doc.text.c_str());
  expect(doc.text == text, "the normal input did not come back as it went in");
}

// 2. 1 GiB of zeros in 1 MiB of input: the plugin inflates it all into memory.
void decompression_bomb(unpacker& plugin) {
  const auto bomb = compress(std::string(1 << 20, '\0'), 1024);
  std::printf("2. decompression bomb (%zu KiB that inflate to 1 GiB): ", bomb.size() >> 10);
  try {
    plugin->unpack(bomb);
    std::printf("inflated whole!\n");
    expect(false, "the bomb was not stopped");
  } catch (const isolate::error& e) {
    std::printf("stopped\n   %s: %s\n", e.code() == isolate::errc::limit_exceeded ? "errc::limit_exceeded" : "error",
                e.what());
    expect(e.code() == isolate::errc::limit_exceeded && std::strstr(e.what(), "memory limit") != nullptr,
           "the bomb was not stopped by the memory limit");
  }
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const std::string after = plugin->unpack(compress("still here")).text;
  std::printf("   host fine (peak %ld MiB); plugin restarted, next call answers \"%s\"\n", usage.ru_maxrss >> 10,
              after.c_str());
  expect(after == "still here", "the plugin did not answer after the bomb");
}

// 3. Documents that send the plugin out of its sandbox.
void escapes(unpacker& plugin) {
  int port = 0;
  const int listener = listen_on_loopback(port);
  const struct {
    std::string url, why;
  } targets[] = {
      {"http://127.0.0.1:" + std::to_string(port) + "/", "(this host listens there)"},
      {"file:///etc/passwd", "(any user may read it)"},
  };
  std::printf("3. documents that are one `include` line, which the plugin follows:\n");
  for (const auto& [url, why] : targets) {
    const auto doc = plugin->unpack(compress("include " + url));
    if (doc.error != 0) {
      std::printf("   %-24s %-26s refused: %s\n", url.c_str(), why.c_str(), refusal(doc).c_str());
    } else {
      std::printf("   %-24s %-26s NOT refused: got %zu bytes\n", url.c_str(), why.c_str(), doc.text.size());
    }
    expect(doc.error != 0, url + " was not refused");
  }
  ::close(listener);
}

}  // namespace

int main(int argc, char** argv) try {
  const char* path = argc > 1 ? argv[1] : UNPACKER_PLUGIN;
  {
    isolate::process::options options;
    options.limits = isolate::limits::strict().memory_mb(64);
    options.restart = isolate::restart_policy::crash(3);
    auto plugin = isolate::load<example::unpacker, isolate::process>(path, options);
    std::printf("zlib %s inflating untrusted input in a worker under isolate::limits::strict().memory_mb(64)\n",
                zlibVersion());
    print_limits(plugin.transport().limits_in_force());
    for (auto step : {normal_input, decompression_bomb, escapes}) {
      try {
        step(plugin);
      } catch (const std::exception& e) {
        std::printf("   unexpected: %s\n", e.what());
        expect(false, e.what());
      }
    }
  }  // the verdict comes after the plugin was unloaded, so it also says that went well
  if (failures.empty()) {
    std::printf("verdict: the sandbox held: bomb stopped at the memory limit, network and file refused, host unharmed\n");
    return 0;
  }
  std::printf("verdict: FAILED:");
  for (const auto& failure : failures) std::printf(" %s;", failure.c_str());
  std::printf("\n");
  return 1;
} catch (const std::exception& e) {
  std::printf("verdict: FAILED: %s\n", e.what());
  return 1;
}
