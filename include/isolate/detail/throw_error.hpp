// The one way an error_code becomes an exception: an isolate::error carrying
// the code and what was being done (Asio's detail/throw_error.hpp). Blocking
// operations come in two forms, one taking `std::error_code&` and one built
// on it with this helper.
#ifndef ISOLATE_DETAIL_THROW_ERROR_HPP
#define ISOLATE_DETAIL_THROW_ERROR_HPP

#include "isolate/detail/config.hpp"
#include "isolate/error.hpp"

#include <string>
#include <system_error>

namespace isolate::detail {

[[noreturn]] inline void throw_error(std::error_code ec, const std::string& what) { throw error(ec, what); }

inline void throw_if_error(std::error_code ec, const std::string& what) {
  if (ec) throw_error(ec, what);
}

}  // namespace isolate::detail

#endif
