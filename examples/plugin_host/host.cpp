// A host that loads its plugins through isolate::manager from a small
// configuration file, each at the isolation level the file gives it; calls
// one by method name, lends another a buffer for one call (read-only),
// reloads one with a new build while it runs, and prints the status table.
//
//   plugin_host [plugins.conf [plugin directory]]
#include "text_filter.hpp"

#include <isolate/manager.hpp>

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct plugin_line {
  std::string id, level, library, configuration;
};

// One plugin per line: id, level, library, then its configuration; '#' comments.
std::vector<plugin_line> read_configuration(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  std::vector<plugin_line> lines;
  for (std::string text; std::getline(in, text);) {
    if (const auto hash = text.find('#'); hash != std::string::npos) text.resize(hash);
    std::istringstream words(text);
    plugin_line line;
    if (!(words >> line.id)) continue;  // blank
    if (!(words >> line.level >> line.library)) throw std::runtime_error("incomplete line for '" + line.id + "'");
    std::getline(words >> std::ws, line.configuration);
    lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path config = argc > 1 ? argv[1] : PLUGIN_HOST_CONFIG;
  const std::filesystem::path directory = argc > 2 ? argv[2] : PLUGIN_HOST_DIRECTORY;
  try {
    isolate::manager_hooks hooks;
    hooks.after_load = [](const isolate::plugin_info& p) {
      fmt::print("loaded {} ({}) from {}\n", p.id, isolate::to_string(p.level), p.path.filename().string());
    };
    hooks.after_restart = [](const isolate::plugin_info& p, const isolate::recovery& r) {
      fmt::print("{}: {}\n", p.id, r);
    };
    isolate::manager plugins(hooks);

    for (const auto& line : read_configuration(config)) {
      isolate::host_services services;
      services.configure(line.configuration);
      plugins.load<text_filter>(line.id, directory / line.library, isolate::level::parse(line.level), services);
    }

    // A typed handle: the same call as through isolate::load.
    fmt::print("shout: {}\n", plugins.get<text_filter>("shout")->apply("hello"));
    // By the method's name, as a script would: checked against the interface at run time.
    fmt::print("rot (by name): {}\n", plugins.call<std::string>("rot", "apply", std::string("Hello, World")));

    // A buffer lent read-only, for this one call: the plugin reads it, cannot
    // write it, and no longer maps it once the call has returned.
    const char text[] = "Pack my box with five dozen liquor jugs.";
    isolate::shared_buffer page(4096);
    std::memcpy(page.data(), text, sizeof text);
    const auto letters = plugins.get<text_filter>("tally")->count_letters(page.read_only().for_one_call());
    fmt::print("tally: {} letters in a buffer lent read-only for one call\n", letters);

    // A new build of rot replaces the old while the host runs; handles stay valid.
    plugins.reload("rot", directory / "librot_filter_v2.so");
    fmt::print("rot after reload: {}\n", plugins.call<std::string>("rot", "apply", std::string("Hello, World")));

    // A plugin that refuses its configuration says why.
    try {
      isolate::host_services bad;
      bad.configure("shift=many");
      plugins.load<text_filter>("broken", directory / "librot_filter.so", isolate::level::parse("process"), bad);
    } catch (const isolate::error& e) {
      fmt::print("broken: {} ({})\n", e.what(), e.code() == isolate::errc::load_refused ? "load_refused" : "?");
    }

    fmt::print("\n{}", plugins.status());
    plugins.shutdown();
    fmt::print("all plugins stopped\n");
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "plugin_host: {}\n", e.what());
    return 1;
  }
}
