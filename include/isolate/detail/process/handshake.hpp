// What the host and a worker say on the control socket: the host's hello
// (with the shared memory passed alongside), the worker's answer, and the
// messages of an orderly shutdown.
#ifndef ISOLATE_DETAIL_PROCESS_HANDSHAKE_HPP
#define ISOLATE_DETAIL_PROCESS_HANDSHAKE_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/cereal.hpp"
#include "isolate/detail/codec.hpp"
#include "isolate/wire/archive.hpp"

#include "isolate/limits.hpp"

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace isolate::limits {
template <class Archive>
void serialize(Archive& ar, enforcement& e) {
  ar(e.limit, e.mechanism, e.in_force);
}
}  // namespace isolate::limits

namespace isolate::detail {

// How the worker program ends, as its exit status: 0 when the host asked it
// to stop (or went away), worker_exit_failed after reporting a failed load,
// worker_exit_channel_broken when what the host sent broke the protocol.
inline constexpr int worker_exit_usage = 2;
inline constexpr int worker_exit_failed = 3;
inline constexpr int worker_exit_channel_broken = 70;  // EX_SOFTWARE: unlikely to be a plugin's own exit()
inline constexpr int worker_exit_memory_limit = 71;    // the plugin reached limits::policy::memory_mb

// Bumped whenever a message below or the ring layout changes.
// 7: object_call and release frames (capabilities); 8: the host's compiled seccomp program in the hello
inline constexpr std::uint32_t process_protocol_version = 10;

// The largest configuration a process plugin is given (in the hello message).
inline constexpr std::size_t max_configuration_size = 512 * 1024;
// The largest hello message a worker reads: the configuration and the rest.
inline constexpr std::size_t max_hello_size = max_configuration_size + 64 * 1024;

enum class control_type : std::uint32_t {
  hello = 1,     // host -> worker, with one fd: the memfd of the rings, or the data socket
  ready = 2,     // worker -> host: the plugin is loaded; calls may flow
  failed = 3,    // worker -> host: loading failed (code, message); the worker exits
  shutdown = 4,  // host -> worker: finish and exit
  doorbell = 5,  // worker -> host: a frame no host call waits for (event, service call) is in the ring
  share_buffer = 6,   // host -> worker, with one fd: a shared_buffer's memfd (buffer_message)
  forget_buffer = 7,  // host -> worker: the host let go of a buffer (forget_message)
  sync = 8,           // host -> worker: answer `synced` with the same body (sync_message) once
                      // everything sent before is handled
  synced = 9,         // worker -> host: the answer to `sync`
  seccomp_listener = 10,  // worker -> host, before ready, with one fd: its seccomp listener (listener_message)
  descriptors_full = 11,  // worker -> host: the plugin holds every descriptor open_files allows (exhausted_message)
  tasks_full = 12,        // worker -> host: the plugin's processes and threads fill its processes limit (exhausted_message)
  limits_applied = 13,    // worker -> host, once, before the plugin's code runs: how each limit holds (applied_message)
  memory_refused = 14,    // worker -> host: allocations failed at the memory limit and the plugin went on
                          // (exhausted_message: in_use = how many failed, limit = memory_mb)
};

// The worker found the plugin at a limit the kernel tells no one about:
// open_files (its next open fails with EMFILE) or processes (its next fork
// or thread fails with EAGAIN), or allocations refused at its memory limit
// that the plugin caught. Sampled: see worker::watch_control.
struct exhausted_message {
  std::uint64_t in_use = 0;
  std::uint64_t limit = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(in_use, limit);
  }
};

// An interface the host serves to the plugin; its id in frames is its index + 1.
struct service_description {
  std::string name;
  std::uint64_t fingerprint = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, fingerprint);
  }
};

// The limits the worker applies to itself, and what the host did before it
// started that the worker cannot see.
struct limits_message {
  limits::policy policy;
  bool namespaces = false;
  bool network_namespace = false;
  bool plugin_fd_passed = false;  // a second descriptor comes with the channel's: the plugin's library
  std::string memory_cgroup;      // the cgroup cap the worker is in ("cgroup v1 memory.limit_in_bytes 64 MiB")
  std::string no_memory_cgroup;   // else why there is none
  // The worker's seccomp program as the host compiled it for the worker's
  // plan (seccomp_detail::program_for_workers); empty: the worker builds its own.
  std::vector<std::uint64_t> seccomp_program;

  template <class Archive>
  void serialize(Archive& ar) {
    auto& p = policy;
    std::vector<std::string> read_only, writable;
    std::string working_directory = p.working_directory.string();
    for (const auto& path : p.read_only) read_only.push_back(path.string());
    for (const auto& path : p.writable) writable.push_back(path.string());
    ar(p.preset, p.memory_mb, p.cpu_seconds, p.open_files, p.file_size_mb, p.processes, p.core_dumps, p.protect_host,
       p.new_processes, p.network, p.restrict_filesystem, read_only, writable, p.syscalls, p.report_refusals,
       p.observe_files, p.best_effort,
       working_directory, namespaces, network_namespace, plugin_fd_passed, memory_cgroup, no_memory_cgroup,
       seccomp_program);
    p.read_only.assign(read_only.begin(), read_only.end());
    p.writable.assign(writable.begin(), writable.end());
    p.working_directory = working_directory;
  }
};

// With the worker's seccomp listener: the trees its Landlock rules allow,
// for the host to judge observed opens the same way.
struct listener_message {
  std::vector<std::string> read_paths, write_paths;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(read_paths, write_paths);
  }
};

struct hello_message {
  std::uint32_t protocol_version = process_protocol_version;
  std::uint32_t cache_line = ISOLATE_CACHE_LINE;
  std::string plugin_path;
  std::string interface_name;
  std::uint64_t fingerprint = 0;
  bool shared_memory = true;       // false: frames go over the data socket instead of rings
  std::uint64_t ring_capacity = 0;  // bytes per direction
  std::uint64_t max_message_size = 0;
  std::uint32_t concurrency = 1;
  std::int64_t max_spin_ns = 0;
  bool adaptive_spin = true;
  std::vector<service_description> services;
  limits_message limits;
  std::string configuration;  // host_services::configure, for plugin_context::configuration()

  template <class Archive>
  void serialize(Archive& ar) {
    ar(protocol_version, cache_line, plugin_path, interface_name, fingerprint, shared_memory, ring_capacity,
       max_message_size, concurrency, max_spin_ns, adaptive_spin, services, limits, configuration);
  }
};

// The worker's answer when the plugin is loaded: whether the plugin has an
// on_load and an on_stop for the host to run.
struct ready_message {
  bool on_load = false;
  bool on_stop = false;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(on_load, on_stop);
  }
};

// How each limit holds, as the worker found it once it had applied them,
// sent before it opens the plugin's library: the host believes this one
// report only, never one sent after the plugin's code could run.
struct applied_message {
  limits::report limits;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(limits);
  }
};

// Names a shared_buffer: the host's id for it, and its size in bytes.
struct buffer_message {
  std::uint64_t id = 0;
  std::uint64_t size = 0;
  std::uint8_t lending = 0;  // detail::lending bits (shared_buffer.hpp)

  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, size, lending);
  }
};

// The host let go of buffer `id`, after `answers` of its answers to the
// plugin's calls named it: the worker keeps it until it has decoded them.
struct forget_message {
  std::uint64_t id = 0;
  std::uint64_t answers = 0;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, answers);
  }
};

struct sync_message {
  std::uint64_t token = 0;  // increases with each sync

  template <class Archive>
  void serialize(Archive& ar) {
    ar(token);
  }
};

struct failed_message {
  std::int32_t code = 0;  // isolate::errc
  std::string message;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(code, message);
  }
};

template <class Message>
std::vector<std::byte> encode_message(const Message& message) {
  wire::buffer out;
  {
    wire::output_archive archive(out);
    archive(message);
  }
  return {out.data(), out.data() + out.size()};
}

template <class Message>
Message decode_message(std::span<const std::byte> bytes) {
  return decoding([&] {
    Message message;
    wire::input_archive archive(bytes);
    archive(message);
    archive.expect_end();
    return message;
  });
}

}  // namespace isolate::detail

#endif
