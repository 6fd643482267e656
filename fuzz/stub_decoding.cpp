// Fuzzes both ends of a call's decoding for an interface of nested, recursive
// and container-heavy types (shapes.hpp): stub<I>::handle on arbitrary call
// payloads, whole or arriving in pieces, and decode_reply<R> on arbitrary
// reply and error frames.
//
// Input: mode (u8: even = a call, odd = a reply), method id (u8), piece size
// (u8: 0 = the payload in one piece), frame kind (u8, replies only), then the
// payload.
//
// Promises checked: decoding allocates within wire::allocation_budget;
// handle() never throws and always writes a well-formed reply or error frame
// that decode_reply accepts or turns into an exception; decode_reply throws
// only isolate::error (protocol_error, message_too_large) for a non-error
// frame, and never lets a Cereal exception out; whatever decodes re-encodes
// to bytes that decode again to the same encoding.
#include "allocation_meter.hpp"

#include "shapes.hpp"
#include "support.hpp"

#include <isolate/detail/codec.hpp>

#include <exception>
#include <tuple>
#include <utility>

namespace {

using namespace isolate_fuzz;
namespace wire = isolate::wire;
using isolate::detail::decode_values;
using isolate::detail::encode_values;
using meta = fuzz_shapes::isolate_meta;

constexpr std::size_t max_payload = std::size_t{16} << 20;

// Encodes what was decoded, decodes that and encodes it again: the two
// encodings must agree (unless hash tables may reorder: then only decode).
template <class... Values>
void require_round_trip(bool exact, const Values&... values) {
  wire::buffer once;
  encode_values(once, values...);
  std::tuple<std::remove_cvref_t<Values>...> again;
  try {
    std::apply([&](auto&... copies) { decode_values(once.bytes(), copies...); }, again);
  } catch (const std::exception& e) {
    broken(std::string("a decoded value, encoded again, does not decode: ") + e.what());
  }
  if (!exact) return;
  wire::buffer twice;
  std::apply([&](const auto&... copies) { encode_values(twice, copies...); }, again);
  require(once.size() == twice.size() && std::memcmp(once.data(), twice.data(), once.size()) == 0,
          "a decoded value encodes differently once decoded again");
}

// Records the bytes allocated when the implementation is first entered, that
// is, by decoding the arguments alone; checks their round trip; echoes.
struct echo final : fuzz_shapes {
  std::size_t start = 0;
  std::optional<std::size_t> decoded;

  void entered() { decoded = isolate_fuzz::bytes_requested.load() - start; }

  int add(int a, int b) override {
    entered();
    return static_cast<int>(static_cast<unsigned>(a) + static_cast<unsigned>(b));
  }
  tree grow(const tree& t, std::uint8_t) override {
    entered();
    require_round_trip(true, t);
    tree copy;
    copy.label = t.label;
    copy.value = t.value;
    return copy;
  }
  catalogue merge(const catalogue& a, const catalogue& b) override {
    entered();
    require_round_trip(true, a, b);
    catalogue merged = a;
    merged.ids.insert(b.ids.begin(), b.ids.end());
    return merged;
  }
  scalar pick(scalar s, std::tuple<bool, std::string, std::optional<double>> t) override {
    entered();
    require_round_trip(true, s, t);
    return std::get<0>(t) ? scalar(std::get<1>(t)) : s;
  }
  hashed rehash(const hashed& h) override {
    entered();
    require_round_trip(false, h);
    return h;
  }
  std::shared_ptr<tree> share(std::shared_ptr<tree> a, std::shared_ptr<tree> b) override {
    entered();
    require_round_trip(true, a, b);
    return a ? a : b;
  }
  void notify(std::string s, bool b) override {
    entered();
    require_round_trip(true, s, b);
  }
};

// The rest of a payload, served `piece` bytes at a time as a ring would.
class pieces final : public wire::chunk_source {
 public:
  pieces(std::span<const std::byte> rest, std::size_t piece) : rest_(rest), piece_(piece) {}
  std::span<const std::byte> next() override {
    auto taken = rest_.first(std::min(piece_, rest_.size()));
    rest_ = rest_.subspan(taken.size());
    return taken;
  }
  void finish() noexcept override {}

 private:
  std::span<const std::byte> rest_;
  std::size_t piece_;
};

template <std::size_t K>
using result_of = typename isolate::detail::method_traits<
    std::remove_const_t<std::tuple_element_t<K, std::remove_const_t<decltype(meta::pointers)>>>>::result_type;

// The bytes allocated since `start`: what decode_reply allocated, measured
// as soon as it returns (before the checks that follow allocate more).
struct meter {
  std::size_t start = isolate_fuzz::bytes_requested.load();
  std::optional<std::size_t> decoded;
  void stop() { decoded = isolate_fuzz::bytes_requested.load() - start; }
  std::size_t bytes() const { return decoded.value_or(isolate_fuzz::bytes_requested.load() - start); }
};

// decode_reply<R> for method `method`'s result.
template <std::size_t K = 0>
void decode_reply_for(std::size_t method, const wire::buffer& frame, meter& allocated) {
  if constexpr (K < meta::method_count) {
    if (method != K) return decode_reply_for<K + 1>(method, frame, allocated);
    using result = result_of<K>;
    if constexpr (std::is_void_v<result>) {
      isolate::detail::decode_reply<void>(frame, max_payload);
      allocated.stop();
    } else {
      result value = isolate::detail::decode_reply<result>(frame, max_payload);
      allocated.stop();
      require_round_trip(!std::is_same_v<result, hashed>, value);
    }
  }
}

// Runs decode_reply and checks how it may fail.
void check_reply(std::size_t method, const wire::buffer& frame, bool error_frame) {
  meter allocated;
  try {
    decode_reply_for(method, frame, allocated);
  } catch (const cereal::Exception& e) {
    broken(std::string("a Cereal exception left decode_reply: ") + e.what());
  } catch (const isolate::error& e) {
    const bool expected = e.code() == isolate::errc::protocol_error || e.code() == isolate::errc::message_too_large;
    require(expected || error_frame, std::string("decode_reply of a non-error frame threw ") + e.what());
  } catch (const std::exception& e) {
    // An error frame rethrows the plugin's exception as its own type.
    require(error_frame, std::string("decode_reply of a non-error frame threw a non-isolate exception: ") + e.what());
  } catch (...) {
    broken("decode_reply threw something that is not a std::exception");
  }
  require_within_budget(allocated.bytes(), frame.size() - wire::header_size, "decode_reply");
}

void fuzz_call(std::uint16_t method, std::size_t piece, std::span<const std::byte> payload) {
  echo impl;
  wire::buffer reply;
  bool malformed = false;
  const wire::frame_header header{static_cast<std::uint32_t>(payload.size()), wire::frame_kind::call, 0, method, 42};
  pieces rest(payload.subspan(std::min(piece, payload.size())), piece);
  impl.start = isolate_fuzz::bytes_requested.load();
  try {
    if (piece == 0) {
      isolate::detail::stub<fuzz_shapes>::handle(impl, wire::frame_view{header, payload}, reply, max_payload,
                                                 &malformed);
    } else {
      const wire::inbound_payload inbound{payload.first(std::min(piece, payload.size())), payload.size(), &rest};
      isolate::detail::stub<fuzz_shapes>::handle(impl, header, inbound, reply, max_payload, &malformed);
    }
  } catch (...) {
    broken("stub::handle threw; it promises to turn every failure into an error reply");
  }
  const std::size_t decoding = impl.decoded.value_or(isolate_fuzz::bytes_requested.load() - impl.start);
  require_within_budget(decoding, payload.size(), "stub::handle's argument decoding");

  wire::frame_view frame;
  try {
    frame = wire::parse(reply.bytes(), max_payload);
  } catch (const std::exception& e) {
    broken(std::string("stub::handle wrote a malformed frame: ") + e.what());
  }
  require(frame.header.call_id == 42 && frame.header.method == method, "the reply does not name its call");
  const bool error_frame = frame.header.kind == wire::frame_kind::error;
  require(error_frame || frame.header.kind == wire::frame_kind::reply, "the reply is neither a reply nor an error");
  require(error_frame || !malformed, "a call flagged malformed got a reply");
  require(!error_frame || malformed || impl.decoded, "an error reply without a malformed call or a run");
  if (method < meta::method_count) check_reply(method, reply, error_frame);
}

void fuzz_reply(std::uint16_t method, std::uint8_t kind, std::span<const std::byte> payload) {
  wire::buffer frame;
  wire::begin_frame(frame);
  frame.append(payload.data(), payload.size());
  wire::finish_frame(frame, static_cast<wire::frame_kind>(kind), method, 7);
  check_reply(method % meta::method_count, frame, kind == static_cast<std::uint8_t>(wire::frame_kind::error));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  input in(data, size);
  const auto mode = in.take<std::uint8_t>();
  // One id past the table, to reach the unknown-method path.
  const auto method = static_cast<std::uint16_t>(in.take<std::uint8_t>() % (meta::method_count + 1));
  const auto piece = in.take<std::uint8_t>();
  const auto kind = in.take<std::uint8_t>();
  if (mode % 2 == 0) {
    fuzz_call(method, piece, in.rest());
  } else {
    fuzz_reply(method, kind, in.rest());
  }
  return 0;
}
