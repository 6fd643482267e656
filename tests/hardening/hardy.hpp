// A well-behaved plugin for the host-hardening tests: large replies and
// events, calls to host services, and a few ways to end badly on request.
#ifndef ISOLATE_TESTS_HARDENING_HARDY_HPP
#define ISOLATE_TESTS_HARDENING_HARDY_HPP

#include <isolate/interface.hpp>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace hardening_test {

// A recursive type: how deep a reply may nest is bounded.
struct tree {
  std::vector<tree> kids;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(kids);
  }
};

// Served by the host: answers of any size.
ISOLATE_INTERFACE(library, (std::string, text_of_size, (std::uint64_t)));

// Events the plugin sends to the host.
ISOLATE_INTERFACE(notes, (void, note, (std::string const&)));

ISOLATE_INTERFACE(hardy,
                  (int, add, (int, int)),
                  (int, pid, ()),
                  (std::vector<std::uint8_t>, bytes_of_size, (std::uint64_t)),
                  (std::uint64_t, count_bytes, (std::vector<std::uint8_t> const&)),
                  // Asks the host's library for a text of `size` bytes; returns its size.
                  (std::uint64_t, fetch_from_host, (std::uint64_t)),
                  // Sends `count` notes of `size` bytes, then returns.
                  (void, send_notes, (int, std::uint64_t)),
                  // Throws isolate::error with this errc value.
                  (void, throw_isolate_error, (int, std::string const&)),
                  // Makes the host->worker ring invalid (the worker notices on its next read).
                  (void, break_inbound_ring, ()),
                  (std::vector<std::string>, names, ()),
                  (tree, grow, (int)));

}  // namespace hardening_test

#endif
