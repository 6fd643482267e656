// Everything a process plugin's worker is started from, kept across
// restarts, and where the worker program is found.
#ifndef ISOLATE_DETAIL_PROCESS_LAUNCH_SPEC_HPP
#define ISOLATE_DETAIL_PROCESS_LAUNCH_SPEC_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/capability_table.hpp"
#include "isolate/detail/process/buffer_sharing.hpp"
#include "isolate/error.hpp"
#include "isolate/services.hpp"
#include "isolate/transport/process_options.hpp"
#include "isolate/wire/frame.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace isolate::detail {

class output_capture;  // output_capture.hpp

struct launch_spec {
  std::filesystem::path plugin;
  std::string interface_name;
  std::uint64_t fingerprint = 0;
  process::options options;
  host_services services;  // what the plugin may call back
  // The shared buffers lent to the plugin, kept across restarts (copies of the spec share it).
  std::shared_ptr<lent_buffers> lent = std::make_shared<lent_buffers>();
  // Where the workers' stdout and stderr go when options.on_output is set
  // (made by process_link, which moves the callback into it; copies share it).
  std::shared_ptr<output_capture> output{};
  // The objects handed to the plugin and the way to those it handed over
  // (isolate::capability); copies share it. process_link makes one with its
  // links; this one (a session started on its own) reaches no worker object.
  std::shared_ptr<capability_table> capabilities = std::make_shared<capability_table>(nullptr, nullptr, 0);
};

inline std::filesystem::path find_worker(const launch_spec& spec) {
  namespace fs = std::filesystem;
  if (!spec.options.worker.empty()) return spec.options.worker;
  std::vector<fs::path> tried;
  tried.push_back(fs::absolute(spec.plugin).parent_path() / "isolate-worker");
  if (const char* env = std::getenv("ISOLATE_WORKER"); env != nullptr && *env != '\0') tried.emplace_back(env);
  std::error_code ec;
  const auto self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) tried.push_back(self.parent_path() / "isolate-worker");
  for (const auto& candidate : tried) {
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  std::string list;
  for (const auto& candidate : tried) list += "\n  " + candidate.string();
  throw error(errc::load_failed, "cannot find the isolate-worker program; looked for:" + list +
                                     "\nbuild it with isolate_add_plugin() or set process::options::worker");
}

// Refuses options no worker could run with, before anything is started.
inline void check_options(const process::options& options) {
  constexpr std::size_t frame_limit = std::numeric_limits<std::uint32_t>::max() - wire::header_size;
  if (options.max_message_size > frame_limit) {
    throw error(errc::unsupported, fmt::format("process::options::max_message_size is {} bytes, but a frame's size is "
                                               "32-bit: at most {} bytes fit",
                                               options.max_message_size, frame_limit));
  }
  if (options.max_message_size == 0) throw error(errc::unsupported, "process::options::max_message_size is 0");
  if (options.on_output && options.max_output_line == 0) {
    throw error(errc::unsupported, "process::options::max_output_line is 0: no line would fit");
  }
}

}  // namespace isolate::detail

#endif
