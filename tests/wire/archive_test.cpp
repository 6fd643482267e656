#include "isolate/wire/archive.hpp"

#include "isolate/wire/types.hpp"

#include <doctest/doctest.h>

#include "../support/allocation_meter.hpp"
#include "../support/failure.hpp"

#include <cereal/types/valarray.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <forward_list>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <stack>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <valarray>
#include <variant>
#include <vector>

using isolate_test::bytes_allocated_by;
using isolate_test::contains;
using isolate_test::failure_of;

namespace {

struct nested {
  std::string name;
  std::vector<std::optional<int>> values;
  std::map<std::string, std::variant<int, std::string>> attributes;
  bool flag = false;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, values, attributes, flag);
  }
  bool operator==(const nested&) const = default;
};

template <class T>
isolate::wire::buffer encode(const T& value) {
  isolate::wire::buffer out;
  isolate::wire::output_archive archive(out);
  archive(value);
  return out;
}

template <class T>
T decode(std::span<const std::byte> bytes) {
  T value{};
  isolate::wire::input_archive archive(bytes);
  archive(value);
  archive.expect_end();
  return value;
}

template <class T>
bool round_trip_equal(const T& value) {
  return decode<T>(encode(value).bytes()) == value;
}

template <class T>
void append(isolate::wire::buffer& out, const T& value) {
  out.append(&value, sizeof value);
}

// An element that takes two bytes on the wire (its tag, and the byte saying
// its optional is empty) but over a mebibyte in memory.
struct heavy {
  std::uint8_t tag = 0;
  std::optional<std::array<char, 1 << 20>> padding;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(tag, padding);
  }
  auto operator<=>(const heavy& other) const { return tag <=> other.tag; }
  bool operator==(const heavy& other) const { return tag == other.tag; }
};
struct heavy_hash {
  std::size_t operator()(const heavy& h) const noexcept { return h.tag; }
};

// Types without a default constructor, which Cereal builds through
// load_and_construct when a smart pointer owns them.
struct made_by_cereal {
  explicit made_by_cereal(int v) : value(v) {}
  int value;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(value);
  }
  template <class Archive>
  static void load_and_construct(Archive& ar, cereal::construct<made_by_cereal>& construct) {
    int v = 0;
    ar(v);
    construct(v);
  }
};
struct heavy_made_by_cereal {
  explicit heavy_made_by_cereal(heavy h) : content(std::move(h)) {}
  heavy content;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(content);
  }
  template <class Archive>
  static void load_and_construct(Archive& ar, cereal::construct<heavy_made_by_cereal>& construct) {
    heavy h;
    ar(h);
    construct(std::move(h));
  }
};

// A struct that holds a deque by value, whose size says nothing of its block.
struct deque_holder {
  std::deque<heavy> items;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(items);
  }
};

// 64 distinct heavy elements as a container of type Container writes them:
// its count, then each element (a map's with an int key first). Decoded
// without a budget, that is 64 MiB out of under 500 bytes.
template <class Container>
isolate::wire::buffer sixty_four_heavy() {
  isolate::wire::buffer out;
  isolate::wire::output_archive archive(out);
  archive(cereal::make_size_tag(cereal::size_type{64}));
  for (std::uint8_t i = 0; i < 64; ++i) {
    if constexpr (requires { typename Container::mapped_type; }) archive(int{i});
    archive(heavy{i, std::nullopt});
  }
  return out;
}

// The same behind smart pointers, in a vector: unique_ptr writes a byte
// saying it is set; shared_ptr a new id (its top bit set) before each object.
isolate::wire::buffer sixty_four_unique_heavy() {
  isolate::wire::buffer out;
  isolate::wire::output_archive archive(out);
  archive(cereal::make_size_tag(cereal::size_type{64}));
  for (std::uint8_t i = 0; i < 64; ++i) archive(std::uint8_t{1}, heavy{i, std::nullopt});
  return out;
}
isolate::wire::buffer sixty_four_shared_heavy() {
  isolate::wire::buffer out;
  isolate::wire::output_archive archive(out);
  archive(cereal::make_size_tag(cereal::size_type{64}));
  for (std::uint8_t i = 0; i < 64; ++i) archive(std::uint32_t{0x80000000u | (i + 1u)}, heavy{i, std::nullopt});
  return out;
}

// Decodes `bytes` as T, expecting the decoder to refuse them without having
// allocated more than their budget; returns the error.
template <class T>
isolate::error refused_within_budget(std::span<const std::byte> bytes) {
  T value{};  // outside the count: a std::deque allocates as it is constructed
  std::optional<isolate::error> failure;
  const std::size_t allocated = bytes_allocated_by([&] {
    failure = failure_of([&] {
      isolate::wire::input_archive archive(bytes);
      archive(value);
    });
  });
  CHECK(allocated <= isolate::wire::allocation_budget(bytes.size()));
  CHECK(failure->code() == isolate::errc::protocol_error);
  return *failure;
}

// Recursive types, each nesting through something else.
struct tree {
  std::vector<tree> kids;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(kids);
  }
  bool operator==(const tree&) const = default;
};
struct optional_tree {
  std::vector<std::optional<optional_tree>> kids;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(kids);
  }
  bool operator==(const optional_tree&) const = default;
};
struct variant_tree {
  std::variant<int, std::vector<variant_tree>> value;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(value);
  }
  bool operator==(const variant_tree&) const = default;
};
struct map_tree {
  std::map<int, map_tree> kids;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(kids);
  }
  bool operator==(const map_tree&) const = default;
};
struct chain {
  std::unique_ptr<chain> next;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(next);
  }
  bool operator==(const chain& other) const {
    return next == nullptr ? other.next == nullptr : other.next != nullptr && *next == *other.next;
  }
};
struct shared_chain {
  std::shared_ptr<shared_chain> next;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(next);
  }
};

// What each writes for one generation, and for the innermost value.
struct tree_bytes {
  static void level(isolate::wire::output_archive& ar, std::uint32_t) { ar(std::uint64_t{1}); }
  static void end(isolate::wire::output_archive& ar) { ar(std::uint64_t{0}); }
};
struct optional_tree_bytes {  // one kid, whose optional is set (its "empty" flag false)
  static void level(isolate::wire::output_archive& ar, std::uint32_t) { ar(std::uint64_t{1}, false); }
  static void end(isolate::wire::output_archive& ar) { ar(std::uint64_t{0}); }
};
struct variant_tree_bytes {  // the vector alternative with one kid; the innermost holds an int
  static void level(isolate::wire::output_archive& ar, std::uint32_t) { ar(std::int32_t{1}, std::uint64_t{1}); }
  static void end(isolate::wire::output_archive& ar) { ar(std::int32_t{0}, std::int32_t{7}); }
};
struct map_tree_bytes {  // one entry, key then value
  static void level(isolate::wire::output_archive& ar, std::uint32_t) { ar(std::uint64_t{1}, std::int32_t{5}); }
  static void end(isolate::wire::output_archive& ar) { ar(std::uint64_t{0}); }
};
struct chain_bytes {
  static void level(isolate::wire::output_archive& ar, std::uint32_t) { ar(std::uint8_t{1}); }
  static void end(isolate::wire::output_archive& ar) { ar(std::uint8_t{0}); }
};
struct shared_chain_bytes {  // a new object (top bit set) at each level, null at the end
  static void level(isolate::wire::output_archive& ar, std::uint32_t i) { ar(std::uint32_t{0x80000000u | (i + 1)}); }
  static void end(isolate::wire::output_archive& ar) { ar(std::uint32_t{0}); }
};

template <class Bytes>
isolate::wire::buffer nested_bytes(std::uint32_t depth) {
  isolate::wire::buffer out;
  isolate::wire::output_archive archive(out);
  for (std::uint32_t i = 0; i < depth; ++i) Bytes::level(archive, i);
  Bytes::end(archive);
  return out;
}

}  // namespace

TEST_CASE("values round-trip through the wire archives") {
  const nested original{"n", {1, std::nullopt, 3}, {{"a", 1}, {"b", std::string("two")}}, true};
  const auto bytes = encode(original);
  CHECK(decode<nested>(bytes.bytes()) == original);
  CHECK(decode<std::string>(encode(std::string(10000, 'x')).bytes()) == std::string(10000, 'x'));
  CHECK(decode<double>(encode(2.5).bytes()) == 2.5);
  CHECK(decode<std::vector<std::uint8_t>>(encode(std::vector<std::uint8_t>{1, 2, 3}).bytes()) ==
        std::vector<std::uint8_t>{1, 2, 3});
}

TEST_CASE("a truncated message is a protocol error") {
  const auto bytes = encode(nested{"name", {1, 2}, {{"k", 5}}, true});
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    CHECK(failure_of([&] { decode<nested>(bytes.bytes().first(cut)); }).code() == isolate::errc::protocol_error);
  }
}

TEST_CASE("trailing bytes are a protocol error") {
  auto bytes = encode(42);
  const char extra = 1;
  bytes.append(&extra, 1);
  CHECK(failure_of([&] { decode<int>(bytes.bytes()); }).code() == isolate::errc::protocol_error);
}

TEST_CASE("a forged container size is rejected before allocating") {
  isolate::wire::buffer bytes;
  const std::uint64_t huge = std::uint64_t{1} << 60;
  bytes.append(&huge, sizeof huge);
  CHECK(failure_of([&] { decode<std::string>(bytes.bytes()); }).code() == isolate::errc::protocol_error);
  CHECK(failure_of([&] { decode<std::vector<std::string>>(bytes.bytes()); }).code() == isolate::errc::protocol_error);
}

TEST_CASE("a bool byte other than 0 or 1 is a protocol error") {
  const unsigned char two = 2;
  isolate::wire::buffer bytes;
  bytes.append(&two, 1);
  CHECK(failure_of([&] { decode<bool>(bytes.bytes()); }).code() == isolate::errc::protocol_error);
}

TEST_CASE("bools read as raw bytes in arrays are checked too") {
  // Cereal reads std::array<bool, N>, bool[N] and std::valarray<bool> as raw bytes.
  isolate::wire::buffer bytes;
  const unsigned char raw[] = {0, 1, 2, 0};
  bytes.append(raw, sizeof raw);
  CHECK(failure_of([&] { decode<std::array<bool, 4>>(bytes.bytes()); }).code() == isolate::errc::protocol_error);
  CHECK(failure_of([&] {
          bool values[4];
          isolate::wire::input_archive archive(bytes.bytes());
          archive(values);
        }).code() == isolate::errc::protocol_error);
  isolate::wire::buffer counted;
  append(counted, std::uint64_t{4});
  counted.append(bytes.data(), bytes.size());
  CHECK(failure_of([&] { decode<std::valarray<bool>>(counted.bytes()); }).code() == isolate::errc::protocol_error);
  CHECK(decode<std::array<bool, 3>>(encode(std::array<bool, 3>{true, false, true}).bytes()) ==
        std::array<bool, 3>{true, false, true});
}

TEST_CASE("random garbage never decodes into undefined behaviour") {
  std::mt19937 random(1234);
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::byte> garbage(random() % 64);
    for (auto& b : garbage) b = static_cast<std::byte>(random());
    try {
      (void)decode<nested>(garbage);
    } catch (const isolate::error& e) {
      CHECK(e.code() == isolate::errc::protocol_error);
    } catch (const cereal::Exception&) {
      // Cereal's own checks (a variant index out of range); the codec maps these to protocol_error.
    }
  }
}

TEST_CASE("2^25 strings claimed in a 32 MiB message are refused before allocating them") {
  // Each claimed string takes a byte of the count check but 32 in memory: 1 GiB.
  constexpr std::size_t payload = std::size_t{32} << 20;
  isolate::wire::buffer bytes;
  append(bytes, std::uint64_t{payload - 8});
  bytes.resize(payload);
  std::memset(bytes.data() + 8, 0, payload - 8);
  const auto e = refused_within_budget<std::vector<std::string>>(bytes.bytes());
  CHECK(contains(e.what(), "std::vector"));
  CHECK(contains(e.what(), std::to_string(payload - 8) + " x " + std::to_string(sizeof(std::string)) + " bytes"));
}

TEST_CASE("elements that take two bytes on the wire but a mebibyte in memory are refused") {
  const auto bytes = sixty_four_heavy<std::vector<heavy>>();
  CHECK(bytes.size() < 200);
  CHECK(contains(refused_within_budget<std::vector<heavy>>(bytes.bytes()).what(), "std::vector"));
}

TEST_CASE_TEMPLATE("every container Cereal reads is charged before it allocates", Container, std::deque<heavy>,
                   std::list<heavy>, std::forward_list<heavy>, std::valarray<heavy>, std::set<heavy>,
                   std::multiset<heavy>, std::unordered_set<heavy, heavy_hash>,
                   std::unordered_multiset<heavy, heavy_hash>, std::map<int, heavy>, std::multimap<int, heavy>,
                   std::unordered_map<int, heavy>, std::unordered_multimap<int, heavy>, std::queue<heavy>,
                   std::stack<heavy>) {
  (void)refused_within_budget<Container>(sixty_four_heavy<Container>().bytes());
}

TEST_CASE("empty deques pay for the block each allocates as it is constructed") {
  // libstdc++ gives every deque, even empty, a first block: here a mebibyte.
  isolate::wire::buffer bytes;
  append(bytes, std::uint64_t{64});
  for (int i = 0; i < 64; ++i) append(bytes, std::uint64_t{0});
  const auto refused = [&]<class T>(std::type_identity<T>) {
    T value;
    std::optional<isolate::error> failure;
    const std::size_t allocated =
        bytes_allocated_by([&] { failure = failure_of([&] { value = decode<T>(bytes.bytes()); }); });
    // The deque being read when the budget ran out was built before it was charged.
    CHECK(allocated <= isolate::wire::allocation_budget(bytes.size()) + isolate::wire::deque_first_allocation<heavy>);
    CHECK(failure->code() == isolate::errc::protocol_error);
    CHECK(contains(failure->what(), "std::deque"));
  };
  refused(std::type_identity<std::vector<std::deque<heavy>>>{});
  refused(std::type_identity<std::vector<deque_holder>>{});
}

TEST_CASE("the container's name and sizes are in the error") {
  CHECK(contains(refused_within_budget<std::map<int, heavy>>(sixty_four_heavy<std::map<int, heavy>>().bytes()).what(),
                 "std::map would allocate 64 x "));
  CHECK(contains(refused_within_budget<std::list<heavy>>(sixty_four_heavy<std::list<heavy>>().bytes()).what(),
                 "std::list would allocate 64 x "));
}

TEST_CASE("objects that smart pointers own are charged before they are allocated") {
  const auto unique = sixty_four_unique_heavy();
  const auto shared = sixty_four_shared_heavy();
  const auto refusal = [](const auto& bytes, auto type) {
    return std::string(refused_within_budget<typename decltype(type)::type>(bytes.bytes()).what());
  };
  CHECK(contains(refusal(unique, std::type_identity<std::vector<std::unique_ptr<heavy>>>{}), "std::unique_ptr"));
  CHECK(contains(refusal(shared, std::type_identity<std::vector<std::shared_ptr<heavy>>>{}), "std::shared_ptr"));
  // The same for objects Cereal builds through load_and_construct.
  using unique_made = std::vector<std::unique_ptr<heavy_made_by_cereal>>;
  using shared_made = std::vector<std::shared_ptr<heavy_made_by_cereal>>;
  CHECK(contains(refusal(unique, std::type_identity<unique_made>{}), "std::unique_ptr"));
  CHECK(contains(refusal(shared, std::type_identity<shared_made>{}), "std::shared_ptr"));
}

TEST_CASE("the budget grows with the message: honest messages of every shape still decode") {
  // Each well beyond the budget's fixed slack, so that its factor is what lets it through.
  constexpr int n = 200'000;
  const auto round_trips = [](const auto& value) { return round_trip_equal(value); };
  CHECK(round_trips(std::vector<std::string>(n)));
  CHECK(round_trips(std::vector<std::string>(n, "fifteen chars..")));
  CHECK(round_trips(std::vector<std::vector<int>>(n)));
  CHECK(round_trips(std::vector<std::optional<int>>(n)));
  CHECK(round_trips(std::vector<std::optional<double>>(n)));
  CHECK(round_trips(std::vector<std::variant<int, std::string>>(n)));
  CHECK(round_trips(std::vector<bool>(n, true)));
  CHECK(round_trips(std::deque<int>(n, 3)));
  CHECK(round_trips(std::list<int>(n, 3)));
  std::map<int, int> numbers;
  std::map<std::string, std::string> words;
  std::unordered_map<int, std::string> names;
  std::set<int> keys;
  std::multiset<std::uint16_t> counts;
  for (int i = 0; i < n; ++i) {
    numbers.emplace(i, i);
    words.emplace(std::to_string(i), "");
    names.emplace(i, "n");
    keys.insert(i);
    counts.insert(static_cast<std::uint16_t>(i % 7));
  }
  CHECK(round_trips(numbers));
  CHECK(round_trips(words));
  CHECK(round_trips(names));
  CHECK(round_trips(keys));
  CHECK(round_trips(counts));
}

TEST_CASE("a small message may still hold one large empty object") {
  // One heavy element: a mebibyte for 10 bytes, within the budget's slack.
  std::vector<heavy> one(1);
  CHECK(decode<std::vector<heavy>>(encode(one).bytes()) == one);
  auto pointer = std::make_unique<heavy>();
  CHECK(*decode<std::unique_ptr<heavy>>(encode(pointer).bytes()) == heavy{});
}

TEST_CASE("loads that replace Cereal's read what Cereal writes") {
  std::mt19937 random(7);
  auto some = [&] { return static_cast<int>(random() % 1000); };
  std::vector<int> ints(100);
  for (auto& i : ints) i = some();
  CHECK(round_trip_equal(ints));
  CHECK(round_trip_equal(std::vector<bool>{true, false, true}));
  CHECK(round_trip_equal(std::wstring(L"wide")));
  CHECK(round_trip_equal(std::u16string(u"sixteen")));
  CHECK(round_trip_equal(std::deque<std::string>{"a", "", "ccc"}));
  CHECK(round_trip_equal(std::list<std::vector<int>>{{1}, {}, {2, 3}}));
  CHECK(round_trip_equal(std::forward_list<std::string>{"x", "y"}));
  CHECK(round_trip_equal(std::set<std::string>{"b", "a"}));
  CHECK(round_trip_equal(std::multiset<int>{3, 3, 1}));
  CHECK(round_trip_equal(std::unordered_set<int>{5, 6, 7}));
  CHECK(round_trip_equal(std::unordered_multiset<int>{5, 5}));
  CHECK(round_trip_equal(std::map<std::string, std::vector<int>>{{"k", {1, 2}}, {"", {}}}));
  CHECK(round_trip_equal(std::multimap<int, int>{{1, 2}, {1, 3}}));
  CHECK(round_trip_equal(std::unordered_map<std::string, int>{{"one", 1}, {"two", 2}}));
  CHECK(round_trip_equal(std::unordered_multimap<int, int>{{4, 4}, {4, 5}}));
  const std::valarray<double> doubles{1.5, 2.5};
  const auto decoded_doubles = decode<std::valarray<double>>(encode(doubles).bytes());
  CHECK((decoded_doubles == doubles).min());
  const std::valarray<std::string> strings{"p", "q"};
  const auto decoded_strings = decode<std::valarray<std::string>>(encode(strings).bytes());
  CHECK((decoded_strings == strings).min());
  CHECK(*decode<std::unique_ptr<std::string>>(encode(std::make_unique<std::string>("owned")).bytes()) == "owned");
  CHECK(decode<std::unique_ptr<int>>(encode(std::unique_ptr<int>()).bytes()) == nullptr);
  // Two pointers to one object arrive as two pointers to one object.
  const auto shared = std::make_shared<std::string>("shared");
  const auto pair = decode<std::pair<std::shared_ptr<std::string>, std::shared_ptr<std::string>>>(
      encode(std::make_pair(shared, shared)).bytes());
  CHECK(*pair.first == "shared");
  CHECK(pair.first == pair.second);
  CHECK(decode<std::shared_ptr<int>>(encode(std::shared_ptr<int>()).bytes()) == nullptr);
  // Objects without a default constructor, built through load_and_construct.
  CHECK(decode<std::unique_ptr<made_by_cereal>>(encode(std::make_unique<made_by_cereal>(5)).bytes())->value == 5);
  CHECK(decode<std::unique_ptr<made_by_cereal>>(encode(std::unique_ptr<made_by_cereal>()).bytes()) == nullptr);
  const auto made = std::make_shared<made_by_cereal>(6);
  const auto made_pair = decode<std::pair<std::shared_ptr<made_by_cereal>, std::shared_ptr<made_by_cereal>>>(
      encode(std::make_pair(made, made)).bytes());
  CHECK(made_pair.first->value == 6);
  CHECK(made_pair.first == made_pair.second);
  const std::weak_ptr<made_by_cereal> weak = made;
  CHECK(decode<std::weak_ptr<made_by_cereal>>(encode(weak).bytes()).expired());  // nothing else owns it
}

TEST_CASE_TEMPLATE_DEFINE("nesting 100,000 deep is a protocol error, not a stack overflow", T, deep_nesting) {
  using type = typename T::first_type;
  using bytes = typename T::second_type;
  const auto message = nested_bytes<bytes>(100'000);
  std::optional<type> value(std::in_place);
  const auto e = failure_of([&] {
    isolate::wire::input_archive archive(message.bytes());
    archive(*value);
  });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK(contains(e.what(), "ISOLATE_MAX_DECODE_DEPTH"));
  // What was read before the refusal is ISOLATE_MAX_DECODE_DEPTH deep at most,
  // so destroying it recurses no deeper either.
  value.reset();
}
TEST_CASE_TEMPLATE_INVOKE(deep_nesting, std::pair<tree, tree_bytes>, std::pair<optional_tree, optional_tree_bytes>,
                          std::pair<variant_tree, variant_tree_bytes>, std::pair<map_tree, map_tree_bytes>,
                          std::pair<chain, chain_bytes>, std::pair<shared_chain, shared_chain_bytes>);

TEST_CASE("trees 100 deep decode") {
  tree t;
  optional_tree o;
  variant_tree v{7};
  map_tree m;
  chain c;
  for (int i = 0; i < 100; ++i) {
    t = tree{{std::move(t)}};
    optional_tree next;
    next.kids.emplace_back(std::move(o));
    o = std::move(next);
    v = variant_tree{std::vector<variant_tree>{std::move(v)}};
    map_tree parent;
    parent.kids.emplace(i, std::move(m));
    m = std::move(parent);
    c = chain{std::make_unique<chain>(std::move(c))};
  }
  CHECK(round_trip_equal(t));
  CHECK(round_trip_equal(o));
  CHECK(round_trip_equal(v));
  CHECK(round_trip_equal(m));
  CHECK(round_trip_equal(c));
  // The message's exact bytes, from the same writer as the deep ones above.
  CHECK(decode<tree>(nested_bytes<tree_bytes>(100).bytes()) == t);
}

TEST_CASE("the depth limit counts levels, not values") {
  // 127 generations of tree (255 levels) fit in the default of 256; 128 do not.
  CHECK_NOTHROW(decode<tree>(nested_bytes<tree_bytes>(127).bytes()));
  const auto too_deep = nested_bytes<tree_bytes>(128);
  CHECK(failure_of([&] { decode<tree>(too_deep.bytes()); }).code() == isolate::errc::protocol_error);
  // Long sequences are not deep: a million siblings are one level.
  CHECK(decode<std::vector<tree>>(encode(std::vector<tree>(1'000'000)).bytes()).size() == 1'000'000);
}

TEST_CASE("a shared pointer may refer back only to an object of its own type") {
  // A string sent as object 1, then a pointer to a vector naming object 1:
  // Cereal would hand back the string as a vector.
  isolate::wire::buffer bytes;
  {
    isolate::wire::output_archive archive(bytes);
    archive(std::uint32_t{0x80000001u}, std::string("hello"), std::uint32_t{1});
  }
  using confused = std::pair<std::shared_ptr<std::string>, std::shared_ptr<std::vector<int>>>;
  const auto e = failure_of([&] { decode<confused>(bytes.bytes()); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK(contains(e.what(), "sent as another type"));

  // An object the message never sent.
  isolate::wire::buffer dangling;
  append(dangling, std::uint32_t{7});
  CHECK(failure_of([&] { decode<std::shared_ptr<int>>(dangling.bytes()); }).code() == isolate::errc::protocol_error);

  // const or not, the object's type is the same.
  const auto shared = std::make_shared<std::string>("one object");
  const auto decoded = decode<std::pair<std::shared_ptr<const std::string>, std::shared_ptr<std::string>>>(
      encode(std::make_pair(std::shared_ptr<const std::string>(shared), shared)).bytes());
  CHECK(decoded.first == decoded.second);
  CHECK(*decoded.second == "one object");
}

namespace {

// A node that may point at itself or an ancestor: through a shared_ptr that
// is a cycle no one frees; through a weak_ptr it is a back-pointer.
struct linked_node {
  int value = 0;
  std::shared_ptr<linked_node> next;
  std::weak_ptr<linked_node> parent;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(value, next, parent);
  }
};

}  // namespace

TEST_CASE("a shared_ptr cycle is refused (it would never be freed); a weak_ptr back to its owner is not") {
  // A cycle of two: a -> b -> a. Cereal's own writer sends it as it would any graph.
  auto a = std::make_shared<linked_node>();
  auto b = std::make_shared<linked_node>();
  a->value = 1;
  b->value = 2;
  a->next = b;
  b->next = a;
  const auto cyclic = encode(a);
  b->next.reset();  // break the cycle here, or this test leaks it
  const auto e = failure_of([&] { decode<std::shared_ptr<linked_node>>(cyclic.bytes()); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK_MESSAGE(contains(e.what(), "cycle"), e.what());

  // One pointing at itself.
  auto self = std::make_shared<linked_node>();
  self->next = self;
  const auto looped = encode(self);
  self->next.reset();
  CHECK(failure_of([&] { decode<std::shared_ptr<linked_node>>(looped.bytes()); }).code() ==
        isolate::errc::protocol_error);

  // A child whose weak_ptr names its parent, which is still being read: allowed, and freed.
  auto parent = std::make_shared<linked_node>();
  parent->value = 3;
  parent->next = std::make_shared<linked_node>();
  parent->next->value = 4;
  parent->next->parent = parent;
  const auto tree = decode<std::shared_ptr<linked_node>>(encode(parent).bytes());
  REQUIRE(tree->next != nullptr);
  CHECK(tree->next->value == 4);
  CHECK(tree->next->parent.lock() == tree);
  CHECK(tree.use_count() == 1);  // no cycle: the weak_ptr does not own it

  // Two pointers to one finished object are still one object.
  auto shared_leaf = std::make_shared<linked_node>();
  const auto pair = decode<std::pair<std::shared_ptr<linked_node>, std::shared_ptr<linked_node>>>(
      encode(std::make_pair(shared_leaf, shared_leaf)).bytes());
  CHECK(pair.first == pair.second);
}
