// isolate::process: the plugin runs in a worker process of its own, reached
// through two shared-memory rings (or, as an option, a socket). The worker
// can crash, hang or scribble over shared memory; the host survives, every
// pending call fails at once with a named error, and the plugin can be
// restarted (restart_policy).
//
//   isolate::process::options options;
//   options.call_timeout = std::chrono::seconds(5);
//   options.restart = isolate::restart_policy::crash(3);
//   auto p = isolate::load<calculator, isolate::process>("plugins/libcalc.so", options);
#ifndef ISOLATE_TRANSPORT_PROCESS_HPP
#define ISOLATE_TRANSPORT_PROCESS_HPP

#include "isolate/detail/config.hpp"
#include "isolate/transport/process_options.hpp"
#include "isolate/detail/process/process_link.hpp"
#include "isolate/detail/remote.hpp"
#include "isolate/error.hpp"
#include "isolate/interface.hpp"
#include "isolate/limits.hpp"
#include "isolate/services.hpp"
#include "isolate/telemetry.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace isolate {

template <interface Interface>
class process::connection : public detail::remote_connection<Interface> {
 public:
  connection(const std::filesystem::path& plugin, const options& opts, const host_services& services = {})
      : detail::remote_connection<Interface>(std::make_unique<detail::process_link>(
            detail::launch_spec{plugin, std::string(Interface::isolate_meta::interface_name),
                                Interface::isolate_meta::fingerprint, opts, services})) {}

  detail::process_link& link() noexcept { return static_cast<detail::process_link&>(this->transport()); }

  // How each limit of options.limits holds in the running worker, as the
  // worker found it when it loaded the plugin.
  limits::report limits_in_force() { return link().limits_in_force(); }
  // The worker's process id as the host sees it (changes with each restart; -1 while down).
  pid_t pid() { return link().pid(); }
  // How many times the worker was restarted after dying.
  unsigned restarts() { return link().restarts(); }

  // The plugin's figures so far (calls, errors, latency, bytes, CPU, peak
  // memory, restarts, violations, last exit), over all its workers; print it
  // with fmt ("{}") or to_json(). Never stops the plugin.
  plugin_telemetry telemetry() { return link().telemetry(); }
  // The violations recorded (the last 256), oldest first.
  std::vector<violation> violations() { return link().violations(); }
  // Restarts, reloads, quarantines and releases, oldest first, each with its reason.
  std::vector<recovery> history() { return link().history(); }
  // Quarantined (options.supervision.quarantine_after, or quarantine()):
  // the worker is stopped and calls fail with errc::quarantined until release().
  bool quarantined() { return link().quarantined(); }
  void quarantine(std::string reason) { link().quarantine(std::move(reason)); }
  // Lifts the quarantine and starts the worker again; returns once it runs.
  void release() { link().release(); }
  // Hot reload: a fresh worker loads the plugin from `plugin` (or the same
  // file again) and, once it passed the fingerprint check, takes the calls;
  // the old worker's calls in flight fail with plugin_closed. If the fresh
  // one cannot load, this throws why and the old one serves on.
  void reload(const std::filesystem::path& plugin) { link().reload(plugin); }
  void reload() { link().reload(link().plugin_path()); }
};

}  // namespace isolate

#endif
