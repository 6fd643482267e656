// What the supervision tests share: loading the watched plugin.
#ifndef ISOLATE_TESTS_SUPERVISION_SUPPORT_HPP
#define ISOLATE_TESTS_SUPERVISION_SUPPORT_HPP

#include "watched.hpp"

#include <isolate/plugin_library.hpp>
#include <isolate/transport/process.hpp>

#include <chrono>

namespace supervision_test {

using watched_plugin = isolate::plugin<watched, isolate::process>;

// A TSan worker at its memory cap does not end with limit_exceeded (its
// runtime reports and dies on its own terms): that case runs in the other
// builds only.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool memory_cap_unsupported = true;
#else
inline constexpr bool memory_cap_unsupported = false;
#endif

inline isolate::process::options watched_options() {
  isolate::process::options options;
  options.load_timeout = std::chrono::seconds(30);
  options.name = "watched";
  return options;
}

inline watched_plugin load_watched(const isolate::process::options& options = watched_options()) {
  return isolate::load<watched, isolate::process>(ISOLATE_TEST_WATCHED_PLUGIN, options);
}

}  // namespace supervision_test

#endif
