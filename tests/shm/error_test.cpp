#include "isolate/shm/error.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

using isolate::shm::errc;

TEST_CASE("shm error codes have a category, messages and portable conditions") {
  std::error_code const ec = errc::corrupted;
  CHECK(ec.category() == isolate::shm::shm_category());
  CHECK(std::string(ec.category().name()) == "isolate.shm");
  CHECK(ec.message() == "peer corrupted the shared-memory ring");
  CHECK(ec == std::errc::bad_message);
  CHECK(std::error_code(errc::timed_out) == std::errc::timed_out);
  CHECK(std::error_code(errc::would_block) == std::errc::operation_would_block);
  CHECK(std::error_code(errc::closed) == std::errc::operation_canceled);
  CHECK(std::error_code(errc::too_large) == std::errc::message_size);
  CHECK(std::error_code(errc::not_sealed) == std::errc::invalid_argument);
  for (int value = 1; value <= static_cast<int>(errc::not_sealed); ++value) {
    CHECK_FALSE(isolate::shm::shm_category().message(value).empty());
  }
  CHECK(isolate::shm::shm_category().message(999) == "unknown isolate.shm error");
}
