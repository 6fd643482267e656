// The plugin: zlib's inflate on documents from anyone, written as trusting
// code often is. It inflates as much as the stream holds, into memory, and
// follows the `include` line a document may be. Under
// isolate::limits::strict() neither can hurt the host (see host.cpp).
#define ZLIB_CONST  // zlib's next_in is a pointer to const
#include "unpacker.hpp"

#include <isolate/export.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <climits>
#include <stdexcept>
#include <string>
#include <string_view>

namespace example {
namespace {

// A zlib or gzip stream, inflated whole: it takes the memory the stream says.
std::string inflate_all(const std::vector<std::uint8_t>& input) {
  if (input.size() > UINT_MAX) throw std::length_error("inflate: input over 4 GiB");
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 32) != Z_OK) {  // 15 + 32: a window of 32 KiB, zlib or gzip header
    throw std::runtime_error("inflate: cannot start zlib");
  }
  struct end_stream {
    z_stream& s;
    ~end_stream() { inflateEnd(&s); }
  } end{stream};
  stream.next_in = input.data();
  stream.avail_in = static_cast<uInt>(input.size());
  std::string text;
  char chunk[64 * 1024];
  for (;;) {
    stream.next_out = reinterpret_cast<Bytef*>(chunk);
    stream.avail_out = sizeof chunk;
    const int status = inflate(&stream, Z_NO_FLUSH);
    text.append(chunk, sizeof chunk - stream.avail_out);
    if (status == Z_STREAM_END) return text;
    // With room left for output, Z_BUF_ERROR means the input ended early.
    if (status != Z_OK) {
      throw std::runtime_error(std::string("inflate: ") + (stream.msg != nullptr   ? stream.msg
                                                           : status == Z_BUF_ERROR ? "truncated input"
                                                                                   : zError(status)));
    }
  }
}

void refuse(unpacked& doc, const char* call) {
  doc.refused = call;
  doc.error = errno;
}

// Up to 64 KiB of what `fd` gives, then closes it.
void read_into(int fd, unpacked& doc) {
  char buffer[4096];
  ssize_t n = 0;
  while (doc.text.size() < 64 * 1024 && (n = ::read(fd, buffer, sizeof buffer)) > 0) {
    doc.text.append(buffer, static_cast<std::size_t>(n));
  }
  if (n < 0 && errno != EAGAIN) refuse(doc, "read");  // EAGAIN: a server that stopped answering
  ::close(fd);
}

// `file:///path`
void read_file(const std::string& path, unpacked& doc) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return refuse(doc, "open");
  read_into(fd, doc);
}

// `http://a.b.c.d[:port][/path]`: an HTTP/1.0 GET.
void fetch(std::string_view address, unpacked& doc) {
  const auto slash = address.find('/');
  const std::string host_port(address.substr(0, slash));
  const std::string path = slash == std::string_view::npos ? "/" : std::string(address.substr(slash));
  const auto colon = host_port.rfind(':');
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(colon == std::string::npos ? 80 : std::stoi(host_port.substr(colon + 1))));
  if (::inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &to.sin_addr) != 1) {
    throw std::invalid_argument("include: not an IPv4 address in '" + doc.include + "'");
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return refuse(doc, "socket");
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
    refuse(doc, "connect");
    ::close(fd);
    return;
  }
  const timeval patience{2, 0};  // a server that never answers does not hold the call
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
  const std::string request = "GET " + path + " HTTP/1.0\r\n\r\n";
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  read_into(fd, doc);
}

class zlib_unpacker final : public unpacker {
 public:
  unpacked unpack(const std::vector<std::uint8_t>& input) override {
    unpacked doc;
    doc.text = inflate_all(input);
    constexpr std::string_view include = "include ", file = "file://", http = "http://";
    if (!doc.text.starts_with(include) || doc.text.find('\n') != std::string::npos) return doc;
    doc.include = doc.text.substr(include.size());
    doc.text.clear();
    if (doc.include.starts_with(file)) {
      read_file(doc.include.substr(file.size()), doc);
    } else if (doc.include.starts_with(http)) {
      fetch(std::string_view(doc.include).substr(http.size()), doc);
    } else {
      throw std::invalid_argument("include: neither file:// nor http:// in '" + doc.include + "'");
    }
    return doc;
  }
};

}  // namespace

ISOLATE_EXPORT_PLUGIN(unpacker, zlib_unpacker);

}  // namespace example
