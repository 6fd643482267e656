// Errors of the shared-memory layer: what a ring or region operation reports
// when it cannot do what was asked.
#ifndef ISOLATE_SHM_ERROR_HPP
#define ISOLATE_SHM_ERROR_HPP

#include "isolate/detail/config.hpp"

#include <string>
#include <system_error>

namespace isolate::shm {

enum class errc {
  would_block = 1,  // try_*: no record to read, or no room to write, right now
  timed_out,        // a blocking operation reached its deadline
  closed,           // close() was called on this endpoint (shutdown, or the peer died)
  too_large,        // the record is larger than max_record_size()
  corrupted,        // the peer broke the ring protocol; the endpoint stays unusable
  bad_layout,       // attach: magic, version, capacity or area size do not match
  bad_size,         // region attach: the file's size is not the expected one
  not_sealed,       // region attach: the file lacks the seals that keep its size fixed
};

namespace detail {

class shm_category_impl final : public std::error_category {
 public:
  char const* name() const noexcept override { return "isolate.shm"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::would_block: return "ring has no record or no room right now";
      case errc::timed_out: return "shared-memory wait timed out";
      case errc::closed: return "ring endpoint closed";
      case errc::too_large: return "record larger than the ring accepts";
      case errc::corrupted: return "peer corrupted the shared-memory ring";
      case errc::bad_layout: return "shared-memory ring layout mismatch";
      case errc::bad_size: return "shared-memory region has an unexpected size";
      case errc::not_sealed: return "shared-memory region is not sealed against resizing";
    }
    return "unknown isolate.shm error";
  }

  std::error_condition default_error_condition(int value) const noexcept override {
    switch (static_cast<errc>(value)) {
      case errc::would_block: return std::errc::operation_would_block;
      case errc::timed_out: return std::errc::timed_out;
      case errc::closed: return std::errc::operation_canceled;
      case errc::too_large: return std::errc::message_size;
      case errc::corrupted: return std::errc::bad_message;
      case errc::bad_layout:
      case errc::bad_size:
      case errc::not_sealed: return std::errc::invalid_argument;
    }
    return {value, *this};
  }
};

}  // namespace detail

inline std::error_category const& shm_category() noexcept {
  static detail::shm_category_impl const category;
  return category;
}

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), shm_category()};
}

}  // namespace isolate::shm

template <>
struct std::is_error_code_enum<isolate::shm::errc> : std::true_type {};

#endif
