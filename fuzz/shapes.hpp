// The interface stub_decoding fuzzes: argument and result types chosen to
// reach every load in wire/bounded_loads.hpp, nested, recursive (a tree that
// holds itself through a vector, a unique_ptr, a shared_ptr and an optional
// map) and container-heavy. make_seeds encodes calls and replies of it.
#ifndef ISOLATE_FUZZ_SHAPES_HPP
#define ISOLATE_FUZZ_SHAPES_HPP

#include <isolate/interface.hpp>

#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace isolate_fuzz {

// A value of any of the shapes a plugin's data takes.
using scalar = std::variant<std::monostate, bool, std::int64_t, double, std::string, std::vector<std::uint8_t>>;

// Recursive every way Cereal can recurse.
struct tree {
  std::string label;
  scalar value;
  std::vector<tree> children;
  std::unique_ptr<tree> next;
  std::shared_ptr<tree> shared;  // several nodes may share one (Cereal's ids)
  std::optional<std::map<std::string, std::shared_ptr<tree>>> index;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(label, value, children, next, shared, index);
  }
};

// Containers of containers.
struct catalogue {
  std::map<std::string, std::vector<std::optional<std::int32_t>>> columns;
  std::multimap<std::int16_t, std::set<std::string>> groups;
  std::deque<std::list<std::pair<std::string, double>>> history;
  std::vector<std::vector<bool>> flags;
  std::multiset<std::uint64_t> ids;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(columns, groups, history, flags, ids);
  }
};

// Hash tables iterate in an order their insertion history decides, so a
// decoded value need not encode to the bytes it came from.
struct hashed {
  std::unordered_map<std::string, std::unordered_set<std::int32_t>> buckets;
  std::unordered_multimap<std::uint8_t, std::string> pairs;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(buckets, pairs);
  }
};

}  // namespace isolate_fuzz

// A tree and a catalogue are move-only or large: taken by const reference.
ISOLATE_INTERFACE(fuzz_shapes,
                  (int, add, (int, int)),
                  (isolate_fuzz::tree, grow, (const isolate_fuzz::tree&, std::uint8_t)),
                  (isolate_fuzz::catalogue, merge, (const isolate_fuzz::catalogue&, const isolate_fuzz::catalogue&)),
                  (isolate_fuzz::scalar, pick, (isolate_fuzz::scalar, (std::tuple<bool, std::string, std::optional<double>>))),
                  (isolate_fuzz::hashed, rehash, (const isolate_fuzz::hashed&)),
                  (std::shared_ptr<isolate_fuzz::tree>, share, (std::shared_ptr<isolate_fuzz::tree>, std::shared_ptr<isolate_fuzz::tree>)),
                  (void, notify, (std::string, bool)));

#endif
