// Per-call accounting (isolate/call_cost.hpp) on the wire: the host marks a
// call frame frame_kind::accounted_call; the stub that runs it reads the
// thread's usage before and after, and sends the difference after the
// reply's payload, counted in its size (a fixed 40-byte trailer); the host
// takes it off before decoding the reply. A call not marked costs one branch.
#ifndef ISOLATE_DETAIL_CALL_ACCOUNTING_HPP
#define ISOLATE_DETAIL_CALL_ACCOUNTING_HPP

#include "isolate/call_cost.hpp"
#include "isolate/detail/config.hpp"
#include "isolate/error.hpp"
#include "isolate/wire/buffer.hpp"
#include "isolate/wire/frame.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

namespace isolate::detail {

// Where the calls this thread makes now report their cost (set by
// plugin::with_accounting for one call); null: not accounted.
inline thread_local call_cost* next_call_cost = nullptr;

// The figures after an accounted call's reply payload: fixed layout, the
// same in both processes.
struct cost_trailer {
  std::uint64_t cpu_user_us = 0;
  std::uint64_t cpu_system_us = 0;
  std::uint64_t minor_faults = 0;
  std::uint64_t major_faults = 0;
  std::uint64_t peak_memory_growth_bytes = 0;
};
static_assert(sizeof(cost_trailer) == 40 && std::is_trivially_copyable_v<cost_trailer>);

// The calling thread's usage now: one getrusage(RUSAGE_THREAD), whose CPU
// times and page faults are the thread's own. (Thread CPU clocks have no
// vDSO path, and this guest has no PMU for rdpmc: a system call is the
// floor; see benchmarks/README.md.)
struct thread_usage {
  rusage usage{};

  static thread_usage now() noexcept {
    thread_usage u;
    ::getrusage(RUSAGE_THREAD, &u.usage);
    return u;
  }

  cost_trailer since(const thread_usage& before) const noexcept {
    const auto micros = [](const timeval& t) {
      return static_cast<std::int64_t>(t.tv_sec) * 1'000'000 + static_cast<std::int64_t>(t.tv_usec);
    };
    const auto grown = [](std::int64_t after, std::int64_t earlier) {
      return after > earlier ? static_cast<std::uint64_t>(after - earlier) : std::uint64_t{0};
    };
    cost_trailer cost;
    cost.cpu_user_us = grown(micros(usage.ru_utime), micros(before.usage.ru_utime));
    cost.cpu_system_us = grown(micros(usage.ru_stime), micros(before.usage.ru_stime));
    cost.minor_faults = grown(usage.ru_minflt, before.usage.ru_minflt);
    cost.major_faults = grown(usage.ru_majflt, before.usage.ru_majflt);
    return cost;
  }
};

// The process's peak resident memory: VmHWM from /proc/self/status, through
// a descriptor opened once (open() it before a sandbox that hides /proc).
// Not getrusage's ru_maxrss: that keeps the peak of the process image the
// worker was exec'd from, which is the host's (posix_spawn shares its memory).
// Reading costs microseconds, so it is read only after a call that took
// page faults, since only such a call can have raised the peak; the peak it
// is compared with is the one last read, process-wide.
class peak_memory {
 public:
  static peak_memory& instance() {
    static peak_memory meter;
    return meter;
  }

  std::uint64_t last_read() const noexcept { return last_.load(std::memory_order_relaxed); }

  // Reads the peak now, remembers it, and returns it (0 if unreadable).
  std::uint64_t read() noexcept {
    if (fd_ < 0) return 0;
    char text[4096];
    const ssize_t got = ::pread(fd_, text, sizeof text - 1, 0);
    if (got <= 0) return 0;
    text[got] = '\0';
    const char* line = std::strstr(text, "VmHWM:");
    if (line == nullptr) return 0;
    const std::uint64_t bytes = std::strtoull(line + 6, nullptr, 10) * 1024;  // "VmHWM:   1234 kB"
    std::uint64_t seen = last_.load(std::memory_order_relaxed);
    while (bytes > seen && !last_.compare_exchange_weak(seen, bytes, std::memory_order_relaxed)) {
    }
    return bytes;
  }

  peak_memory(const peak_memory&) = delete;
  peak_memory& operator=(const peak_memory&) = delete;

 private:
  peak_memory() noexcept : fd_(::open("/proc/self/status", O_RDONLY | O_CLOEXEC)) { read(); }
  ~peak_memory() {
    if (fd_ >= 0) ::close(fd_);
  }

  int fd_;
  std::atomic<std::uint64_t> last_{0};
};

// Measures one call on the thread that runs it: start it before, finish() after.
class cost_meter {
 public:
  cost_meter() noexcept : peak_before_(peak_memory::instance().last_read()), before_(thread_usage::now()) {}

  cost_trailer finish() const noexcept {
    cost_trailer cost = thread_usage::now().since(before_);
    if (cost.minor_faults + cost.major_faults > 0) {
      const std::uint64_t peak = peak_memory::instance().read();
      cost.peak_memory_growth_bytes = peak > peak_before_ ? peak - peak_before_ : 0;
    }
    return cost;
  }

 private:
  std::uint64_t peak_before_;
  thread_usage before_;
};

inline call_cost as_call_cost(const cost_trailer& cost) noexcept {
  constexpr auto most = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  call_cost out;
  out.measured = true;
  out.cpu_user = std::chrono::microseconds(static_cast<std::int64_t>(std::min(cost.cpu_user_us, most)));
  out.cpu_system = std::chrono::microseconds(static_cast<std::int64_t>(std::min(cost.cpu_system_us, most)));
  out.minor_faults = cost.minor_faults;
  out.major_faults = cost.major_faults;
  out.peak_memory_growth_bytes = cost.peak_memory_growth_bytes;
  return out;
}

// Appends `cost` to the finished frame in `reply`, counting it in the header's size.
inline void append_cost(wire::buffer& reply, const cost_trailer& cost) {
  reply.append(&cost, sizeof cost);
  std::uint32_t size = 0;
  std::memcpy(&size, reply.data() + offsetof(wire::frame_header, size), sizeof size);
  size += static_cast<std::uint32_t>(sizeof cost);
  std::memcpy(reply.data() + offsetof(wire::frame_header, size), &size, sizeof size);
}

// Takes the trailer off the reply to an accounted call and reports it in
// `into`. The figures are the plugin's own report: a hostile process plugin
// can make them up (the kernel's, in plugin_telemetry, it cannot).
// A frame with no room for them is the peer's fault: protocol_error.
inline void take_cost(wire::buffer& reply, call_cost& into) {
  std::uint32_t size = 0;
  if (reply.size() >= wire::header_size) {
    std::memcpy(&size, reply.data() + offsetof(wire::frame_header, size), sizeof size);
  }
  if (reply.size() < wire::header_size + sizeof(cost_trailer) || size != reply.size() - wire::header_size) {
    throw error(errc::protocol_error, "the reply to an accounted call has no room for its cost (" +
                                          std::to_string(reply.size()) + " bytes)");
  }
  cost_trailer cost;
  std::memcpy(&cost, reply.data() + reply.size() - sizeof cost, sizeof cost);
  reply.resize(reply.size() - sizeof cost);
  size -= static_cast<std::uint32_t>(sizeof cost);
  std::memcpy(reply.data() + offsetof(wire::frame_header, size), &size, sizeof size);

  into = as_call_cost(cost);
}

}  // namespace isolate::detail

#endif
