// The everyday host-side isolate headers: interfaces, errors, plugins, the
// three transports and loading plugins from shared libraries. A plugin's
// source includes isolate/export.hpp; the worker program isolate/worker.hpp.
#ifndef ISOLATE_ISOLATE_HPP
#define ISOLATE_ISOLATE_HPP

#include "isolate/detail/config.hpp"
#include "isolate/capability.hpp"
#include "isolate/discovery.hpp"
#include "isolate/error.hpp"
#include "isolate/exceptions.hpp"
#include "isolate/interface.hpp"
#include "isolate/limits.hpp"
#include "isolate/manager.hpp"
#include "isolate/plugin.hpp"
#include "isolate/plugin_library.hpp"
#include "isolate/shared_buffer.hpp"
#include "isolate/transport/in_process.hpp"
#include "isolate/transport/process.hpp"
#include "isolate/transport/thread.hpp"

#endif
