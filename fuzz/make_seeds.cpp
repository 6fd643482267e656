// Writes the seed corpus: a few valid inputs per target, in the format its
// header comment describes. Run it after changing a target's input format:
//   build-fuzz/fuzz/make_seeds fuzz/corpus
#include "shapes.hpp"

#include <isolate/detail/codec.hpp>
#include <isolate/detail/process/control_channel.hpp>
#include <isolate/detail/process/handshake.hpp>
#include <isolate/wire/exception_codec.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace wire = isolate::wire;
namespace d = isolate::detail;
using bytes = std::vector<std::byte>;
using namespace isolate_fuzz;

fs::path corpus;

void save(const std::string& target, const std::string& name, const bytes& content) {
  fs::create_directories(corpus / target);
  std::ofstream out(corpus / target / name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(content.data()), static_cast<std::streamsize>(content.size()));
  if (!out) throw std::runtime_error("cannot write " + (corpus / target / name).string());
}

template <class T>
  requires std::is_arithmetic_v<T> || std::is_enum_v<T>
void put(bytes& out, T value) {
  const auto* p = reinterpret_cast<const std::byte*>(&value);
  out.insert(out.end(), p, p + sizeof value);
}
void put(bytes& out, std::span<const std::byte> more) { out.insert(out.end(), more.begin(), more.end()); }
void put(bytes& out, const bytes& more) { out.insert(out.end(), more.begin(), more.end()); }
void put(bytes& out, const wire::buffer& more) { put(out, more.bytes()); }

bytes to_bytes(const wire::buffer& buffer) { return {buffer.data(), buffer.data() + buffer.size()}; }

bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const auto& part : parts) put(out, part);
  return out;
}

template <class... Values>
wire::buffer payload_of(const Values&... values) {
  wire::buffer out;
  d::encode_values(out, values...);
  return out;
}

wire::buffer frame_of(wire::frame_kind kind, std::uint16_t method, const wire::buffer& payload) {
  wire::buffer frame;
  wire::begin_frame(frame);
  frame.append(payload.data(), payload.size());
  wire::finish_frame(frame, kind, method, 1);
  return frame;
}

wire::buffer error_payload() {
  wire::buffer out;
  wire::encode_exception(out, std::make_exception_ptr(std::invalid_argument("division by zero")));
  return out;
}

tree sample_tree() {
  tree root;
  root.label = "root";
  root.value = std::int64_t{42};
  root.children.resize(2);
  root.children[0].label = "left";
  root.children[0].value = std::string("leaf");
  root.children[1].label = "right";
  root.children[1].value = std::vector<std::uint8_t>{1, 2, 3};
  root.children[1].children.resize(1);
  root.next = std::make_unique<tree>();
  root.next->label = "next";
  auto shared = std::make_shared<tree>();
  shared->label = "shared";
  root.shared = shared;
  root.children[0].shared = shared;  // the same object twice: Cereal sends it once
  root.index.emplace();
  (*root.index)["first"] = shared;
  return root;
}

catalogue sample_catalogue() {
  catalogue c;
  c.columns["a"] = {1, std::nullopt, 3};
  c.groups.emplace(std::int16_t{1}, std::set<std::string>{"x", "y"});
  c.groups.emplace(std::int16_t{1}, std::set<std::string>{"z"});
  c.history.push_back({{"step", 0.5}, {"next", 1.5}});
  c.flags = {{true, false}, {}};
  c.ids = {3, 1, 3};
  return c;
}

hashed sample_hashed() {
  hashed h;
  h.buckets["even"] = {2, 4};
  h.buckets["odd"] = {1};
  h.pairs.emplace(std::uint8_t{7}, "seven");
  return h;
}

void stub_decoding_seeds() {
  // mode, method, piece, kind, payload (see stub_decoding.cpp).
  auto call = [](std::uint8_t method, std::uint8_t piece, const wire::buffer& payload) {
    bytes out;
    put(out, std::uint8_t{0});
    put(out, method);
    put(out, piece);
    put(out, std::uint8_t{0});
    put(out, payload);
    return out;
  };
  auto reply = [](std::uint8_t method, wire::frame_kind kind, const wire::buffer& payload) {
    bytes out;
    put(out, std::uint8_t{1});
    put(out, method);
    put(out, std::uint8_t{0});
    put(out, static_cast<std::uint8_t>(kind));
    put(out, payload);
    return out;
  };
  const auto shared = std::make_shared<tree>(sample_tree());
  const std::tuple<bool, std::string, std::optional<double>> choice{true, "chosen", 2.5};
  save("stub_decoding", "call-add", call(0, 0, payload_of(2, 3)));
  save("stub_decoding", "call-grow", call(1, 0, payload_of(sample_tree(), std::uint8_t{2})));
  save("stub_decoding", "call-grow-in-pieces", call(1, 7, payload_of(sample_tree(), std::uint8_t{2})));
  save("stub_decoding", "call-merge", call(2, 0, payload_of(sample_catalogue(), sample_catalogue())));
  save("stub_decoding", "call-pick", call(3, 0, payload_of(scalar(std::string("s")), choice)));
  save("stub_decoding", "call-rehash", call(4, 0, payload_of(sample_hashed())));
  save("stub_decoding", "call-share", call(5, 0, payload_of(shared, shared)));
  save("stub_decoding", "call-notify", call(6, 0, payload_of(std::string("event"), true)));
  save("stub_decoding", "reply-grow", reply(1, wire::frame_kind::reply, payload_of(sample_tree())));
  save("stub_decoding", "reply-merge", reply(2, wire::frame_kind::reply, payload_of(sample_catalogue())));
  save("stub_decoding", "reply-pick", reply(3, wire::frame_kind::reply, payload_of(scalar(2.5))));
  save("stub_decoding", "reply-rehash", reply(4, wire::frame_kind::reply, payload_of(sample_hashed())));
  save("stub_decoding", "reply-share", reply(5, wire::frame_kind::reply, payload_of(shared)));
  save("stub_decoding", "reply-error", reply(0, wire::frame_kind::error, error_payload()));
}

void frame_decoder_seeds() {
  // mode, max payload (u16), ring capacity (u8), then the bytes (see frame_decoder.cpp).
  auto head = [](std::uint8_t mode, std::uint8_t capacity) {
    bytes out;
    put(out, mode);
    put(out, std::uint16_t{4096});
    put(out, capacity);
    return out;
  };
  const auto reply = frame_of(wire::frame_kind::reply, 1, payload_of(std::string("hello"), 7));
  const auto error = frame_of(wire::frame_kind::error, 2, error_payload());
  const auto call = frame_of(wire::frame_kind::call, 0, payload_of(2, 3));
  auto socket = [](const wire::buffer& frame) {
    bytes out;
    put(out, d::encode_control_header(0, static_cast<std::uint32_t>(frame.size())));
    put(out, frame);
    return out;
  };
  auto record = [](std::span<const std::byte> part) {
    bytes out;
    put(out, static_cast<std::uint16_t>(part.size()));
    put(out, part);
    return out;
  };
  save("frame_decoder", "parse-reply", cat({head(0, 0), to_bytes(reply)}));
  save("frame_decoder", "parse-error", cat({head(0, 0), to_bytes(error)}));
  save("frame_decoder", "socket-frames", cat({head(1, 0), socket(call), socket(error), socket(reply)}));
  save("frame_decoder", "rings-frames", cat({head(2, 4), record(call.bytes()), record(reply.bytes())}));
  // A frame in two records (a 64-byte ring takes records of 24 bytes at most).
  save("frame_decoder", "rings-split", cat({head(2, 0), record(reply.bytes().first(24)), record(reply.bytes().subspan(24))}));
}

void ring_reader_seeds() {
  // capacity, then operations: an op byte and its arguments (see ring_reader.cpp).
  enum op : std::uint8_t { write, reserve_commit, try_read, read, release, set_write_index, set_read_index, scribble };
  auto write_read = [](std::uint16_t size) {
    bytes out;
    put(out, op::write);
    put(out, size);
    put(out, op::try_read);
    put(out, op::release);
    return out;
  };
  bytes steady{std::byte{0}};  // 64-byte ring: records of up to 24 bytes
  for (int size : {0, 1, 8, 20, 24, 13, 24, 7}) put(steady, write_read(static_cast<std::uint16_t>(size)));
  save("ring_reader", "steady", steady);

  bytes wrap{std::byte{2}};  // 256 bytes: two records, then one that needs padding
  for (std::uint16_t size : {std::uint16_t{100}, std::uint16_t{80}}) {
    put(wrap, op::write);
    put(wrap, size);
  }
  for (int i = 0; i < 2; ++i) {
    put(wrap, op::read);
    put(wrap, std::uint8_t{1});
    put(wrap, op::release);
  }
  put(wrap, op::reserve_commit);
  put(wrap, std::uint16_t{100});
  put(wrap, std::uint16_t{60});
  put(wrap, op::try_read);
  put(wrap, op::release);
  save("ring_reader", "wrap", wrap);

  bytes hostile{std::byte{1}};
  put(hostile, op::write);
  put(hostile, std::uint16_t{16});
  put(hostile, op::set_write_index);
  put(hostile, std::uint8_t{1});  // a step of whole records
  put(hostile, std::uint64_t{2});
  put(hostile, op::scribble);
  put(hostile, std::uint8_t{2});  // a padding header
  put(hostile, std::uint16_t{0});
  put(hostile, std::uint32_t{16});
  put(hostile, op::try_read);
  put(hostile, op::set_read_index);
  put(hostile, std::uint8_t{0});
  put(hostile, std::uint64_t{8});
  put(hostile, op::write);
  put(hostile, std::uint16_t{8});
  save("ring_reader", "hostile", hostile);

  // Three records read, then the peer publishes 32 more bytes and forges a
  // record header 16 bytes before the end whose record would run past it.
  bytes past_end{std::byte{0}};
  for (int i = 0; i < 3; ++i) put(past_end, write_read(8));
  put(past_end, op::set_write_index);
  put(past_end, std::uint8_t{1});
  put(past_end, std::uint64_t{4});
  put(past_end, op::scribble);
  put(past_end, std::uint8_t{1});  // a record header
  put(past_end, std::uint16_t{6});
  put(past_end, std::uint32_t{24});
  put(past_end, op::try_read);
  save("ring_reader", "record-past-the-end", past_end);
}

void handshake_seeds() {
  d::hello_message hello;
  hello.plugin_path = "plugins/libcalculator_plugin.so";
  hello.interface_name = "calculator";
  hello.fingerprint = 0x1234'5678'9abc'def0;
  hello.ring_capacity = 1 << 20;
  hello.max_message_size = 64 << 20;
  hello.max_spin_ns = 50'000;
  hello.services.push_back({"accountant", 42});
  hello.limits.policy.read_only = {"/usr/lib", "/etc/ssl"};
  hello.limits.policy.writable = {"/tmp/plugin"};
  hello.limits.memory_cgroup = "cgroup v2 memory.max 64 MiB";
  d::applied_message applied;
  applied.limits = {{"memory", "RLIMIT_DATA 256 MiB", true}, {"network", "a network namespace", false}};
  // The type byte selects the message (see handshake.cpp).
  auto typed = [](std::uint8_t type, const bytes& body) { return cat({bytes{std::byte{type}}, body}); };
  save("handshake", "hello", typed(0, d::encode_message(hello)));
  save("handshake", "ready", typed(1, d::encode_message(d::ready_message{true, true})));
  save("handshake", "applied", typed(8, d::encode_message(applied)));
  save("handshake", "failed", typed(2, d::encode_message(d::failed_message{5, "cannot load the plugin"})));
  save("handshake", "buffer", typed(3, d::encode_message(d::buffer_message{7, 4096})));
  save("handshake", "forget", typed(4, d::encode_message(d::forget_message{7, 2})));
  save("handshake", "sync", typed(5, d::encode_message(d::sync_message{9})));
  save("handshake", "listener", typed(6, d::encode_message(d::listener_message{{"/usr"}, {"/tmp"}})));
  save("handshake", "limits", typed(7, d::encode_message(hello.limits)));
}

void control_message_seeds() {
  // max body size (u16), then messages: header (type, length) and body.
  auto message = [](d::control_type type, const bytes& body) {
    bytes out;
    put(out, d::encode_control_header(static_cast<std::uint32_t>(type), static_cast<std::uint32_t>(body.size())));
    put(out, body);
    return out;
  };
  bytes limit;
  put(limit, std::uint16_t{1024});
  save("control_message", "session",
       cat({limit, message(d::control_type::ready, d::encode_message(d::ready_message{})),
            message(d::control_type::doorbell, {}), message(d::control_type::sync, d::encode_message(d::sync_message{3})),
            message(d::control_type::shutdown, {})}));
  bytes cut = cat({limit, message(d::control_type::failed, d::encode_message(d::failed_message{1, "gone"}))});
  cut.resize(cut.size() - 3);  // the peer stops mid-message
  save("control_message", "cut-short", cut);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus directory, e.g. fuzz/corpus>\n", argv[0]);
    return 2;
  }
  corpus = argv[1];
  try {
    stub_decoding_seeds();
    frame_decoder_seeds();
    handshake_seeds();
    control_message_seeds();
    ring_reader_seeds();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
