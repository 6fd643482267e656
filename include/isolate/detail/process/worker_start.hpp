// Starting a worker: spawn the program (from the launcher thread, so it lives
// as long as the host), hand it the plugin and the channel, and wait until it
// has loaded the plugin. Every wait is bounded by the load's deadline; a
// worker that fails is killed and its exit described in the error.
#ifndef ISOLATE_DETAIL_PROCESS_WORKER_START_HPP
#define ISOLATE_DETAIL_PROCESS_WORKER_START_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/deadline.hpp"
#include "isolate/detail/process/child.hpp"
#include "isolate/detail/process/control_channel.hpp"
#include "isolate/detail/process/fd_passing.hpp"
#include "isolate/detail/process/frame_channel.hpp"
#include "isolate/detail/process/handshake.hpp"
#include "isolate/detail/process/launch_spec.hpp"
#include "isolate/detail/process/launcher.hpp"
#include "isolate/detail/process/unique_fd.hpp"
#include "isolate/detail/sandbox/memory_cgroup.hpp"
#include "isolate/detail/sandbox/spawn.hpp"
#include "isolate/detail/sandbox/worker_limits.hpp"
#include "isolate/detail/sandbox/seccomp_notify.hpp"
#include "isolate/detail/system_call.hpp"
#include "isolate/limits.hpp"
#include "isolate/error.hpp"
#include "isolate/shm/region.hpp"
#include "isolate/shm/ring.hpp"

#include <fcntl.h>
#include <poll.h>
#include <fmt/format.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <tuple>

namespace isolate::detail {

// A worker that has loaded its plugin and is ready for calls.
struct started_worker {
  child_process child;
  frame_channel channel;
  unique_fd control;      // the host's end of the control socket
  unique_fd init_status;  // sandboxed: PID 1's report of how the worker ended (sandbox/init.hpp)
  limits::report limits;  // how each limit holds, as the worker found it
  bool plugin_on_load = false;  // the plugin has an on_load (worker_session::run_plugin_load)
  bool plugin_on_stop = false;  // the plugin has an on_stop (worker_session::stop runs it)
  sandbox::memory_cgroup memory_group;  // a worker with a memory cap, where a cgroup can be had
  std::unique_ptr<sandbox::seccomp_supervisor> refusals;  // limits::policy::report_refusals, where the kernel can
};

// The write ends of the pipes the host reads the worker's stdout and stderr
// from (output_capture.hpp); -1: limits::policy::worker_output says where they go.
struct worker_output_fds {
  int out = -1;
  int err = -1;
};

namespace worker_start {

using clock = std::chrono::steady_clock;

// After a failure, how long the worker may take to exit on its own before
// it is killed, so that its exit status can be reported; at most what is
// left of the load's time.
inline constexpr std::chrono::milliseconds exit_grace{500};

// Throws `code`: `what`, with how the worker ended (waiting for that until
// the deadline, then killing it).
[[noreturn]] inline void fail(child_process& child, errc code, const std::string& what, clock::time_point deadline) {
  std::error_code ec;
  auto status = child.wait_exit(std::min(time_left(deadline), exit_grace), ec);
  if (!status) {
    child.kill(SIGKILL, ec);
    status = child.wait_exit(exit_grace, ec);
  }
  throw error(code, fmt::format("{}: the worker {}", what, status ? status->describe() : std::string("did not exit")));
}

inline hello_message hello_for(const launch_spec& spec) {
  const auto& o = spec.options;
  hello_message hello;
  hello.plugin_path = std::filesystem::absolute(spec.plugin).string();
  hello.interface_name = spec.interface_name;
  hello.fingerprint = spec.fingerprint;
  hello.shared_memory = o.shared_memory;
  hello.ring_capacity = o.ring_capacity;
  hello.max_message_size = o.max_message_size;
  hello.concurrency = static_cast<std::uint32_t>(o.concurrency);
  hello.max_spin_ns = o.wait.max_spin.count();
  hello.adaptive_spin = o.wait.adaptive;
  hello.limits.policy = o.limits;
  for (const auto& service : spec.services.entries()) hello.services.push_back({std::string(service.name), service.fingerprint});
  if (spec.services.configuration().size() > max_configuration_size) {
    throw error(errc::message_too_large,
                fmt::format("the plugin's configuration is {} bytes; a process plugin is given at most {}: pass it "
                            "the path of a file instead",
                            spec.services.configuration().size(), max_configuration_size));
  }
  hello.configuration = spec.services.configuration();
  return hello;
}

// The loading worker's answer: ready, or why it failed (with an isolate code
// only among those a load can fail with; the plugin's code has run by then).
inline control_message read_answer_message(child_process& child, int control, const launch_spec& spec,
                                           const hello_message& hello, clock::time_point deadline,
                                           started_worker& started, std::error_code& ec);

inline ready_message read_answer(child_process& child, int control, const launch_spec& spec,
                                  const hello_message& hello, clock::time_point deadline, started_worker& started) {
  std::error_code ec;
  auto answer = read_answer_message(child, control, spec, hello, deadline, started, ec);
  if (ec == std::errc::timed_out) {
    child.kill(SIGKILL, ec);
    throw error(errc::timeout, fmt::format("the plugin '{}' did not finish loading within {} ms", spec.plugin.string(),
                                           spec.options.load_timeout.count()));
  }
  if (ec) fail(child, errc::load_failed, fmt::format("the worker did not answer while loading '{}'", spec.plugin.string()), deadline);
  if (answer.type == static_cast<std::uint32_t>(control_type::failed)) {
    failed_message failure;
    try {
      failure = decode_message<failed_message>(answer.body);
    } catch (const error&) {
      fail(child, errc::protocol_error, "the worker's report of a failed load does not decode", deadline);
    }
    const auto code = static_cast<errc>(failure.code);
    const bool load_code = code == errc::load_failed || code == errc::fingerprint_mismatch ||
                           code == errc::protocol_error || code == errc::limit_unenforceable ||
                           code == errc::load_refused;
    std::error_code ignored;
    child.wait_exit(std::min(time_left(deadline), exit_grace), ignored);
    throw error(load_code ? code : errc::load_failed, failure.message);
  }
  if (answer.type != static_cast<std::uint32_t>(control_type::ready)) {
    child.kill(SIGKILL, ec);
    throw error(errc::protocol_error, "the worker answered the handshake with an unknown message");
  }
  try {
    return decode_message<ready_message>(answer.body);
  } catch (const error&) {
    child.kill(SIGKILL, ec);
    throw error(errc::protocol_error, "the worker's ready message does not decode");
  }
}

// The next message of the loading worker that is neither its seccomp
// listener nor its limits report. Both come first, before the plugin's code
// runs: from then on the refusals of its static initialisers wait for the
// host, which answers them here while it waits for the rest. The report is
// taken once (a second one is the plugin's forgery), and a `ready` without
// one is refused: what the host tells of the limits is never the plugin's word.
inline control_message read_answer_message(child_process& child, int control, const launch_spec& spec,
                                           const hello_message& hello, clock::time_point deadline,
                                           started_worker& started, std::error_code& ec) {
  bool listening = false;
  bool reported = false;
  const auto broken = [&](const std::string& what) {
    child.kill(SIGKILL, ec);
    throw error(errc::protocol_error,
                fmt::format("the worker broke the handshake while loading '{}': {}", spec.plugin.string(), what));
  };
  for (;;) {
    if (listening) {
      pollfd ready[2] = {{control, POLLIN, 0}, {started.refusals->native_handle(), POLLIN, 0}};
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(time_left(deadline));
      const int n = retry_on_eintr([&] { return ::poll(ready, 2, static_cast<int>(left.count())); });
      if (n == 0) {
        ec = std::make_error_code(std::errc::timed_out);
        return {};
      }
      if (n > 0 && ready[1].revents != 0) {
        const auto step = started.refusals->handle_pending(16);
        listening = !step.hung_up;
        if (ready[0].revents == 0) continue;
      }
    }
    std::vector<unique_fd> fds;
    auto message = read_message_with_fds(control, 64 * 1024, 1, fds, time_left(deadline), ec);
    if (!ec && message.type == static_cast<std::uint32_t>(control_type::limits_applied)) {
      if (!fds.empty()) broken("descriptors sent with the limits report");
      if (reported) broken("a second limits report (sent by the plugin's own code)");
      try {
        started.limits = decode_message<applied_message>(message.body).limits;
      } catch (const error&) {
        broken("a limits report that does not decode");
      }
      reported = true;
      continue;
    }
    if (ec || message.type != static_cast<std::uint32_t>(control_type::seccomp_listener)) {
      if (!ec && !fds.empty()) {
        child.kill(SIGKILL, ec);
        throw error(errc::protocol_error, "the worker sent descriptors the handshake does not expect");
      }
      if (!ec && message.type == static_cast<std::uint32_t>(control_type::ready) && !reported) {
        broken("ready before any limits report");
      }
      return message;
    }
    listener_message trees;
    try {
      trees = decode_message<listener_message>(message.body);
    } catch (const error&) {
      fds.clear();
    }
    if (started.refusals || fds.size() != 1 || reported) {
      child.kill(SIGKILL, ec);
      throw error(errc::protocol_error, fmt::format("the worker sent its seccomp listener wrongly while loading '{}'",
                                                    spec.plugin.string()));
    }
    sandbox::supervisor_options options;
    options.plan = sandbox::seccomp_plan_for(spec.options.limits, hello.limits.network_namespace);
    options.read_paths = std::move(trees.read_paths);
    options.write_paths = std::move(trees.write_paths);
    options.max_records = 256;
    started.refusals = std::make_unique<sandbox::seccomp_supervisor>(std::move(fds.front()), std::move(options));
    listening = true;
  }
}

// The environment of a sandboxed worker: the policy's entries, and the
// names it lets through from the host's.
inline std::vector<std::string> sandbox_environment(const limits::policy& policy) {
  std::vector<std::string> env = policy.environment;
  for (const auto& name : policy.inherit_environment) {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) continue;
    std::string entry = name + "=" + value;
    // LeakSanitizer's exit check needs ptrace, which the sandbox refuses.
    if (name == "ASAN_OPTIONS" || name == "LSAN_OPTIONS") entry += ":detect_leaks=0";
    env.push_back(std::move(entry));
  }
  return env;
}

// A worker's memory cgroup, where its memory is capped and a group can be
// made; `hello` tells the worker which cap holds, or why there is none.
// Throws limit_unenforceable if the policy names a directory that cannot be
// used, unless best effort.
inline sandbox::memory_cgroup memory_group_for(const limits::policy& policy, hello_message& hello) {
  if (policy.memory_mb == 0) return {};
  std::string why;
  sandbox::memory_cgroup group;
  if (const auto parent = sandbox::find_cgroup_parent(policy.memory_cgroup, why)) {
    std::error_code ec;
    const auto mb = policy.memory_mb + sandbox::cgroup_sanitizer_room_mb;
    group = sandbox::memory_cgroup::create(*parent, mb << 20, ec);
    if (ec) why = fmt::format("cannot make a memory cgroup in {}: {}", parent->directory.string(), ec.message());
  }
  if (!group && !policy.memory_cgroup.empty() && !policy.best_effort) {
    throw error(errc::limit_unenforceable, fmt::format("memory: {}; choose best_effort() to go on with RLIMIT_DATA "
                                                       "alone, or leave memory_cgroup empty",
                                                       why));
  }
  if (group) {
    hello.limits.memory_cgroup =
        sandbox::cgroup_sanitizer_room_mb == 0
            ? fmt::format("{} {} MiB", group.mechanism(), policy.memory_mb)
            : fmt::format("{} {} MiB (+{} MiB for the sanitizer)", group.mechanism(), policy.memory_mb,
                          sandbox::cgroup_sanitizer_room_mb);
  } else {
    hello.limits.no_memory_cgroup = why;
  }
  return group;
}

// The worker could not be put in its memory group: it goes on without one
// (RLIMIT_DATA alone), unless the policy named the group and wants no less.
inline void memory_group_not_joined(sandbox::memory_cgroup& group, const limits::policy& policy,
                                    hello_message& hello, std::error_code why) {
  auto text = fmt::format("cannot move the worker into {}: {}", group.directory().string(), why.message());
  group = {};
  hello.limits.memory_cgroup.clear();
  if (!policy.memory_cgroup.empty() && !policy.best_effort) {
    throw error(errc::limit_unenforceable, "memory: " + text);
  }
  hello.limits.no_memory_cgroup = std::move(text);
}

// Moves a worker started outside namespaces into its memory group, before
// it is sent the plugin (it loads nothing until then).
inline void join_memory_group(started_worker& started, const limits::policy& policy, hello_message& hello,
                              const std::error_code& spawn_error) {
  if (spawn_error || !started.memory_group) return;
  if (auto why = started.memory_group.add(started.child.pid())) {
    memory_group_not_joined(started.memory_group, policy, hello, why);
  }
}

// limits::output::discard sends stdout and stderr to /dev/null, unless the
// host captures them (the spawn then gives the worker its fd 1).
inline bool discards_output(const limits::policy& policy, const spawn_options& spawn) {
  const bool captured = std::any_of(spawn.inherit_fds.begin(), spawn.inherit_fds.end(),
                                    [](const auto& fds) { return fds.second == 1; });
  return policy.worker_output == limits::output::discard && !captured;
}

// Starts the worker inside new namespaces (limits::policy::protect_host),
// from the launcher thread. The program and the plugin go as descriptors: a
// root host's worker is nobody, who may not reach the host's paths.
inline child_process spawn_sandboxed(const launch_spec& spec, const spawn_options& spawn, int status_end,
                                     hello_message& hello, sandbox::memory_cgroup& memory_group,
                                     std::error_code& ec) {
  const auto& policy = spec.options.limits;
  unique_fd program(::open(spawn.program.c_str(), O_PATH | O_CLOEXEC));
  if (!program) {
    ec = last_system_error();
    return {};
  }
  sandbox::namespaced_spawn_options options;
  options.inherit_fds = spawn.inherit_fds;
  options.inherit_fds.emplace_back(status_end, 4);
  // PID 1 is isolate-init where it was built next to the worker (a small
  // program: init_program.hpp says why), else the worker itself.
  const auto init_path = std::filesystem::path(spawn.program).parent_path() / "isolate-init";
  unique_fd init(::access(init_path.c_str(), X_OK) == 0 ? ::open(init_path.c_str(), O_PATH | O_CLOEXEC) : -1);
  if (init) {
    constexpr int worker_fd = 5;  // above the worker's own (3: control, 4: status)
    options.program = init_path.string();
    options.program_fd = init.get();
    options.args = {"--isolate-init=4", fmt::format("--isolate-worker-fd={}", worker_fd), "--"};
    options.args.insert(options.args.end(), spawn.args.begin(), spawn.args.end());
    options.inherit_fds.emplace_back(program.get(), worker_fd);
  } else {
    options.program = spawn.program;
    options.program_fd = program.get();
    options.args = spawn.args;
    options.args.push_back(fmt::format("--isolate-init={}", 4));
  }
  options.env = sandbox_environment(policy);
  options.working_directory = policy.working_directory.string();
  options.discard_output = discards_output(policy, spawn);
  options.new_network = policy.network == limits::network_isolation::namespace_or_seccomp;
  // PID 1 forks the worker proper first thing: both must be in the group from the start.
  std::error_code not_joined;
  if (memory_group) options.before_start = [&](pid_t pid) {
    not_joined = memory_group.add(pid);
    return std::error_code{};
  };
  auto child = launcher::instance().run([&] { return sandbox::spawn_in_namespaces(options, ec); });
  if (!ec && not_joined) memory_group_not_joined(memory_group, policy, hello, not_joined);
  if (!ec) {
    hello.limits.namespaces = true;
    hello.limits.network_namespace = options.new_network;
  }
  return child;
}

}  // namespace worker_start

// Starts the worker of `spec` and waits, until `deadline`, for it to load the
// plugin; its stdout and stderr go to `output` when given. Throws
// load_failed, fingerprint_mismatch, protocol_error or timeout.
inline started_worker start_worker(const launch_spec& spec, std::chrono::steady_clock::time_point deadline,
                                   worker_output_fds output = {}) {
  using namespace worker_start;
  const auto& o = spec.options;
  std::error_code ec;
  auto [control, worker_end] = make_socket_pair(ec);
  if (ec) throw error(errc::load_failed, "cannot create the control socket: " + ec.message());
  unique_fd data, worker_data;
  shm::region region;
  if (o.shared_memory) {
    region = shm::region::create(shm::duplex_layout::bytes_needed(o.ring_capacity), "isolate-rings", ec);
    if (ec) throw error(errc::load_failed, "cannot create the shared memory for the rings: " + ec.message());
    shm::duplex_layout::format(region.bytes(), o.ring_capacity, ec);
    if (ec) throw error(errc::load_failed, fmt::format("ring capacity {} is not usable: {}", o.ring_capacity, ec.message()));
  } else {
    std::tie(data, worker_data) = make_socket_pair(ec);
    if (ec) throw error(errc::load_failed, "cannot create the data socket: " + ec.message());
  }

  spawn_options spawn;
  spawn.program = find_worker(spec).string();
  spawn.args = {"--isolate-control-fd=3", fmt::format("--isolate-parent={}", ::getpid())};
  spawn.inherit_fds = {{worker_end.get(), 3}};
  if (output.out >= 0 && output.err >= 0) {
    spawn.inherit_fds.emplace_back(output.out, 1);
    spawn.inherit_fds.emplace_back(output.err, 2);
    spawn.args.push_back("--isolate-output=lines");  // its stdout line-buffered, as on a terminal
  }
  auto hello = hello_for(spec);
  started_worker started;
  started.memory_group = memory_group_for(o.limits, hello);
  unique_fd plugin_file;
  if (o.limits.protect_host) {
    unique_fd status_end;
    std::tie(started.init_status, status_end) = make_pipe(ec);
    if (ec) throw error(errc::load_failed, "cannot create the worker's status pipe: " + ec.message());
    auto in_namespace = spawn;
    in_namespace.args[1] = "--isolate-parent=0";  // outside its PID namespace, its parent has no number
    started.child = spawn_sandboxed(spec, in_namespace, status_end.get(), hello, started.memory_group, ec);
    // A host that is not dumpable (it changed its uid, as a daemon that
    // drops root does, or set PR_SET_DUMPABLE 0) owns none of its /proc
    // files, nor those of the child that shares its memory until exec: it
    // cannot write the worker's id maps.
    const bool undumpable = ec == std::errc::permission_denied && ::prctl(PR_GET_DUMPABLE) != 1;
    const bool refused = ec == std::errc::operation_not_permitted || ec == std::errc::no_space_on_device ||
                         ec == std::errc::invalid_argument || undumpable;
    if (refused && !o.limits.best_effort) {
      if (undumpable) {
        throw error(errc::limit_unenforceable,
                    "the sandbox cannot map the worker's user ids: this host process is not dumpable (it changed "
                    "its uid, or set PR_SET_DUMPABLE 0), so its /proc files are not its own; start it as its user, "
                    "call prctl(PR_SET_DUMPABLE, 1) after changing uid, choose best_effort(), or load with "
                    "isolate::limits::minimal()");
      }
      throw error(errc::limit_unenforceable,
                  fmt::format("the sandbox needs user namespaces, which this machine refuses ({}): see "
                              "/proc/sys/user/max_user_namespaces, choose best_effort(), or load with "
                              "isolate::limits::minimal()",
                              ec.message()));
    }
    if (refused) {  // best effort: the other limits still apply, and the report says what does not
      ec.clear();
      started.init_status.reset();
      // What needs no namespace holds as it would have inside one.
      auto outside = spawn;
      outside.program = std::filesystem::absolute(spawn.program).string();
      outside.env = sandbox_environment(o.limits);
      outside.exact_env = true;
      outside.working_directory = o.limits.working_directory.string();
      outside.null_stdin = true;
      outside.discard_output = discards_output(o.limits, outside);
      started.child = launcher::instance().run([&] { return child_process::spawn(outside, ec); });
      join_memory_group(started, o.limits, hello, ec);
    }
    plugin_file.reset(::open(hello.plugin_path.c_str(), O_RDONLY | O_CLOEXEC));
    hello.limits.plugin_fd_passed = static_cast<bool>(plugin_file);
  } else {
    started.child = launcher::instance().run([&] { return child_process::spawn(spawn, ec); });
    join_memory_group(started, o.limits, hello, ec);
  }
  if (ec) throw error(errc::load_failed, fmt::format("cannot start the worker '{}': {}", spawn.program, ec.message()));
  worker_end.reset();

  // The worker's seccomp filter, compiled here once for every worker of the same plan.
  hello.limits.seccomp_program = sandbox::seccomp_detail::program_words(sandbox::seccomp_detail::program_for_workers(
      sandbox::plan_as_loaded(sandbox::seccomp_plan_for(o.limits, hello.limits.network_namespace))));
  write_message(control.get(), static_cast<std::uint32_t>(control_type::hello), encode_message(hello),
                time_left(deadline), ec);
  if (ec) fail(started.child, errc::load_failed, fmt::format("cannot send the plugin to the worker: {}", ec.message()), deadline);
  const int channel_fd = o.shared_memory ? region.fd() : worker_data.get();
  const int passed[2] = {channel_fd, plugin_file.get()};
  const std::byte mark{1};
  send_with_fds(control.get(), std::span<const std::byte>(&mark, 1),
                std::span<const int>(passed, hello.limits.plugin_fd_passed ? 2 : 1), time_left(deadline), ec);
  if (ec) fail(started.child, errc::load_failed, fmt::format("cannot send the channel to the worker: {}", ec.message()), deadline);
  worker_data.reset();

  const auto ready = read_answer(started.child, control.get(), spec, hello, deadline, started);
  started.plugin_on_load = ready.on_load;
  started.plugin_on_stop = ready.on_stop;
  started.channel = o.shared_memory ? frame_channel::over_rings(std::move(region), o.ring_capacity,
                                                                shm::duplex_side::host, o.wait, o.max_message_size)
                                    : frame_channel::over_socket(std::move(data), o.max_message_size);
  started.control = std::move(control);
  return started;
}

}  // namespace isolate::detail

#endif
