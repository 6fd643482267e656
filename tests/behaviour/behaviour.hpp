// The interface every transport is tested against: each behaviour test runs
// unchanged under in_process, thread (and process).
#ifndef ISOLATE_TESTS_BEHAVIOUR_HPP
#define ISOLATE_TESTS_BEHAVIOUR_HPP

#include <isolate/interface.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace behaviour_test {

struct point {
  int x = 0;
  int y = 0;
  std::string label;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x, y, label);
  }
  bool operator==(const point&) const = default;
};

struct record {
  std::vector<point> points;
  std::optional<std::string> note;
  std::variant<int, std::string, point> tagged;
  std::map<std::string, std::vector<int>> groups;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(points, note, tagged, groups);
  }
  bool operator==(const record&) const = default;
};

// Thrown by the plugin; the host registers it, so it arrives as itself.
struct plugin_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Thrown by the plugin and never registered: it arrives as isolate::remote_error.
struct unregistered_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

ISOLATE_INTERFACE(behaviour,
                  (int, add, (int, int)),
                  (std::string, greet, (std::string const&)),
                  (void, remember, (std::string)),
                  (std::vector<std::string>, remembered, ()),
                  (record, transform, (record const&)),
                  ((std::map<std::string, int>), count_words, (std::vector<std::string> const&)),
                  ((std::optional<int>), maybe, (bool)),
                  ((std::variant<int, std::string>), either, (bool)),
                  (bool, negate, (bool)),
                  (double, scale, (double, float)),
                  (std::vector<std::uint8_t>, echo_bytes, (std::vector<std::uint8_t> const&)),
                  (void, throw_standard, (std::string const&)),
                  (void, throw_custom, (std::string const&)),
                  (void, throw_isolate_error, ()),
                  (void, throw_non_standard, ()),
                  (int, serial_counter, ()),
                  (int, calls, ()));

std::unique_ptr<behaviour> make_behaviour();

}  // namespace behaviour_test

#endif
