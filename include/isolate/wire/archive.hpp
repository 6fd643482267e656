// Cereal archives for isolate's wire format: the binary layout of Cereal's
// BinaryArchive, written into a wire::buffer (or a byte_sink) and read from
// bytes (or a chunk_source) without trusting them. Reading checks every length
// against the bytes that remain, so a hostile or corrupted message gives
// errc::protocol_error instead of a huge allocation, an out-of-bounds read or
// an invalid bool. Every byte is copied out before it is looked at, so bytes
// read straight from shared memory cannot change after they were checked.
#ifndef ISOLATE_WIRE_ARCHIVE_HPP
#define ISOLATE_WIRE_ARCHIVE_HPP

#include "isolate/detail/config.hpp"
#include "isolate/error.hpp"
#include "isolate/wire/buffer.hpp"
#include "isolate/wire/stream.hpp"

#include "isolate/detail/cereal.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>

namespace isolate::wire {

class output_archive : public cereal::OutputArchive<output_archive, cereal::AllowEmptyClassElision> {
 public:
  explicit output_archive(buffer& out) : OutputArchive(this), out_(&out) {}
  explicit output_archive(byte_sink& sink) : OutputArchive(this), sink_(&sink) {}
  void save_bytes(const void* data, std::size_t size) {
    if (out_ != nullptr) {
      out_->append(data, size);
    } else {
      sink_->write(data, size);
    }
  }

 private:
  buffer* out_ = nullptr;
  byte_sink* sink_ = nullptr;
};

class input_archive : public cereal::InputArchive<input_archive, cereal::AllowEmptyClassElision> {
 public:
  explicit input_archive(std::span<const std::byte> in) : InputArchive(this), in_(in), size_(in.size()) {}
  // A payload that may arrive in pieces (see wire/stream.hpp).
  explicit input_archive(const inbound_payload& in)
      : InputArchive(this), in_(in.first), size_(in.size), rest_(in.rest) {
    if (rest_ == nullptr && in.first.size() != in.size) {
      throw error(errc::protocol_error, "message of " + std::to_string(in.first.size()) + " bytes where " +
                                            std::to_string(in.size) + " were announced");
    }
  }

  void load_bytes(void* data, std::size_t size) {
    if (size > remaining()) {
      throw error(errc::protocol_error, "truncated message: a value needs " + std::to_string(size) +
                                            " bytes but only " + std::to_string(remaining()) + " remain");
    }
    if (size <= in_.size() - position_) {  // the common case: all in the piece at hand
      if (size != 0) std::memcpy(data, in_.data() + position_, size);
      position_ += size;
      return;
    }
    load_across_pieces(static_cast<std::byte*>(data), size);
  }
  std::size_t remaining() const noexcept { return size_ - (done_ + position_); }
  // A message must be read to its last byte; trailing bytes mean the two sides disagree.
  void expect_end() const {
    if (remaining() != 0) {
      throw error(errc::protocol_error, std::to_string(remaining()) + " unexpected trailing bytes in message");
    }
  }

 private:
  void load_across_pieces(std::byte* data, std::size_t size) {
    while (size != 0) {
      if (position_ == in_.size()) {
        if (rest_ == nullptr) break;
        done_ += in_.size();
        in_ = rest_->next();
        position_ = 0;
        if (in_.size() > size_ - done_) break;  // more bytes than announced
        if (in_.empty()) break;
      }
      const std::size_t n = std::min(size, in_.size() - position_);
      std::memcpy(data, in_.data() + position_, n);
      position_ += n;
      data += n;
      size -= n;
    }
    if (size != 0) {
      throw error(errc::protocol_error, "malformed message: its pieces do not add up to the " +
                                            std::to_string(size_) + " bytes announced");
    }
  }

  std::span<const std::byte> in_;  // the piece being read
  std::size_t position_ = 0;       // in in_
  std::size_t size_ = 0;           // of the whole payload
  std::size_t done_ = 0;           // bytes in the pieces before in_
  chunk_source* rest_ = nullptr;
};

template <class T>
  requires(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>)
void CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const T& value) {
  ar.save_bytes(&value, sizeof value);
}
template <class T>
  requires(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>)
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, T& value) {
  ar.load_bytes(&value, sizeof value);
}

// bool is one byte that must be 0 or 1: any other byte pattern would be UB to read as bool.
inline void CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const bool& value) {
  const unsigned char byte = value ? 1 : 0;
  ar.save_bytes(&byte, 1);
}
inline void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, bool& value) {
  unsigned char byte = 0;
  ar.load_bytes(&byte, 1);
  if (byte > 1) throw error(errc::protocol_error, "invalid bool byte " + std::to_string(byte) + " in message");
  value = byte == 1;
}

template <class Archive, class T>
CEREAL_ARCHIVE_RESTRICT(input_archive, output_archive)
CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar, cereal::NameValuePair<T>& pair) {
  ar(pair.value);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const cereal::SizeTag<T>& tag) {
  ar.save_bytes(&tag.size, sizeof tag.size);
}
// A container's element count can never exceed the bytes left (every element
// takes at least one), so a forged count is caught before anything is allocated.
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, cereal::SizeTag<T>& tag) {
  ar.load_bytes(&tag.size, sizeof tag.size);
  if (tag.size > ar.remaining()) {
    throw error(errc::protocol_error, "a container claims " + std::to_string(tag.size) + " elements but only " +
                                          std::to_string(ar.remaining()) + " bytes remain");
  }
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const cereal::BinaryData<T>& data) {
  ar.save_bytes(data.data, static_cast<std::size_t>(data.size));
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, cereal::BinaryData<T>& data) {
  ar.load_bytes(data.data, static_cast<std::size_t>(data.size));
}

}  // namespace isolate::wire

CEREAL_REGISTER_ARCHIVE(isolate::wire::output_archive)
CEREAL_REGISTER_ARCHIVE(isolate::wire::input_archive)
CEREAL_SETUP_ARCHIVE_TRAITS(isolate::wire::input_archive, isolate::wire::output_archive)

#endif
