// Loads two plugins that depend on incompatible releases of libstamp, both at
// once, under one isolation policy, and shows what each one really runs.
#include <isolate/isolate.hpp>
#include <isolate/plugin_library.hpp>
#include <isolate/transport/process.hpp>

#include "report.hpp"

#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>

#ifndef CONFLICTING_DEPS_POLICY
#define CONFLICTING_DEPS_POLICY process
#endif

// The one line that decides: in_process or thread share the host's dynamic
// loader with both plugins; process gives each plugin a loader of its own.
using policy = isolate::CONFLICTING_DEPS_POLICY;

#define CONFLICTING_DEPS_STRING(x) #x
#define CONFLICTING_DEPS_NAME(x) CONFLICTING_DEPS_STRING(x)

// Prints what each plugin answers; true when one runs against a libstamp
// other than the one it was built against.
bool show_both() {
  // Loaded in this order: under in_process, legacy_report's libstamp 1.0 is
  // the libstamp.so.1 that modern_report gets too.
  auto legacy = isolate::load<example::report, policy>(LEGACY_REPORT_PLUGIN);
  auto modern = isolate::load<example::report, policy>(MODERN_REPORT_PLUGIN);

  bool clash = false;
  for (auto* plugin : {&legacy, &modern}) {
    auto& p = *plugin;
    const std::string built = p->built_against();
    const std::string running = p->running_against();
    std::printf("  %-14s pid %-7d built against libstamp %s, running against %s: 2024-12-31 -> %s%s\n",
                p->name().c_str(), p->pid(), built.c_str(), running.c_str(), p->date(2024, 12, 31).c_str(),
                built == running ? "" : "   <-- wrong library");
    clash = clash || built != running;
  }
  return clash;
}

int main() try {
  std::printf("policy: isolate::%s (host pid %d)\n", CONFLICTING_DEPS_NAME(CONFLICTING_DEPS_POLICY),
              static_cast<int>(::getpid()));
  // The verdict comes after both plugins were unloaded, so it also says that went well.
  if (show_both()) {
    std::printf("verdict: CLASH. One process has one dynamic loader, which keeps one copy of libstamp.so.1;\n"
                "the plugin loaded second silently runs against the first one's release.\n"
                "Under isolate::process (conflicting_deps_process) each plugin gets its own.\n");
  } else {
    std::printf("verdict: each plugin runs against the libstamp it was built against.\n");
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "conflicting_deps: %s\n", e.what());
  return 1;
}
