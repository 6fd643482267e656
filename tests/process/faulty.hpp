// A plugin that misbehaves on request: the failure paths of the process transport.
#ifndef ISOLATE_TESTS_PROCESS_FAULTY_HPP
#define ISOLATE_TESTS_PROCESS_FAULTY_HPP

#include <isolate/interface.hpp>

#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace process_test {

// FNV-1a of the bytes, position-sensitive: a byte lost, doubled or moved changes it.
inline std::uint64_t checksum_of(const std::vector<std::uint8_t>& bytes) {
  std::uint64_t hash = 14695981039346656037ull;
  for (std::uint8_t b : bytes) hash = (hash ^ b) * 1099511628211ull;
  return hash;
}

// Bytes that differ from place to place, the same for the same size.
inline std::vector<std::uint8_t> pattern_of(std::size_t size) {
  std::vector<std::uint8_t> bytes(size);
  std::mt19937 random(static_cast<unsigned>(size));
  for (auto& b : bytes) b = static_cast<std::uint8_t>(random());
  return bytes;
}

// A large payload whose serialisation changes its mind on the second run (a
// large call is measured first, then written straight into the ring): it
// throws, or it writes fewer bytes than it measured.
struct fickle {
  enum class mode : int { steady, throws, shrinks };
  mode how = mode::steady;
  std::vector<std::uint8_t> bytes;
  mutable int saves = 0;

  template <class Archive>
  void save(Archive& ar) const {
    ++saves;
    if (saves == 2 && how == mode::throws) throw std::runtime_error("fickle refused to be written");
    std::vector<std::uint8_t> written = bytes;
    if (saves == 2 && how == mode::shrinks) written.resize(bytes.size() / 2);
    ar(static_cast<int>(how), written);
  }
  template <class Archive>
  void load(Archive& ar) {
    int how_read = 0;
    ar(how_read, bytes);
    how = static_cast<mode>(how_read);
  }
};

ISOLATE_INTERFACE(faulty,
                  (int, add, (int, int)),
                  (int, pid, ()),
                  (void, segfault, ()),
                  (void, abort_now, ()),
                  (void, exit_now, (int)),
                  (void, hang, ()),
                  (int, sleep_ms, (int)),
                  (std::string, text_of_size, (std::uint64_t)),
                  (std::uint64_t, size_of, (std::string const&)),
                  (std::uint64_t, checksum, (std::vector<std::uint8_t> const&)),
                  (std::vector<std::uint8_t>, pattern_of_size, (std::uint64_t)),
                  (std::uint64_t, size_of_fickle, (fickle const&)),
                  (void, scribble_over_shared_memory, ()),
                  (int, meet, (int)));

}  // namespace process_test

#endif
