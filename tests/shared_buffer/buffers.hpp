// A plugin that reads, writes, keeps and returns shared buffers, and one that
// misbehaves with them on request: the paths of isolate::shared_buffer.
#ifndef ISOLATE_TESTS_SHARED_BUFFER_BUFFERS_HPP
#define ISOLATE_TESTS_SHARED_BUFFER_BUFFERS_HPP

#include <isolate/interface.hpp>
#include <isolate/shared_buffer.hpp>

#include <cstdint>

namespace shared_buffer_test {

// Served by the host.
ISOLATE_INTERFACE(buffer_host,
                  // The sum of the bytes; also records whether it is the host's own buffer.
                  (std::uint64_t, checksum_on_host, (isolate::shared_buffer const&)),
                  // A buffer the host makes and fills with 3s.
                  (isolate::shared_buffer, buffer_from_host, (std::uint64_t)));

// The plugin.
ISOLATE_INTERFACE(buffer_user,
                  (std::uint64_t, checksum, (isolate::shared_buffer const&)),
                  (void, fill, (isolate::shared_buffer, std::uint8_t)),  // by value
                  // Where the plugin sees the buffer mapped.
                  (std::uint64_t, address_of, (isolate::shared_buffer const&)),
                  (std::uint64_t, sum_of_two, (isolate::shared_buffer const&, isolate::shared_buffer const&)),
                  (isolate::shared_buffer, echo, (isolate::shared_buffer const&)),
                  (void, keep, (isolate::shared_buffer const&)),
                  (void, drop_kept, ()),
                  (isolate::shared_buffer, return_kept, ()),
                  (std::uint64_t, checksum_kept, ()),
                  // Hostile: makes the buffer's mapping writable; returns mprotect's errno (0: it worked).
                  (int, make_writable, (isolate::shared_buffer const&)),
                  // Hostile: a second mapping of the buffer (mremap, old size 0), kept; returns the errno (0: made).
                  (int, duplicate_mapping, (isolate::shared_buffer const&)),
                  (std::uint64_t, pass_to_host, (isolate::shared_buffer const&)),
                  (std::uint64_t, checksum_of_host_buffer, (std::uint64_t)),
                  // Hostile: a buffer the plugin made itself, which the host never gave it.
                  (isolate::shared_buffer, make_own, (std::uint64_t)),
                  // Hostile: the same, passed to a host service.
                  (std::uint64_t, pass_own_to_host, (std::uint64_t)),
                  // Hostile: the kept buffer's id with another size.
                  (isolate::shared_buffer, resize_kept, (std::uint64_t)),
                  (int, pid, ()),
                  (void, crash, ()));

}  // namespace shared_buffer_test

#endif
