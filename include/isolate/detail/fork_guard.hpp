// fork() copies the host's memory and descriptors into the child, but none
// of its threads: a plugin's rings, sockets and worker are then shared with a
// process that must not use them (it would read the parent's replies, and
// its indices would go stale). Objects note the fork generation they were
// made in; after a fork, the child sees another one.
#ifndef ISOLATE_DETAIL_FORK_GUARD_HPP
#define ISOLATE_DETAIL_FORK_GUARD_HPP

#include "isolate/detail/config.hpp"

#include <pthread.h>

#include <atomic>
#include <cstdint>

namespace isolate::detail {

// Counts the fork()s this process is a child of. Constant-initialised: read
// on every call of a plugin, it costs one load.
inline std::atomic<std::uint64_t> forks_lived_through{0};

// Registers the count's fork handler (once per process; a child inherits it).
inline void watch_forks() noexcept {
  static const bool registered = [] {
    ::pthread_atfork(nullptr, nullptr, [] { forks_lived_through.fetch_add(1, std::memory_order_relaxed); });
    return true;
  }();
  (void)registered;
}

// Remembers the generation it was made in.
class fork_guard {
 public:
  fork_guard() noexcept : generation_((watch_forks(), forks_lived_through.load(std::memory_order_relaxed))) {}
  // True in a child of fork() made after this object was.
  bool forked() const noexcept { return forks_lived_through.load(std::memory_order_relaxed) != generation_; }

 private:
  std::uint64_t generation_;
};

}  // namespace isolate::detail

#endif
