// Cereal archives for isolate's wire format: the binary layout of Cereal's
// BinaryArchive, written into a wire::buffer (or a byte_sink) and read from
// bytes (or a chunk_source) without trusting them. Reading checks every length
// against the bytes that remain, charges every allocation to a budget that
// grows with the message's size (wire/bounded_loads.hpp) and limits how
// deeply values nest, so a hostile or corrupted message gives
// errc::protocol_error instead of a huge allocation, a stack overflow, an
// out-of-bounds read or an invalid bool. Every byte is copied out before
// it is looked at, so bytes read straight from shared memory cannot change
// after they were checked.
#ifndef ISOLATE_WIRE_ARCHIVE_HPP
#define ISOLATE_WIRE_ARCHIVE_HPP

#include "isolate/detail/config.hpp"
#include "isolate/error.hpp"
#include "isolate/wire/buffer.hpp"
#include "isolate/wire/stream.hpp"

#include "isolate/detail/cereal.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

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
  // True while only measuring a payload (payload_size): a value that
  // registers something when written (isolate::capability) must not.
  bool measuring() const noexcept { return sink_ != nullptr && sink_->counts_only(); }

 private:
  buffer* out_ = nullptr;
  byte_sink* sink_ = nullptr;
};

// One address per type, to tell types apart without RTTI.
template <class T>
inline constexpr char shared_type_tag = 0;

// The most a message of `payload` bytes may make its decoder allocate
// (ISOLATE_DECODE_ALLOCATION_FACTOR and _SLACK in detail/config.hpp).
constexpr std::size_t allocation_budget(std::size_t payload) noexcept {
  constexpr std::size_t factor = ISOLATE_DECODE_ALLOCATION_FACTOR;
  constexpr std::size_t slack = ISOLATE_DECODE_ALLOCATION_SLACK;
  constexpr std::size_t most = static_cast<std::size_t>(-1);
  return payload > (most - slack) / factor ? most : factor * payload + slack;
}

// Reads a message. Thread safety: one thread at a time; after it has thrown,
// an archive must not be used again.
class input_archive : public cereal::InputArchive<input_archive, cereal::AllowEmptyClassElision> {
 public:
  explicit input_archive(std::span<const std::byte> in)
      : InputArchive(this), in_(in), size_(in.size()), budget_(allocation_budget(in.size())), left_(budget_) {}
  // A payload that may arrive in pieces (see wire/stream.hpp); its budget
  // comes from the size announced for the whole of it.
  explicit input_archive(const inbound_payload& in)
      : InputArchive(this),
        in_(in.first),
        size_(in.size),
        rest_(in.rest),
        budget_(allocation_budget(in.size)),
        left_(budget_) {
    if (rest_ == nullptr && in.first.size() != in.size) {
      throw error(errc::protocol_error, "message of " + std::to_string(in.first.size()) + " bytes where " +
                                            std::to_string(in.size) + " were announced");
    }
  }

  // Takes `count` allocations of `size` bytes each from the budget; called
  // before the decoder makes them, so a message that would need more than its
  // budget is refused before anything is allocated. `what` names the type.
  void charge(std::size_t count, std::size_t size, const char* what) {
    if (size != 0 && count > left_ / size) refuse_allocation(count, size, what);
    left_ -= count * size;
  }

  // Called as a value that can hold others starts and ends (see prologue()
  // below), so that nesting beyond ISOLATE_MAX_DECODE_DEPTH is refused before
  // the recursion exhausts the stack.
  void enter_value() {
    if (++depth_ > ISOLATE_MAX_DECODE_DEPTH) {
      throw error(errc::protocol_error, "message nests values more than " + std::to_string(ISOLATE_MAX_DECODE_DEPTH) +
                                            " levels deep (ISOLATE_MAX_DECODE_DEPTH)");
    }
  }
  void leave_value() noexcept { --depth_; }

  // A shared pointer names its object by id, and a later one may name an
  // object read before, which Cereal then casts to the later pointer's type.
  // So the type of each object is kept (shared_type_tag), and a pointer naming
  // an object of another type, or none, is refused rather than made to point
  // at the wrong type.
  void remember_shared_type(std::uint32_t id, const void* type) {
    shared_types_.insert_or_assign(id & ~cereal::detail::msb_32bit, type);
  }
  void check_shared_type(std::uint32_t id, const void* type) const {
    const auto found = shared_types_.find(id);
    if (found == shared_types_.end()) {
      throw error(errc::protocol_error, "a shared pointer refers to object " + std::to_string(id) +
                                            ", which the message has not sent");
    }
    if (found->second != type) {
      throw error(errc::protocol_error, "a shared pointer refers to object " + std::to_string(id) +
                                            ", which the message sent as another type");
    }
  }

  // A shared object is registered before its fields are read, so a pointer
  // among them may name it: a cycle of shared_ptrs that no one frees (a
  // worker could make the host leak a reply's worth per reply). So the
  // objects being read are kept, and a shared_ptr naming one is refused; a
  // weak_ptr, which makes no cycle, may (it says so just before: next_is_weak).
  void begin_shared(std::uint32_t id) { unfinished_.push_back(id & ~cereal::detail::msb_32bit); }
  void end_shared() noexcept { unfinished_.pop_back(); }
  void next_is_weak() noexcept { next_weak_ = true; }
  bool take_weak() noexcept { return std::exchange(next_weak_, false); }
  void check_finished(std::uint32_t id, bool weak) const {
    if (weak || std::find(unfinished_.begin(), unfinished_.end(), id) == unfinished_.end()) return;
    throw error(errc::protocol_error, "a shared pointer refers to object " + std::to_string(id) +
                                          ", which contains it: such a cycle of shared pointers would never be freed");
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
  // The next `size` bytes where they lie, if they are all in one piece (they
  // are then read); null otherwise, and nothing is read.
  const std::byte* take_in_place(std::size_t size) {
    // The piece at hand is read: its successor holds the bytes, or starts them.
    if (position_ == in_.size() && rest_ != nullptr && size != 0 && size <= remaining() && !next_piece()) {
      pieces_do_not_add_up();
    }
    if (size > in_.size() - position_) return nullptr;
    const std::byte* at = in_.data() + position_;
    position_ += size;
    return at;
  }
  std::size_t remaining() const noexcept { return size_ - (done_ + position_); }
  // A message must be read to its last byte; trailing bytes mean the two sides disagree.
  void expect_end() const {
    if (remaining() != 0) {
      throw error(errc::protocol_error, std::to_string(remaining()) + " unexpected trailing bytes in message");
    }
  }

 private:
  [[noreturn, gnu::cold, gnu::noinline]] void refuse_allocation(std::size_t count, std::size_t size,
                                                                const char* what) const {
    throw error(errc::protocol_error, std::string("decoding a ") + what + " would allocate " + std::to_string(count) +
                                          " x " + std::to_string(size) + " bytes, more than the " +
                                          std::to_string(left_) + " left of the " + std::to_string(budget_) +
                                          " bytes a message of " + std::to_string(size_) +
                                          " bytes may allocate (ISOLATE_DECODE_ALLOCATION_FACTOR, _SLACK)");
  }

  void load_across_pieces(std::byte* data, std::size_t size) {
    while (size != 0) {
      if (position_ == in_.size() && (rest_ == nullptr || !next_piece())) break;
      const std::size_t n = std::min(size, in_.size() - position_);
      std::memcpy(data, in_.data() + position_, n);
      position_ += n;
      data += n;
      size -= n;
    }
    if (size != 0) pieces_do_not_add_up();
  }
  // Moves on to the next piece (the one at hand is read); false if there is
  // none, or it holds more bytes than the payload has left.
  bool next_piece() {
    done_ += in_.size();
    in_ = rest_->next();
    position_ = 0;
    return !in_.empty() && in_.size() <= size_ - done_;
  }
  [[noreturn, gnu::cold, gnu::noinline]] void pieces_do_not_add_up() const {
    throw error(errc::protocol_error, "malformed message: its pieces do not add up to the " + std::to_string(size_) +
                                          " bytes announced");
  }

  std::span<const std::byte> in_;  // the piece being read
  std::size_t position_ = 0;       // in in_
  std::size_t size_ = 0;           // of the whole payload
  std::size_t done_ = 0;           // bytes in the pieces before in_
  chunk_source* rest_ = nullptr;
  std::size_t budget_;             // bytes decoding this message may allocate
  std::size_t left_;               // of budget_
  std::size_t depth_ = 0;          // values being read, one inside the other
  std::unordered_map<std::uint32_t, const void*> shared_types_;  // shared object id -> shared_type_tag
  std::vector<std::uint32_t> unfinished_;  // shared objects whose fields are being read (at most the depth limit)
  bool next_weak_ = false;                 // the shared_ptr read next is a weak_ptr's
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
// takes at least one), a first check on a forged count; what the elements
// would allocate is charged to the budget by the loads in bounded_loads.hpp.
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, cereal::SizeTag<T>& tag) {
  ar.load_bytes(&tag.size, sizeof tag.size);
  if (tag.size > ar.remaining()) {
    throw error(errc::protocol_error, "a container claims " + std::to_string(tag.size) + " elements but only " +
                                          std::to_string(ar.remaining()) + " bytes remain");
  }
}

// Cereal calls prologue() before and epilogue() after every value it reads,
// whatever its type and whoever wrote its load (Cereal, isolate, the user), so
// counting levels here catches nesting through user structs, containers,
// maps, optionals, variants and smart pointers alike. Each struct, container
// or smart pointer is a level. Cereal's wrappers around a value (a name, a
// size, raw bytes, a smart pointer's state) are not, nor are the standard
// types that hold values in place (optional, variant, pair, tuple): nothing
// can nest without end through those alone, since a type cannot hold itself
// in place. Arithmetic values hold nothing, so they cost nothing.
template <class T>
inline constexpr bool adds_no_level = false;
template <class T>
inline constexpr bool adds_no_level<cereal::NameValuePair<T>> = true;
template <class T>
inline constexpr bool adds_no_level<cereal::SizeTag<T>> = true;
template <class T>
inline constexpr bool adds_no_level<cereal::BinaryData<T>> = true;
template <class T>
inline constexpr bool adds_no_level<std::optional<T>> = true;
template <class... T>
inline constexpr bool adds_no_level<std::variant<T...>> = true;
template <class T, class U>
inline constexpr bool adds_no_level<std::pair<T, U>> = true;
template <class... T>
inline constexpr bool adds_no_level<std::tuple<T...>> = true;

template <class T>
inline constexpr bool is_nesting_level = std::is_class_v<T> && !adds_no_level<T>;

template <class T>
void prologue(input_archive& ar, const T&) {
  if constexpr (is_nesting_level<T>) ar.enter_value();
}
template <class T>
void epilogue(input_archive& ar, const T&) noexcept {
  if constexpr (is_nesting_level<T>) ar.leave_value();
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(output_archive& ar, const cereal::BinaryData<T>& data) {
  ar.save_bytes(data.data, static_cast<std::size_t>(data.size));
}
// Cereal reads arrays of arithmetic values (std::array, C arrays, valarray)
// as raw bytes, bools included: those bytes must be 0 or 1 too.
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, cereal::BinaryData<T>& data) {
  const auto size = static_cast<std::size_t>(data.size);
  ar.load_bytes(data.data, size);
  using element = std::remove_cv_t<std::remove_all_extents_t<std::remove_pointer_t<std::remove_cvref_t<T>>>>;
  if constexpr (std::is_same_v<element, bool>) {
    const auto* bytes = static_cast<const unsigned char*>(data.data);
    for (std::size_t i = 0; i < size; ++i) {
      if (bytes[i] > 1) {
        throw error(errc::protocol_error, "invalid bool byte " + std::to_string(bytes[i]) + " in message");
      }
    }
  }
}

}  // namespace isolate::wire

#include "isolate/wire/bounded_loads.hpp"

CEREAL_REGISTER_ARCHIVE(isolate::wire::output_archive)
CEREAL_REGISTER_ARCHIVE(isolate::wire::input_archive)
CEREAL_SETUP_ARCHIVE_TRAITS(isolate::wire::input_archive, isolate::wire::output_archive)

#endif
