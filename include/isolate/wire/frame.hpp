// The frame: a 16-byte header followed by a Cereal payload. Every transport
// that marshals (thread, process) moves these; parse() checks a frame from an
// untrusted peer before anything reads its payload.
#ifndef ISOLATE_WIRE_FRAME_HPP
#define ISOLATE_WIRE_FRAME_HPP

#include "isolate/detail/config.hpp"
#include "isolate/error.hpp"
#include "isolate/wire/buffer.hpp"

#include <cstdint>
#include <cstring>
#include <span>
#include <string>

namespace isolate::wire {

enum class frame_kind : std::uint8_t {
  call = 1,   // host -> plugin (or plugin -> host service): invoke a method
  reply = 2,  // the method returned; payload is the return value
  error = 3,  // the method threw or the call failed; payload is an encoded exception
  event = 4,  // one-way notification; no reply
  // host -> plugin: a call whose reply carries what it cost after its
  // payload (detail/call_accounting.hpp)
  accounted_call = 5,
  // host -> plugin: run the plugin's on_load() (method lifecycle_load) once
  // the worker is ready, or its on_stop() (lifecycle_stop) before a graceful
  // stop. The reply is empty, or an error with what on_load threw. The host
  // serves the plugin's calls to it meanwhile, as during any call.
  lifecycle = 6,
  // Either way: a call to an object one side handed the other
  // (isolate::capability); the payload starts with the object's 8-byte id
  // (detail/capability_table.hpp), then the arguments. Answered as a call.
  object_call = 7,
  // Either way: the sender dropped its proxy of the object whose 8-byte id
  // is the payload. From the host it is answered (empty reply); from a
  // plugin it is one-way.
  release = 8,
};
inline constexpr std::uint16_t lifecycle_load = 0;
inline constexpr std::uint16_t lifecycle_stop = 1;

inline bool is_known(frame_kind kind) noexcept {
  return kind >= frame_kind::call && kind <= frame_kind::release;
}

// Fixed layout, identical in both processes: sizes and offsets are checked by static_assert.
struct frame_header {
  std::uint32_t size;     // payload bytes after the header
  frame_kind kind;
  std::uint8_t service;   // 0: the plugin's own interface; n > 0: the host service registered n-th
  std::uint16_t method;   // index in the interface's method table
  std::uint64_t call_id;  // matches a reply to its call; chosen by the caller
};
static_assert(sizeof(frame_header) == 16 && alignof(frame_header) == 8);
static_assert(std::is_trivially_copyable_v<frame_header>);

inline constexpr std::size_t header_size = sizeof(frame_header);

// A parsed frame: a copy of the header and a view of the payload.
struct frame_view {
  frame_header header;
  std::span<const std::byte> payload;
};

// Starts a frame in `out`: reserves the header, which finish_frame() fills in.
inline void begin_frame(buffer& out) { out.resize(header_size); }

inline void finish_frame(buffer& out, frame_kind kind, std::uint16_t method, std::uint64_t call_id,
                         std::uint8_t service = 0) {
  const frame_header header{static_cast<std::uint32_t>(out.size() - header_size), kind, service, method, call_id};
  std::memcpy(out.data(), &header, header_size);
}

inline void set_call_id(buffer& frame, std::uint64_t call_id) {
  std::memcpy(frame.data() + offsetof(frame_header, call_id), &call_id, sizeof call_id);
}

// The failures of parse_header and parse, kept out of line so that the checks
// themselves inline into every transport's path (a handful of instructions).
[[noreturn, gnu::cold, gnu::noinline]] inline void throw_short_frame(std::size_t size) {
  throw error(errc::protocol_error, "frame of " + std::to_string(size) + " bytes is shorter than its header");
}
[[noreturn, gnu::cold, gnu::noinline]] inline void throw_unknown_kind(frame_kind kind) {
  throw error(errc::protocol_error, "unknown frame kind " + std::to_string(static_cast<unsigned>(kind)));
}
[[noreturn, gnu::cold, gnu::noinline]] inline void throw_too_large(std::size_t size, std::size_t max_payload) {
  throw error(errc::message_too_large, "frame payload of " + std::to_string(size) + " bytes exceeds the maximum of " +
                                           std::to_string(max_payload));
}
[[noreturn, gnu::cold, gnu::noinline]] inline void throw_size_mismatch(std::size_t said, std::size_t arrived) {
  throw error(errc::protocol_error, "frame header says " + std::to_string(said) + " payload bytes but " +
                                        std::to_string(arrived) + " arrived");
}

// Checks the header at the start of `bytes`: a known kind, a payload no bigger
// than max_payload, and no more bytes after the header than the payload has.
inline frame_header parse_header(std::span<const std::byte> bytes, std::size_t max_payload) {
  if (bytes.size() < header_size) throw_short_frame(bytes.size());
  frame_header header;
  std::memcpy(&header, bytes.data(), header_size);
  if (!is_known(header.kind)) throw_unknown_kind(header.kind);
  if (header.size > max_payload) throw_too_large(header.size, max_payload);
  if (header.size < bytes.size() - header_size) throw_size_mismatch(header.size, bytes.size() - header_size);
  return header;
}

// Checks that `bytes` hold exactly one well-formed frame no bigger than max_payload.
inline frame_view parse(std::span<const std::byte> bytes, std::size_t max_payload) {
  const frame_header header = parse_header(bytes, max_payload);
  if (header.size != bytes.size() - header_size) throw_size_mismatch(header.size, bytes.size() - header_size);
  return {header, bytes.subspan(header_size)};
}

}  // namespace isolate::wire

#endif
