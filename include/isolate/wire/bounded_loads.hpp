// Part of wire/archive.hpp: how the input archive reads each standard type
// that makes the decoder allocate, charging the allocation to the message's
// budget (input_archive::charge) before making it.
//
// Cereal's own loads trust the element count they read: a few bytes claiming
// 2^25 strings make std::vector::resize value-initialise 1 GiB, and a vector
// of 1-byte empty std::optional<std::array<char, 1 << 20>> allocates 1 MiB per
// byte. The count is the only thing that could be checked in one place (the
// SizeTag load), but it does not know what the elements are; so each load is
// replaced for input_archive by one that reads the same bytes in the same
// order as Cereal's (the wire format is Cereal's, unchanged) and charges what
// it is about to allocate. These overloads take input_archive itself where
// Cereal's take any Archive, so overload resolution prefers them over
// Cereal's (they are found by argument-dependent lookup through the archive).
// Containers of containers are charged level by level, each as it is read.
//
// Covered: every load in cereal/types/ that allocates: std::vector (and
// vector<bool>), std::basic_string, std::deque, std::list,
// std::forward_list, std::valarray, std::set, std::multiset,
// std::unordered_set, std::unordered_multiset, std::map, std::multimap,
// std::unordered_map, std::unordered_multimap (and any map-like container
// Cereal's pair_associative_container concept reads), std::unique_ptr,
// std::shared_ptr and std::weak_ptr. std::queue, std::stack and
// std::priority_queue read their underlying container through these; the
// others (std::array, std::optional, std::variant, std::pair, std::tuple,
// std::bitset, std::complex, std::chrono, std::atomic) allocate nothing
// beyond strings and containers they hold.
#ifndef ISOLATE_WIRE_BOUNDED_LOADS_HPP
#define ISOLATE_WIRE_BOUNDED_LOADS_HPP

#ifndef ISOLATE_WIRE_ARCHIVE_HPP
#error "isolate/wire/bounded_loads.hpp is a part of isolate/wire/archive.hpp; include that instead."
#endif

#include "isolate/detail/config.hpp"
#include "isolate/detail/cereal.hpp"
#include "isolate/detail/huge_pages.hpp"

#include <cereal/types/memory.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <forward_list>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <valarray>
#include <vector>

namespace isolate::wire {

// What a node-based container (list, set, map, hash table) allocates per
// element beyond the element: libstdc++'s red-black tree node header takes 32
// bytes, a list node's links 16, a hash node 8 to 16 plus a bucket pointer.
inline constexpr std::size_t node_overhead = 4 * sizeof(void*);

// Elements Cereal reads as one block of raw bytes instead of one by one.
template <class T>
inline constexpr bool loads_as_bytes = std::is_arithmetic_v<T> && !std::is_same_v<T, bool>;

// Byte-sized elements that may be read straight from the message's bytes (the
// types through which any object's bytes may be read), so that a container
// of them is filled as it grows instead of zeroed first and then overwritten.
template <class T>
inline constexpr bool copies_without_zeroing = std::is_same_v<T, char> || std::is_same_v<T, unsigned char>;

// Reads a container's element count and charges `each` bytes per element
// before any of them is allocated.
inline std::size_t load_count(input_archive& ar, std::size_t each, const char* what) {
  cereal::size_type count = 0;
  ar(cereal::make_size_tag(count));
  ar.charge(static_cast<std::size_t>(count), each, what);
  return static_cast<std::size_t>(count);
}

// --- Sequences. A vector of numbers is read as one block. Other elements are
// built one at a time, each just before it is read, rather than all at once
// by resize(): an element whose default constructor allocates (a std::deque)
// then has that allocation charged when it is read, before the next element
// is built, instead of a million of them being built before the first is read.

template <class T, class A>
  requires(!std::is_same_v<T, bool>)
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, std::vector<T, A>& vector) {
  const std::size_t count = load_count(ar, sizeof(T), "std::vector");
  if constexpr (loads_as_bytes<T>) {
    vector.clear();
    vector.reserve(count);
    detail::prefer_huge_pages(vector.data(), count * sizeof(T));
    if constexpr (copies_without_zeroing<T>) {
      // Copied in as the vector grows: resize() would first zero every byte.
      if (const std::byte* bytes = ar.take_in_place(count)) {
        const auto* first = reinterpret_cast<const T*>(bytes);
        vector.insert(vector.end(), first, first + count);
        return;
      }
    }
    vector.resize(count);
    ar(cereal::binary_data(vector.data(), count * sizeof(T)));
  } else {
    vector.clear();
    vector.reserve(count);
    for (std::size_t i = 0; i < count; ++i) ar(vector.emplace_back());
  }
}

// One byte per element on the wire; charged as one byte too (it takes a bit).
template <class A>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, std::vector<bool, A>& vector) {
  vector.resize(load_count(ar, 1, "std::vector<bool>"));
  for (auto&& element : vector) {
    bool value = false;
    ar(value);
    element = value;
  }
}

template <class C, class Traits, class A>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, std::basic_string<C, Traits, A>& string) {
  const std::size_t count = load_count(ar, sizeof(C), std::is_same_v<C, char> ? "std::string" : "std::basic_string");
  string.clear();
  string.reserve(count);
  detail::prefer_huge_pages(string.data(), count * sizeof(C));
  if constexpr (copies_without_zeroing<C>) {
    if (const std::byte* bytes = ar.take_in_place(count)) {
      string.append(reinterpret_cast<const C*>(bytes), count);
      return;
    }
  }
  string.resize(count);
  ar(cereal::binary_data(string.data(), string.size() * sizeof(C)));
}

// libstdc++'s deque allocates a map of 8 block pointers and a first block of
// at least 512 bytes as soon as it is constructed, even empty; each deque
// read pays for those, so that many empty deques cannot amplify.
template <class T>
inline constexpr std::size_t deque_first_allocation = 8 * sizeof(void*) + (sizeof(T) < 512 ? 512 : sizeof(T));

template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, std::deque<T, A>& deque) {
  ar.charge(1, deque_first_allocation<T>, "std::deque");
  const std::size_t count = load_count(ar, sizeof(T), "std::deque");
  deque.clear();
  for (std::size_t i = 0; i < count; ++i) ar(deque.emplace_back());
}

template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, std::list<T, A>& list) {
  const std::size_t count = load_count(ar, sizeof(T) + node_overhead, "std::list");
  list.clear();
  for (std::size_t i = 0; i < count; ++i) ar(list.emplace_back());
}

template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, std::forward_list<T, A>& list) {
  const std::size_t count = load_count(ar, sizeof(T) + node_overhead, "std::forward_list");
  list.clear();
  auto last = list.before_begin();
  for (std::size_t i = 0; i < count; ++i) {
    last = list.emplace_after(last);
    ar(*last);
  }
}

// Cereal reads a valarray of any arithmetic type, bool included, as a block;
// a valarray cannot grow one element at a time, so others are built at once.
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, std::valarray<T>& valarray) {
  valarray.resize(load_count(ar, sizeof(T), "std::valarray"));
  if constexpr (std::is_arithmetic_v<T>) {
    if (valarray.size() != 0) ar(cereal::binary_data(&valarray[0], valarray.size() * sizeof(T)));
  } else {
    for (auto& element : valarray) ar(element);
  }
}

// --- Sets and maps: every node charged up front, then built one element at a
// time. Hash tables also reserve their buckets up front, as Cereal's loads do.
// Elements arrive in the container's order, so each is inserted at the end:
// that keeps equal keys of a multiset or multimap in the order they were sent
// (Cereal's hint, the previous element, reverses them) and costs no search.

template <class Container>
void reserve_if_hashed(Container& container, std::size_t count) {
  if constexpr (requires { container.reserve(count); }) container.reserve(count);
}

template <class Set>
void load_set(input_archive& ar, Set& set, const char* what) {
  const std::size_t count = load_count(ar, sizeof(typename Set::value_type) + node_overhead, what);
  set.clear();
  reserve_if_hashed(set, count);
  for (std::size_t i = 0; i < count; ++i) {
    typename Set::key_type key;
    ar(key);
    set.emplace_hint(set.end(), std::move(key));
  }
}

template <class K, class C, class A>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, std::set<K, C, A>& set) {
  load_set(ar, set, "std::set");
}
template <class K, class C, class A>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, std::multiset<K, C, A>& set) {
  load_set(ar, set, "std::multiset");
}
template <class K, class H, class E, class A>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, std::unordered_set<K, H, E, A>& set) {
  load_set(ar, set, "std::unordered_set");
}
template <class K, class H, class E, class A>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, std::unordered_multiset<K, H, E, A>& set) {
  load_set(ar, set, "std::unordered_multiset");
}

// Cereal writes a map entry as a MapItem, which is its key then its value.
template <class Map>
void load_map(input_archive& ar, Map& map, const char* what) {
  const std::size_t count = load_count(ar, sizeof(typename Map::value_type) + node_overhead, what);
  map.clear();
  for (std::size_t i = 0; i < count; ++i) {
    typename Map::key_type key;
    typename Map::mapped_type value;
    ar(key, value);
    map.emplace_hint(map.end(), std::move(key), std::move(value));
  }
}

template <class Map>
inline constexpr const char* map_name = "map";
template <class... Args>
inline constexpr const char* map_name<std::map<Args...>> = "std::map";
template <class... Args>
inline constexpr const char* map_name<std::multimap<Args...>> = "std::multimap";
template <class... Args>
inline constexpr const char* map_name<std::unordered_map<Args...>> = "std::unordered_map";
template <class... Args>
inline constexpr const char* map_name<std::unordered_multimap<Args...>> = "std::unordered_multimap";

// The same signature as Cereal's pair_associative_container concept, but for
// input_archive only, so it replaces it for every map-like container.
template <template <class...> class Map, class... Args, class = typename Map<Args...>::mapped_type>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, Map<Args...>& map) {
  load_map(ar, map, map_name<Map<Args...>>);
}

// --- Smart pointers. Cereal wraps each in a PtrWrapper: std::unique_ptr is a
// byte saying whether it holds an object, then the object; std::shared_ptr
// (and std::weak_ptr) is an id: 0 for null, the id of an object of the same
// type read earlier in the message (input_archive::check_shared_type), or a
// new id with its top bit set, followed by the object.
// Only a new object is allocated, so only that is charged. Types that Cereal
// builds through load_and_construct get their storage as Cereal does it.

template <class T>
using cereal_constructed = cereal::traits::has_load_and_construct<T, input_archive>;

// Not a level of nesting of its own (see prologue() in archive.hpp).
template <class T>
inline constexpr bool adds_no_level<cereal::memory_detail::PtrWrapper<T>> = true;

template <class T, class D>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, cereal::memory_detail::PtrWrapper<std::unique_ptr<T, D>&>& wrapper) {
  using object = std::remove_const_t<T>;
  std::uint8_t valid = 0;
  ar(valid);
  if (valid == 0) {
    wrapper.ptr.reset();
    return;
  }
  ar.charge(1, sizeof(object), "std::unique_ptr");
  if constexpr (cereal_constructed<object>::value) {
    using storage = std::aligned_storage_t<sizeof(object), alignof(object)>;
    std::unique_ptr<storage> raw(new storage());
    cereal::memory_detail::LoadAndConstructLoadWrapper<input_archive, object> construct(
        reinterpret_cast<object*>(raw.get()));
    ar(construct);
    wrapper.ptr.reset(reinterpret_cast<T*>(raw.release()));
  } else {
    std::unique_ptr<object, D> ptr(cereal::detail::Construct<object, input_archive>::load_andor_construct());
    ar(*ptr);
    wrapper.ptr = std::move(ptr);
  }
}

// A new shared object also costs a control block and entries in the
// archive's two tables of ids (Cereal's and the type check's).
template <class T>
std::shared_ptr<T> load_new_shared(input_archive& ar, std::uint32_t id) {
  ar.charge(1, sizeof(T) + 3 * node_overhead, "std::shared_ptr");
  ar.remember_shared_type(id, &shared_type_tag<T>);
  if constexpr (cereal_constructed<T>::value) {
    // Cereal's way: raw storage that is destroyed as a T only once it holds one.
    using storage = std::aligned_storage_t<sizeof(T), alignof(T)>;
    auto constructed = std::make_shared<bool>(false);
    std::shared_ptr<T> ptr(reinterpret_cast<T*>(new storage()), [constructed](T* object) {
      if (*constructed) object->~T();
      delete reinterpret_cast<storage*>(object);
    });
    ar.registerSharedPointer(id, ptr);
    ar.begin_shared(id);
    cereal::memory_detail::loadAndConstructSharedPtr(ar, ptr.get(),
                                                     typename cereal::traits::has_shared_from_this<T>::type());
    ar.end_shared();
    *constructed = true;
    return ptr;
  } else {
    std::shared_ptr<T> ptr(cereal::detail::Construct<T, input_archive>::load_andor_construct());
    ar.registerSharedPointer(id, ptr);
    ar.begin_shared(id);
    ar(*ptr);
    ar.end_shared();
    return ptr;
  }
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, cereal::memory_detail::PtrWrapper<std::shared_ptr<T>&>& wrapper) {
  using object = std::remove_const_t<T>;
  const bool weak = ar.take_weak();
  std::uint32_t id = 0;
  ar(id);
  if ((id & cereal::detail::msb_32bit) != 0) {
    wrapper.ptr = load_new_shared<object>(ar, id);
  } else {
    if (id != 0) {
      ar.check_shared_type(id, &shared_type_tag<object>);
      ar.check_finished(id, weak);
    }
    wrapper.ptr = std::static_pointer_cast<T>(ar.getSharedPointer(id));
  }
}

// As Cereal's (a weak_ptr travels as the shared_ptr it locks), telling the
// archive that this one may name an object still being read: no cycle.
template <class T>
  requires(!std::is_polymorphic_v<T>)
void CEREAL_LOAD_FUNCTION_NAME(input_archive& ar, std::weak_ptr<T>& ptr) {
  std::shared_ptr<T> locked;
  ar.next_is_weak();
  ar(locked);
  ptr = locked;
}

}  // namespace isolate::wire

#endif
