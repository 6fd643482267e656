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

// system_error's what() is "<message>: <code text>"; take the suffix back off
// so the message does not grow each time it crosses a boundary.
inline std::string message_of(const std::system_error& e) {
  std::string what = e.what();
  const std::string suffix = ": " + e.code().message();
  if (what.size() >= suffix.size() && what.compare(what.size() - suffix.size(), suffix.size(), suffix) == 0) {
    what.resize(what.size() - suffix.size());
  }
  return what;
}

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

// Rethrows what the peer sent: as the same type when the host knows it,
// as isolate::error for isolate's own codes, else as isolate::remote_error.
[[noreturn]] inline void rethrow(const encoded_exception& e) {
  if (e.type_name == "isolate::error") {
    const bool known = e.code >= static_cast<std::int32_t>(errc::protocol_error) &&
                       e.code <= static_cast<std::int32_t>(errc::quarantined);
    throw error(known ? static_cast<errc>(e.code) : errc::remote_exception, e.message);
  }
  detail::exception_registry::instance().throw_if_known(e.type_name, e.message);
  throw remote_error(e.type_name, e.message);
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
