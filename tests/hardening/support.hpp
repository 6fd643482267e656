// What the host-hardening tests share: loading the hardy plugin or a hostile
// worker, and watching a worker process die.
#ifndef ISOLATE_TESTS_HARDENING_SUPPORT_HPP
#define ISOLATE_TESTS_HARDENING_SUPPORT_HPP

#include "hardy.hpp"

#include <isolate/plugin_library.hpp>
#include <isolate/transport/process.hpp>

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <string>

namespace hardening_test {

using hardy_plugin = isolate::plugin<hardy, isolate::process>;

inline hardy_plugin load_hardy(isolate::process::options options = {}, const isolate::host_services& services = {}) {
  return isolate::load<hardy, isolate::process>(ISOLATE_TEST_HARDY_PLUGIN, options, services);
}

// A worker that breaks the protocol in the way `mode` names (hostile_worker.cpp).
inline hardy_plugin load_hostile(const std::string& mode, isolate::process::options options = {},
                                 const isolate::host_services& services = {}) {
  options.worker = ISOLATE_TEST_HOSTILE_WORKER;
  return isolate::load<hardy, isolate::process>(mode, options, services);
}

// True once process `pid` has exited (a zombie counts), within `timeout`.
inline bool dies_within(int pid, std::chrono::milliseconds timeout) {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return true;  // already reaped
  pollfd p{fd, POLLIN, 0};
  const bool died = ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
  ::close(fd);
  return died;
}

}  // namespace hardening_test

#endif
