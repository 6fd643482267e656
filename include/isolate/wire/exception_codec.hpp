// Carries an exception across the boundary as (code, type name, message).
#ifndef ISOLATE_WIRE_EXCEPTION_CODEC_HPP
#define ISOLATE_WIRE_EXCEPTION_CODEC_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/cereal.hpp"
#include "isolate/error.hpp"
#include "isolate/exceptions.hpp"
#include "isolate/wire/archive.hpp"

#include <cereal/types/string.hpp>

#include <cstdint>
#include <exception>
#include <string>
#include <utility>

namespace isolate::wire {

struct encoded_exception {
  std::int32_t code = 0;  // an isolate::errc value, or 0 when the exception is not an isolate::error
  std::string type_name;
  std::string message;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(code, type_name, message);
  }
};

// system_error's what() is "<message>: <code text>"; the suffix comes back off
// so the message does not grow each time it crosses a boundary.
using detail::message_of;

inline encoded_exception describe(std::exception_ptr failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const remote_error& e) {
    return {static_cast<std::int32_t>(errc::remote_exception), e.type_name(), e.message()};
  } catch (const error& e) {
    const bool ours = e.code().category() == error_category();
    return {ours ? e.code().value() : static_cast<std::int32_t>(errc::remote_exception), "isolate::error",
            message_of(e)};
  } catch (const std::exception& e) {
    return {0, detail::type_name_of(e), e.what()};
  } catch (...) {
    return {0, "unknown", "an exception not derived from std::exception was thrown"};
  }
}

inline void encode_exception(buffer& out, std::exception_ptr failure) {
  output_archive archive(out);
  archive(describe(failure));
}

// The name of an isolate::errc value, as the peer sent it.
inline std::string code_name(std::int32_t code) {
  switch (static_cast<errc>(code)) {
    case errc::protocol_error: return "protocol_error";
    case errc::plugin_crashed: return "plugin_crashed";
    case errc::timeout: return "timeout";
    case errc::fingerprint_mismatch: return "fingerprint_mismatch";
    case errc::load_failed: return "load_failed";
    case errc::message_too_large: return "message_too_large";
    case errc::remote_exception: return "remote_exception";
    case errc::plugin_closed: return "plugin_closed";
    case errc::unsupported: return "unsupported";
    case errc::quarantined: return "quarantined";
    case errc::limit_unenforceable: return "limit_unenforceable";
    case errc::limit_exceeded: return "limit_exceeded";
    case errc::unknown_plugin: return "unknown_plugin";
    case errc::duplicate_plugin: return "duplicate_plugin";
    case errc::wrong_interface: return "wrong_interface";
    case errc::unknown_method: return "unknown_method";
    case errc::signature_mismatch: return "signature_mismatch";
    case errc::load_refused: return "load_refused";
  }
  return "code " + std::to_string(code);
}

// The peer chooses the text; at most `most` bytes of it become an exception,
// cut at a character boundary (UTF-8) and marked as cut.
inline std::string bounded(std::string text, std::size_t most) {
  if (text.size() <= most) return text;
  std::size_t cut = most;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  const std::size_t dropped = text.size() - cut;
  text.resize(cut);
  return text + "... [" + std::to_string(dropped) + " more bytes cut]";
}

// What an isolate::error from the peer says once it is a remote_error: its
// code, unless that is remote_exception, which it arrives as anyway (an error
// relayed by the peer thus keeps the first code named, once).
inline std::string peer_error_message(std::int32_t code, const std::string& message) {
  if (code == static_cast<std::int32_t>(errc::remote_exception)) return message;
  return "the peer threw isolate::error (" + code_name(code) + "): " + message;
}

// Rethrows what the peer sent: as the same type when this side knows it, else
// as isolate::remote_error. An isolate::error from the peer arrives as a
// remote_error too, whose type_name() is "isolate::error" and whose message
// names the peer's code: isolate's own codes (timeout, plugin_crashed,
// quarantined...) say what this side observed, and a plugin must not be able
// to forge them.
[[noreturn]] inline void rethrow(const encoded_exception& e) {
  std::string type_name = bounded(e.type_name, ISOLATE_MAX_REMOTE_TYPE_NAME);
  const std::string message = bounded(e.message, ISOLATE_MAX_REMOTE_MESSAGE);
  if (type_name == "isolate::error") throw remote_error(std::move(type_name), peer_error_message(e.code, message));
  detail::exception_registry::instance().throw_if_known(type_name, message);
  throw remote_error(std::move(type_name), message);
}

[[noreturn]] inline void rethrow_encoded(std::span<const std::byte> payload) {
  encoded_exception e;
  input_archive archive(payload);
  archive(e);
  archive.expect_end();
  rethrow(e);
}

}  // namespace isolate::wire

#endif
