// isolate::shared_buffer: memory the host and a plugin both map, passed to a
// plugin method without copying its contents.
//
//   ISOLATE_INTERFACE(hasher, (std::uint64_t, checksum, (isolate::shared_buffer const&)));
//
//   isolate::shared_buffer image(64 << 20);            // host: a sealed memfd, mapped read-write
//   std::ranges::fill(image.bytes(), std::byte{1});
//   auto sum = plugin->checksum(image);                 // the plugin maps the same pages
//
// A shared_buffer is a handle: copies share one mapping, which goes away with
// the last of them. What a call carries is the buffer's id and size, never its
// bytes, so a call costs the same for 1 KiB as for 1 GiB. Under in_process the
// object is passed as is; under thread it is found again by id in this
// process; under process the worker receives the memfd once (on the control
// socket, before the first call that carries it), maps it once and keeps it
// until the host releases its last handle and the plugin its own.
//
// Both sides read and write the same memory at once: synchronising access is
// the caller's business (the call itself orders what was written before it).
// After a process plugin had a buffer, treat its contents as untrusted input:
// the plugin may change them at any time, even after the call returned.
//
// Lending (enforced for process plugins, by the plugin's own page tables):
//
//   plugin->checksum(image.read_only());     // mapped read-only: a write kills the plugin
//   plugin->fill(image.for_one_call(), 7);   // unmapped when the call returns
//   plugin->checksum(image.read_only().for_one_call());
#ifndef ISOLATE_SHARED_BUFFER_HPP
#define ISOLATE_SHARED_BUFFER_HPP

#include "isolate/detail/config.hpp"
#include "isolate/error.hpp"
#include "isolate/shm/region.hpp"
#include "isolate/wire/archive.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace isolate {

class shared_buffer;

namespace detail {

// Somewhere a buffer was shared with (one worker process); told when the
// host lets go of the buffer, so the worker can unmap it. `answers`: how many
// of the host's answers to the plugin's own calls named it; the worker keeps
// the buffer until it has decoded them all, since the host holds no handle
// for an answer in flight (it does for its calls, until their replies).
class buffer_peer {
 public:
  virtual void forget(std::uint64_t id, std::uint64_t answers) noexcept = 0;

 protected:
  ~buffer_peer() = default;
};

// Turns the (id, size) a peer sent back into the buffer it names. Throws
// isolate::error(protocol_error) when it names none that this side may use.
class buffer_resolver {
 public:
  virtual shared_buffer find(std::uint64_t id, std::uint64_t size) = 0;

 protected:
  ~buffer_resolver() = default;
};

// Each shared library has its own copy of isolate's inline variables; the
// address of this one tells the copies apart.
inline const char this_copy_of_isolate = 0;

// How a buffer is lent to a process plugin (shared_buffer::read_only,
// for_one_call): bits, as they travel in the share_buffer message.
enum lending : std::uint8_t {
  lent_shared = 0,        // mapped read-write until both sides let go
  lent_read_only = 1,     // mapped read-only (from a read-only descriptor)
  lent_for_one_call = 2,  // unmapped by the worker when the call naming it returns
};

// What every copy of a shared_buffer points to: the mapping and where it went.
class shared_buffer_state {
 public:
  shared_buffer_state(std::uint64_t id, shm::region region) noexcept : id_(id), region_(std::move(region)) {}
  // A lend of `origin`'s bytes under an id of its own, so that a worker maps
  // it apart from any other lend of the same bytes.
  shared_buffer_state(std::uint64_t id, std::shared_ptr<shared_buffer_state> origin, std::uint8_t how) noexcept
      : id_(id), origin_(std::move(origin)), lending_(how) {}
  shared_buffer_state(const shared_buffer_state&) = delete;
  shared_buffer_state& operator=(const shared_buffer_state&) = delete;
  ~shared_buffer_state() {
    // Unmapped here when this is the host's; each worker unmaps its own once told.
    for (const auto& entry : peers_) {
      if (auto peer = entry.peer.lock()) peer->forget(id_, entry.answers);
    }
  }

  std::uint64_t id() const noexcept { return id_; }
  const shm::region& region() const noexcept { return origin_ ? origin_->region() : region_; }
  std::uint8_t lending() const noexcept { return lending_; }
  // The state whose mapping this one lends (itself when it is no lend).
  const shared_buffer_state& origin() const noexcept { return origin_ ? *origin_ : *this; }
  const std::shared_ptr<shared_buffer_state>& origin_pointer() const noexcept { return origin_; }

  // Whether this state was made by this copy of isolate's code: only then
  // may this copy keep a reference to it, since releasing the last one runs
  // the code of the copy that made it (gone once a plugin library unloads).
  bool made_here() const noexcept { return made_by_ == &this_copy_of_isolate; }

  // Records `peer` as having the buffer.
  void add_peer(const std::shared_ptr<buffer_peer>& peer) {
    std::lock_guard lock(mutex_);
    std::erase_if(peers_, [](const auto& entry) { return entry.peer.expired(); });
    peers_.push_back({peer, 0});
  }
  bool has_peer(const buffer_peer* peer) const {
    std::lock_guard lock(mutex_);
    return std::ranges::any_of(peers_, [&](const auto& entry) { return entry.peer.lock().get() == peer; });
  }
  // One more answer to `peer` names the buffer (it must have it).
  void count_answer(const buffer_peer* peer) {
    std::lock_guard lock(mutex_);
    for (auto& entry : peers_) {
      if (entry.peer.lock().get() == peer) ++entry.answers;
    }
  }

  // A worker's buffer lent for one call: see shm::region::revoke.
  bool revoke() noexcept { return region_.revoke(); }

  // Which copy of the in-process registry knows this buffer (each shared
  // library has its own copy; see local_buffers()).
  std::atomic<const void*> registered_in{nullptr};

 private:
  const std::uint64_t id_;
  const void* const made_by_ = &this_copy_of_isolate;
  shm::region region_;                          // empty for a lend
  std::shared_ptr<shared_buffer_state> origin_;  // a lend: whose bytes
  const std::uint8_t lending_ = lent_shared;
  struct peer_entry {
    std::weak_ptr<buffer_peer> peer;
    std::uint64_t answers = 0;
  };
  mutable std::mutex mutex_;  // guards peers_
  std::vector<peer_entry> peers_;
};

// Ids only need to be unique in one host; a random start keeps the ids made
// by a plugin library's own copy of this counter apart from the host's.
inline std::uint64_t next_shared_buffer_id() {
  static std::atomic<std::uint64_t> next{[] {
    std::random_device random;
    return (std::uint64_t{random()} << 32) ^ random();
  }()};
  std::uint64_t id = 0;
  while (id == 0) id = next.fetch_add(1, std::memory_order_relaxed);
  return id;
}

struct shared_buffer_access;

}  // namespace detail

// A handle on memory shared with plugins (see the top of this file).
//
// Thread safety: distinct handles, even of the same buffer, may be used,
// copied and destroyed from any threads at once (as std::shared_ptr). One
// handle may be used from several threads at once only through const members,
// never while another thread assigns to it. The bytes are not synchronised
// at all: whoever reads and writes them at once, threads of the host or the
// plugin, must order their accesses themselves; a call orders what was written
// before it against what the plugin reads.
class shared_buffer {
 public:
  // An empty buffer: no memory, size 0.
  shared_buffer() noexcept = default;

  // `size` zero-filled bytes in a new memfd, sealed against resizing and
  // mapped read-write. Pages are allocated when first touched. Throws
  // isolate::error carrying the system's error code when the system refuses
  // (too many open files, not enough memory).
  explicit shared_buffer(std::size_t size) {
    if (size == 0) return;
    std::error_code ec;
    auto region = shm::region::create(size, "isolate-shared-buffer", ec);
    if (ec) {
      throw error(ec, fmt::format("cannot create a shared buffer of {} bytes: {}", size, ec.message()));
    }
    state_ = std::make_shared<detail::shared_buffer_state>(detail::next_shared_buffer_id(), std::move(region));
  }

  // A handle: `const` says nothing about the bytes, which both sides may write.
  std::byte* data() const noexcept { return state_ ? state_->region().data() : nullptr; }
  std::size_t size() const noexcept { return state_ ? state_->region().size() : 0; }
  bool empty() const noexcept { return size() == 0; }
  std::span<std::byte> bytes() const noexcept { return {data(), size()}; }

  // The bytes as an array of T (as many whole T as fit). The mapping is
  // page-aligned, so any T with alignof(T) <= 4096 is aligned.
  template <class T>
  std::span<T> as() const noexcept {
    static_assert(std::is_trivially_copyable_v<T> && !std::is_reference_v<T>,
                  "shared_buffer::as<T>(): T must be trivially copyable (numbers, plain structs): the other side "
                  "sees only bytes, so a type owning memory or holding pointers cannot live in a shared buffer.");
    static_assert(alignof(T) <= 4096, "shared_buffer::as<T>(): T needs more alignment than a page");
    return {static_cast<T*>(static_cast<void*>(data())), size() / sizeof(T)};
  }

  // Lends of these bytes to a process plugin, each a handle of its own (the
  // original is unchanged; lends combine). Passed to a process plugin:
  // - read_only(): the worker maps them read-only, from a read-only
  //   descriptor: a write faults the plugin (plugin_crashed), never the host,
  //   and the plugin cannot map them writable;
  // - for_one_call(): the worker maps them for each call that names the lend
  //   and, before that call's reply, replaces the mapping with inaccessible
  //   memory and closes the descriptor: a later access faults the plugin.
  //   A plugin that keeps the handle keeps no bytes.
  // Under in_process and thread the plugin shares the host's address space:
  // it gets the same bytes, unprotected.
  shared_buffer read_only() const { return lend(detail::lent_read_only); }
  shared_buffer for_one_call() const { return lend(detail::lent_for_one_call); }
  bool is_read_only() const noexcept { return state_ && (state_->lending() & detail::lent_read_only) != 0; }
  bool is_for_one_call() const noexcept { return state_ && (state_->lending() & detail::lent_for_one_call) != 0; }

  // Whether two handles name the same mapping (a lend names its own).
  friend bool operator==(const shared_buffer& a, const shared_buffer& b) noexcept { return a.state_ == b.state_; }

 private:
  friend struct detail::shared_buffer_access;
  explicit shared_buffer(std::shared_ptr<detail::shared_buffer_state> state) noexcept : state_(std::move(state)) {}

  shared_buffer lend(std::uint8_t how) const {
    if (!state_) return {};
    auto origin = state_->origin_pointer() ? state_->origin_pointer() : state_;
    return shared_buffer(std::make_shared<detail::shared_buffer_state>(
        detail::next_shared_buffer_id(), std::move(origin), static_cast<std::uint8_t>(state_->lending() | how)));
  }

  std::shared_ptr<detail::shared_buffer_state> state_;
};

namespace detail {

// What transports see of a shared_buffer.
struct shared_buffer_access {
  static const std::shared_ptr<shared_buffer_state>& state(const shared_buffer& buffer) noexcept {
    return buffer.state_;
  }
  // A buffer for a mapping received from the host, under the host's id.
  static shared_buffer adopt(std::uint64_t id, shm::region region) {
    return shared_buffer(std::make_shared<shared_buffer_state>(id, std::move(region)));
  }
  static shared_buffer from(std::shared_ptr<shared_buffer_state> state) noexcept {
    return shared_buffer(std::move(state));
  }
};

// The buffers of this process, by id, for transports that stay in it
// (thread): a buffer is entered when it is encoded. Holds no buffer alive.
// Each plugin library has its own copy, but in-process transports encode and
// decode in the host's code, so the host's copy sees them all.
class local_buffer_registry final : public buffer_resolver {
 public:
  void remember(const std::shared_ptr<shared_buffer_state>& state) {
    if (state->registered_in.load(std::memory_order_acquire) == this) return;
    std::lock_guard lock(mutex_);
    if (buffers_.size() >= prune_at_) {
      std::erase_if(buffers_, [](const auto& entry) { return entry.second.expired(); });
      prune_at_ = std::max<std::size_t>(64, 2 * buffers_.size());
    }
    buffers_[state->id()] = state;
    state->registered_in.store(this, std::memory_order_release);
  }

  shared_buffer find(std::uint64_t id, std::uint64_t size) override {
    std::shared_ptr<shared_buffer_state> state;
    {
      std::lock_guard lock(mutex_);
      if (auto found = buffers_.find(id); found != buffers_.end()) state = found->second.lock();
    }
    if (!state) {
      throw error(errc::protocol_error,
                  fmt::format("a message names shared buffer {:#x}, which the host did not make or no longer "
                              "holds: a plugin may only send back buffers the host gave it and still holds",
                              id));
    }
    if (state->region().size() != size) {
      throw error(errc::protocol_error, fmt::format("a message gives shared buffer {:#x} a size of {} bytes, but it "
                                                    "has {}", id, size, state->region().size()));
    }
    return shared_buffer_access::from(std::move(state));
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::weak_ptr<shared_buffer_state>> buffers_;
  std::size_t prune_at_ = 64;
};

inline local_buffer_registry& local_buffers() {
  static local_buffer_registry registry;
  return registry;
}

// The shared_buffers encoded into the call being built on this thread: the
// caller keeps them alive until the call is over, and the process transport
// sends the ones a worker does not have yet before the call itself.
using buffer_attachments = std::vector<shared_buffer>;
inline thread_local buffer_attachments* attachments_being_encoded = nullptr;

// Where the buffers named by a message being decoded on this thread are found.
inline thread_local buffer_resolver* resolver_for_decoding = nullptr;

// A plugin library's resolver, set when its object is created (a plugin's own
// copy of this variable: see plugin_context::shared_buffers).
inline std::atomic<buffer_resolver*> plugin_buffer_resolver{nullptr};

inline buffer_resolver& current_buffer_resolver() {
  if (resolver_for_decoding != nullptr) return *resolver_for_decoding;
  if (auto* plugin = plugin_buffer_resolver.load(std::memory_order_acquire)) return *plugin;
  return local_buffers();
}

// Collects the buffers encoded on this thread while it lives.
class attachment_scope {
 public:
  attachment_scope() noexcept : previous_(std::exchange(attachments_being_encoded, &buffers_)) {}
  ~attachment_scope() { attachments_being_encoded = previous_; }
  attachment_scope(const attachment_scope&) = delete;
  attachment_scope& operator=(const attachment_scope&) = delete;
  buffer_attachments& buffers() noexcept { return buffers_; }

 private:
  buffer_attachments buffers_;
  buffer_attachments* previous_;
};

// The attachments of the call about to be sent from this thread, taken by the
// transport that sends it (so that calls it makes meanwhile do not see them).
inline buffer_attachments* take_attachments() noexcept { return std::exchange(attachments_being_encoded, nullptr); }

// Decodes with `resolver` while it lives (null: the default lookup).
class resolution_scope {
 public:
  explicit resolution_scope(buffer_resolver* resolver) noexcept
      : previous_(std::exchange(resolver_for_decoding, resolver)) {}
  ~resolution_scope() { resolver_for_decoding = previous_; }
  resolution_scope(const resolution_scope&) = delete;
  resolution_scope& operator=(const resolution_scope&) = delete;

 private:
  buffer_resolver* previous_;
};

}  // namespace detail

// On the wire a shared_buffer is its id and size (an empty one: 0, 0).
inline void CEREAL_SAVE_FUNCTION_NAME(wire::output_archive& ar, const shared_buffer& buffer) {
  const auto& state = detail::shared_buffer_access::state(buffer);
  const std::uint64_t id = state ? state->id() : 0;
  const std::uint64_t size = buffer.size();
  ar.save_bytes(&id, sizeof id);
  ar.save_bytes(&size, sizeof size);
  if (!state) return;
  // Found again by id when decoded in this process: a buffer this copy of
  // the code made (the host's own, under thread), and not in a worker, whose
  // plugin decodes through the worker's table.
  if (state->made_here() && detail::plugin_buffer_resolver.load(std::memory_order_relaxed) == nullptr) {
    detail::local_buffers().remember(state);
  }
  if (auto* attachments = detail::attachments_being_encoded) attachments->push_back(buffer);
}

inline void CEREAL_LOAD_FUNCTION_NAME(wire::input_archive& ar, shared_buffer& buffer) {
  std::uint64_t id = 0;
  std::uint64_t size = 0;
  ar.load_bytes(&id, sizeof id);
  ar.load_bytes(&size, sizeof size);
  if (id == 0) {
    if (size != 0) throw error(errc::protocol_error, "an empty shared buffer with a size of " + std::to_string(size));
    buffer = shared_buffer();
    return;
  }
  buffer = detail::current_buffer_resolver().find(id, size);
}

}  // namespace isolate

#endif
