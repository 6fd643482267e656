// The objects one side of a link has handed to the other (isolate::capability),
// and the way back to the objects the other side handed over.
//
// Out of process, an object crosses as an id: its owner keeps it in this
// table under a fresh id for each time it is sent, and the receiver calls it
// through a proxy whose frames (kind object_call) carry that id before their
// arguments. When the receiver drops the proxy, a release frame tells the
// owner to drop its entry; when the worker dies, the host drops every entry
// it held for it, and the host's proxies of the dead worker's objects fail
// with plugin_closed. Ids are never reused, so a release or a stale proxy can
// only ever name its own entry.
//
// In the same process (the thread transport), a `local` table makes the
// object itself cross: the frame carries a pointer to a heap copy of its
// shared_ptr. Only a thread link uses one; a process link's table refuses
// such bytes, so a worker can never make the host read a pointer.
#ifndef ISOLATE_DETAIL_CAPABILITY_TABLE_HPP
#define ISOLATE_DETAIL_CAPABILITY_TABLE_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/link.hpp"
#include "isolate/error.hpp"
#include "isolate/wire/buffer.hpp"
#include "isolate/wire/frame.hpp"
#include "isolate/wire/stream.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace isolate::detail {

// An object_call's payload starts with the id of the object it calls.
inline constexpr std::size_t object_id_size = sizeof(std::uint64_t);

class capability_table : public std::enable_shared_from_this<capability_table> {
 public:
  // Runs one call on an exported object (stub<I>::handle, seen without I).
  using handler = void (*)(void* object, const wire::frame_header& header, const wire::inbound_payload& payload,
                           wire::buffer& reply, std::size_t max_payload, bool* malformed);
  struct exported {
    std::shared_ptr<void> object;  // an I*, of the interface `handle` serves
    handler handle = nullptr;
  };

  // A table for a link to another process: `calls` carries calls to the
  // peer's objects, `releases` the release frames (one-way from a plugin).
  capability_table(link* calls, link* releases, std::size_t max_message_size)
      : calls_(calls), releases_(releases), max_message_size_(max_message_size), next_id_(id_base()) {}

  // A table for a link within this process (the thread transport): objects
  // cross as themselves, and those decoded hold `library` (the plugin's
  // shared library, kept mapped while the host holds an object it made).
  struct local_tag {};
  capability_table(local_tag, std::shared_ptr<const void> library) : local_(true), library_(std::move(library)) {}

  capability_table(const capability_table&) = delete;
  capability_table& operator=(const capability_table&) = delete;

  bool local() const noexcept { return local_; }
  const std::shared_ptr<const void>& library() const noexcept { return library_; }

  // ---- what this side exported ----

  std::uint64_t add(exported entry) {
    std::lock_guard lock(exports_mutex_);
    const std::uint64_t id = next_id_++;
    exports_.emplace(id, std::move(entry));
    return id;
  }
  std::optional<exported> find(std::uint64_t id) const {
    std::lock_guard lock(exports_mutex_);
    auto found = exports_.find(id);
    if (found == exports_.end()) return std::nullopt;
    return found->second;
  }
  // The peer dropped its proxy. The object goes outside the lock (its
  // destructor may call anything). False if there was no such entry.
  bool remove(std::uint64_t id) {
    exported gone;
    {
      std::lock_guard lock(exports_mutex_);
      auto found = exports_.find(id);
      if (found == exports_.end()) return false;
      gone = std::move(found->second);
      exports_.erase(found);
    }
    return true;
  }

  // The peer is gone (the worker died or was replaced): what it was handed
  // is dropped, and the proxies of its objects go stale.
  void new_peer() {
    std::unordered_map<std::uint64_t, exported> gone;
    {
      std::lock_guard lock(exports_mutex_);
      gone.swap(exports_);
    }
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }

  // ---- the way to the peer's objects ----

  std::uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }
  std::size_t max_message_size() const noexcept { return max_message_size_; }

  // Runs f(link) if the peer that handed out objects of `generation` is
  // still there; throws plugin_closed if not. Calls through the link hold
  // it: detach() waits for them.
  template <class F>
  void with_link(std::uint64_t generation, F&& f) {
    std::shared_lock lock(link_mutex_);
    if (calls_ == nullptr) {
      throw error(errc::plugin_closed, "this object's plugin was unloaded: objects a plugin made live no longer than it");
    }
    if (generation != this->generation()) {
      throw error(errc::plugin_closed,
                  "this object lived in a worker that has since stopped (a crash, restart or reload took it): ask "
                  "the plugin for a new one");
    }
    std::forward<F>(f)(*calls_);
  }

  // The proxy of object `id` was dropped: its owner is told, if still there.
  void release(std::uint64_t id, std::uint64_t generation) noexcept {
    try {
      std::shared_lock lock(link_mutex_);
      if (releases_ == nullptr || generation != this->generation()) return;
      wire::buffer frame, reply;
      wire::begin_frame(frame);
      frame.append(&id, sizeof id);
      wire::finish_frame(frame, wire::frame_kind::release, 0, 0);
      releases_->call(frame, reply);
    } catch (...) {
      // The owner is going away: its entry goes with it.
    }
  }

  // The link is going: waits for the calls through it, then refuses more.
  void detach() noexcept {
    {
      std::unique_lock lock(link_mutex_);
      calls_ = releases_ = nullptr;
    }
    new_peer();
  }

 private:
  // Where this table's ids start: different for every table and run, so a
  // proxy that outlived its worker cannot name an object of the next one.
  static std::uint64_t id_base() noexcept {
    static std::atomic<std::uint64_t> tables{0};
    std::uint64_t x = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                      (static_cast<std::uint64_t>(::getpid()) << 40) ^ (tables.fetch_add(1) << 20);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (x & 0xffffffff00000000ull) | 1u;
  }

  const bool local_ = false;
  std::shared_ptr<const void> library_;

  mutable std::shared_mutex link_mutex_;
  link* calls_ = nullptr;
  link* releases_ = nullptr;
  std::atomic<std::uint64_t> generation_{0};
  std::size_t max_message_size_ = 0;

  mutable std::mutex exports_mutex_;
  std::unordered_map<std::uint64_t, exported> exports_;
  std::uint64_t next_id_ = 1;
};

// The table capabilities are encoded into and decoded from on this thread:
// set by whoever encodes or decodes a call (client, stub's caller) for the
// duration. Null: no link that carries capabilities (encoding one throws).
inline thread_local capability_table* capabilities_in_use = nullptr;

class capability_scope {
 public:
  explicit capability_scope(capability_table* table) noexcept
      : previous_(std::exchange(capabilities_in_use, table)) {}
  ~capability_scope() { capabilities_in_use = previous_; }
  capability_scope(const capability_scope&) = delete;
  capability_scope& operator=(const capability_scope&) = delete;

 private:
  capability_table* previous_;
};

// The link a proxy of the peer's object `id` calls through: the peer's link,
// with the object's id put before each call's arguments.
class object_link final : public link {
 public:
  object_link(std::shared_ptr<capability_table> table, std::uint64_t id)
      : table_(std::move(table)), id_(id), generation_(table_->generation()) {}
  ~object_link() override { table_->release(id_, generation_); }

  void call(wire::buffer& request, wire::buffer& reply) override {
    address(request);
    table_->with_link(generation_, [&](link& to) { to.call(request, reply); });
  }
  void call_async(wire::buffer request, std::unique_ptr<completion> done) override {
    try {
      address(request);
      table_->with_link(generation_, [&](link& to) { to.call_async(std::move(request), std::move(done)); });
    } catch (...) {
      if (done) {
        wire::buffer none;
        done->complete(std::current_exception(), none);
      }
    }
  }
  std::size_t max_message_size() const noexcept override { return table_->max_message_size() - object_id_size; }
  buffer_resolver* shared_buffers() noexcept override {
    buffer_resolver* found = nullptr;
    try {
      table_->with_link(generation_, [&](link& to) { found = to.shared_buffers(); });
    } catch (...) {
    }
    return found;
  }
  void reply_undecodable(const std::string& why) noexcept override {
    try {
      table_->with_link(generation_, [&](link& to) { to.reply_undecodable(why); });
    } catch (...) {
    }
  }
  capability_table* capabilities() noexcept override { return table_.get(); }

 private:
  // Makes a call frame an object_call: the id goes before the arguments.
  void address(wire::buffer& request) const {
    const std::size_t payload = request.size() - wire::header_size;
    request.resize(request.size() + object_id_size);
    std::byte* start = request.data() + wire::header_size;
    std::memmove(start + object_id_size, start, payload);
    std::memcpy(start, &id_, object_id_size);
    wire::frame_header header;
    std::memcpy(&header, request.data(), wire::header_size);
    header.size = static_cast<std::uint32_t>(payload + object_id_size);
    header.kind = wire::frame_kind::object_call;
    std::memcpy(request.data(), &header, wire::header_size);
  }

  std::shared_ptr<capability_table> table_;
  std::uint64_t id_;
  std::uint64_t generation_;
};

// The id at the start of an object_call's payload, and the payload after it.
inline std::optional<std::pair<std::uint64_t, std::span<const std::byte>>> split_object_call(
    std::span<const std::byte> payload) noexcept {
  if (payload.size() < object_id_size) return std::nullopt;
  std::uint64_t id = 0;
  std::memcpy(&id, payload.data(), object_id_size);
  return std::pair{id, payload.subspan(object_id_size)};
}

// Runs an object_call (already parsed) on the object of `table` it names,
// with capabilities in its arguments and answer going through `table`.
// False, with the reply an error frame, when the table has no such object.
inline bool serve_object_call(capability_table& table, const wire::frame_view& call, wire::buffer& reply,
                              std::size_t max_payload, bool* malformed) {
  const auto split = split_object_call(call.payload);
  const auto found = split ? table.find(split->first) : std::nullopt;
  if (!found) return false;
  wire::frame_header header = call.header;
  header.size = static_cast<std::uint32_t>(split->second.size());
  capability_scope scope(&table);
  found->handle(found->object.get(), header, wire::inbound_payload{split->second, split->second.size(), nullptr},
                reply, max_payload, malformed);
  return true;
}

// The id a release frame names.
inline std::optional<std::uint64_t> released_id(std::span<const std::byte> payload) noexcept {
  if (payload.size() != object_id_size) return std::nullopt;
  std::uint64_t id = 0;
  std::memcpy(&id, payload.data(), object_id_size);
  return id;
}

}  // namespace isolate::detail

#endif
