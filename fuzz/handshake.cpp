// Fuzzes the bodies of the control messages the handshake and the session
// exchange (detail/process/handshake.hpp), decoded as the host and the worker
// decode them: with decode_message<T>.
//
// Input: the message type (u8, modulo the number of types below), then the body.
//
// Promises checked: a body that does not decode gives isolate::error with
// protocol_error (the only failure the host's and worker's callers catch),
// never a Cereal or standard exception; decoding allocates within
// wire::allocation_budget; a body that decodes is read to its end and
// re-encodes to exactly its own bytes (these messages have one encoding).
#include "allocation_meter.hpp"

#include "support.hpp"

#include <isolate/detail/process/handshake.hpp>

#include <exception>
#include <span>
#include <string>

namespace {

using namespace isolate_fuzz;
using isolate::detail::decode_message;
using isolate::detail::encode_message;

template <class Message>
void check(std::span<const std::byte> body, const char* name) {
  const std::size_t before = isolate_fuzz::bytes_requested.load();
  try {
    const Message message = decode_message<Message>(body);
    require_within_budget(isolate_fuzz::bytes_requested.load() - before, body.size(), name);
    const std::vector<std::byte> again = encode_message(message);
    require(again.size() == body.size() && std::equal(again.begin(), again.end(), body.begin()),
            std::string("a decoded ") + name + " encodes to other bytes than it came from");
  } catch (const isolate::error& e) {
    require(e.code() == isolate::errc::protocol_error,
            std::string("decoding a ") + name + " failed with another code than protocol_error: " + e.what());
    require_within_budget(isolate_fuzz::bytes_requested.load() - before, body.size(), name);
  } catch (const std::exception& e) {
    broken(std::string("decoding a ") + name + " threw a non-isolate exception, which its callers do not catch: " +
           e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace d = isolate::detail;
  input in(data, size);
  const auto type = in.take<std::uint8_t>();
  const auto body = in.rest();
  switch (type % 9) {
    case 0: check<d::hello_message>(body, "hello_message"); break;
    case 1: check<d::ready_message>(body, "ready_message"); break;
    case 2: check<d::failed_message>(body, "failed_message"); break;
    case 3: check<d::buffer_message>(body, "buffer_message"); break;
    case 4: check<d::forget_message>(body, "forget_message"); break;
    case 5: check<d::sync_message>(body, "sync_message"); break;
    case 6: check<d::listener_message>(body, "listener_message"); break;
    case 7: check<d::limits_message>(body, "limits_message"); break;
    case 8: check<d::applied_message>(body, "applied_message"); break;
  }
  return 0;
}
