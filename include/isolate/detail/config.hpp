// Configuration macros for isolate. Every isolate header includes this first;
// define a macro before including isolate to change its default.
#ifndef ISOLATE_DETAIL_CONFIG_HPP
#define ISOLATE_DETAIL_CONFIG_HPP

#include <cstddef>

// Size both processes assume for a cache line when laying out shared memory.
// Fixed rather than std::hardware_destructive_interference_size, which may differ
// between the host's and the worker's compilers; checked at the handshake.
#ifndef ISOLATE_CACHE_LINE
#define ISOLATE_CACHE_LINE 64
#endif

// Largest payload (bytes) of one message unless a plugin's limits say otherwise.
#ifndef ISOLATE_DEFAULT_MAX_MESSAGE_SIZE
#define ISOLATE_DEFAULT_MAX_MESSAGE_SIZE (std::size_t{256} << 20)
#endif

// Gives a class default visibility even in a plugin built with
// -fvisibility=hidden, so that its exceptions thrown on one side of a shared
// library boundary are caught by type on the other (type_info is then shared).
#ifndef ISOLATE_VISIBLE
#define ISOLATE_VISIBLE __attribute__((visibility("default")))
#endif

// Most methods one ISOLATE_INTERFACE may declare (the preprocessor loops go this far).
#define ISOLATE_MAX_METHODS 32

// Most parameters one interface method may take.
#define ISOLATE_MAX_PARAMS 16

#endif
