// The signature an asynchronous call completes with: the failure, if any,
// then the result (none for void).
#ifndef ISOLATE_DETAIL_COMPLETION_SIGNATURE_HPP
#define ISOLATE_DETAIL_COMPLETION_SIGNATURE_HPP

#include <exception>

namespace isolate::detail {

template <class Result>
struct completion_signature {
  using type = void(std::exception_ptr, Result);
};
template <>
struct completion_signature<void> {
  using type = void(std::exception_ptr);
};

}  // namespace isolate::detail

#endif
