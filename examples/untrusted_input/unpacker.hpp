// The interface of the example's plugin: zlib-compressed documents in, text out.
#ifndef UNTRUSTED_INPUT_UNPACKER_HPP
#define UNTRUSTED_INPUT_UNPACKER_HPP

#include <isolate/interface.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace example {

// What the plugin made of one document.
struct unpacked {
  std::string text;     // the inflated text, or what its `include` line brought in
  std::string include;  // the target of the `include <url>` line the document was, if it was one
  std::string refused;  // the system call that failed while following it ("socket", "connect", "open")
  int error = 0;        // that call's errno

  template <class Archive>
  void serialize(Archive& archive) {
    archive(text, include, refused, error);
  }
};

ISOLATE_INTERFACE(unpacker,
                  // Inflates a zlib or gzip stream. A document that is a single line
                  // `include http://a.b.c.d:port/path` or `include file:///path` is
                  // replaced by what that names, as XInclude and XML entities do.
                  (unpacked, unpack, (const std::vector<std::uint8_t>&)));

}  // namespace example

#endif
