// A plugin's call (or event) to one of its host's services, as the host
// serves it: find the object the frame names, run the call on it on this
// thread (it may call the plugin again), and produce the answer frame with
// the shared buffers the answer names. Sending the answer is the session's.
#ifndef ISOLATE_DETAIL_PROCESS_HOST_SERVICE_CALLS_HPP
#define ISOLATE_DETAIL_PROCESS_HOST_SERVICE_CALLS_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/process/buffer_sharing.hpp"
#include "isolate/services.hpp"
#include "isolate/shared_buffer.hpp"
#include "isolate/wire/buffer.hpp"
#include "isolate/wire/exception_codec.hpp"
#include "isolate/wire/frame.hpp"

#include <fmt/format.h>

#include <cstddef>
#include <string>

namespace isolate::detail {

// The message of an error frame the host's own stub wrote, for a report.
inline std::string message_of_error_frame(const wire::buffer& frame) {
  wire::encoded_exception failure;
  wire::input_archive archive(wire::parse(frame.bytes(), frame.size()).payload);
  archive(failure);
  return failure.message;
}

// The host's answer to one call from the plugin.
struct host_service_answer {
  wire::buffer frame;          // the reply or error frame; empty for an event
  buffer_attachments buffers;  // shared buffers the answer names: the worker must have them first
};

// Runs `call` (a call or event frame from the plugin, parsed) on the service
// it names, or (an object_call frame) on the host object it names among
// those handed to the plugin. False, with `violation` set, when the host
// provides no such service or object, or the call's method or arguments do
// not decode: a protocol violation. Never throws for what the object does:
// its exceptions become the answer (stub::handle).
inline bool serve_host_call(const host_services& services, lent_buffers& lent, capability_table& capabilities,
                            const wire::frame_view& call,
                            std::size_t max_message_size, host_service_answer& answer, std::string& violation) {
  const bool to_object = call.header.kind == wire::frame_kind::object_call;
  const auto& entries = services.entries();
  if (!to_object && (call.header.service == 0 || call.header.service > entries.size())) {
    violation = fmt::format("the plugin broke the protocol: a call to service {}, which the host does not provide",
                            static_cast<unsigned>(call.header.service));
    return false;
  }
  attachment_scope attached;  // shared buffers in the answer
  bool malformed = false;
  {
    resolution_scope from(&lent);  // the plugin may only name buffers lent to it
    capability_scope objects(&capabilities);
    if (!to_object) {
      const auto& service = entries[call.header.service - 1u];
      service.handle(service.object, call, answer.frame, max_message_size, &malformed);
    } else if (!serve_object_call(capabilities, call, answer.frame, max_message_size, &malformed)) {
      violation = "the plugin broke the protocol: a call to a host object it does not hold";
      return false;
    }
  }
  if (malformed) {
    const std::string target = to_object ? std::string("a host object")
                                         : fmt::format("'{}'", entries[call.header.service - 1u].name);
    violation = fmt::format("the plugin was killed because it sent a call to {} that does not decode: {}", target,
                            message_of_error_frame(answer.frame));
    return false;
  }
  if (call.header.kind == wire::frame_kind::event) {
    answer.frame.clear();
    return true;
  }
  answer.buffers = std::move(attached.buffers());
  return true;
}

}  // namespace isolate::detail

#endif
