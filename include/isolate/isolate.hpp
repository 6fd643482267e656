// The everyday isolate headers: interfaces, errors, plugins and the transports.
#ifndef ISOLATE_ISOLATE_HPP
#define ISOLATE_ISOLATE_HPP

#include "isolate/detail/config.hpp"
#include "isolate/error.hpp"
#include "isolate/exceptions.hpp"
#include "isolate/interface.hpp"
#include "isolate/plugin.hpp"
#include "isolate/transport/in_process.hpp"
#include "isolate/transport/thread.hpp"

#endif
