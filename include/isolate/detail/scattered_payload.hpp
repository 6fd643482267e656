// A large call's payload for a transport that stays in the caller's address
// space (isolate::thread): the archive's small writes are gathered into a
// buffer, its large blocks (a vector's or a string's bytes) are left where
// they are and referenced. The plugin's side then reads the payload piece by
// piece (wire/stream.hpp) and copies each large block once, straight from the
// caller's argument into the value it decodes, instead of through a gathered
// frame. The pieces are the very bytes the gathered frame would hold.
//
// The references are valid while the caller's arguments are: only for a
// synchronous call, whose caller waits until the payload has been read.
#ifndef ISOLATE_DETAIL_SCATTERED_PAYLOAD_HPP
#define ISOLATE_DETAIL_SCATTERED_PAYLOAD_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/link.hpp"
#include "isolate/wire/archive.hpp"
#include "isolate/wire/buffer.hpp"
#include "isolate/wire/frame.hpp"
#include "isolate/wire/stream.hpp"

#include <cstddef>
#include <span>
#include <vector>

namespace isolate::detail {

class scattered_payload final : public wire::byte_sink, public wire::chunk_source {
 public:
  // Writes `call`'s payload: small writes gathered, large ones referenced.
  explicit scattered_payload(const streamed_call& call) : size_(call.payload_size()) {
    wire::output_archive archive(static_cast<wire::byte_sink&>(*this));
    call.write_payload(archive);
    if (written_ != size_) {
      throw error(errc::protocol_error, "a streamed call wrote " + std::to_string(written_) + " bytes where " +
                                            std::to_string(size_) + " were measured");
    }
    header_.kind = wire::frame_kind::call;
    header_.method = call.method();
    header_.size = static_cast<std::uint32_t>(size_);
  }
  scattered_payload(const scattered_payload&) = delete;
  scattered_payload& operator=(const scattered_payload&) = delete;

  // The frame header the gathered frame would carry (call id 0).
  const wire::frame_header& header() const noexcept { return header_; }
  // The payload, to read from its first piece on (once).
  wire::inbound_payload payload() noexcept {
    next_piece_ = 0;
    const auto first = next();
    return {first, size_, this};
  }

  void write(const void* data, std::size_t size) override {
    written_ += size;
    if (size >= wire::large_payload) {
      pieces_.push_back({static_cast<const std::byte*>(data), 0, size});
    } else if (!pieces_.empty() && pieces_.back().in_place == nullptr) {
      gathered_.append(data, size);
      pieces_.back().size += size;
    } else {
      pieces_.push_back({nullptr, gathered_.size(), size});
      gathered_.append(data, size);
    }
  }

  std::span<const std::byte> next() override {
    if (next_piece_ == pieces_.size()) return {};
    const piece& at = pieces_[next_piece_++];
    return {at.in_place != nullptr ? at.in_place : gathered_.data() + at.offset, at.size};
  }
  void finish() noexcept override {}

 private:
  struct piece {
    const std::byte* in_place;  // a large block where the caller's argument holds it; null: in gathered_
    std::size_t offset;         // in gathered_ (which may still move while it grows)
    std::size_t size;
  };

  std::size_t size_;
  std::size_t written_ = 0;
  wire::frame_header header_{};
  wire::buffer gathered_;
  std::vector<piece> pieces_;
  std::size_t next_piece_ = 0;
};

}  // namespace isolate::detail

#endif
