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

// Decoding a message may allocate at most FACTOR x (its size) + SLACK bytes
// (wire/bounded_loads.hpp), so that a peer cannot make the receiver allocate
// far more than it sent. Honest messages of common shapes need at most 9
// bytes per byte received: a vector of empty strings or vectors 3-4, maps and
// sets of ints 5-9, a vector of empty optional<int> 8; 2^25 strings claimed in
// a 32 MiB reply need 32 and are refused. Raise it for messages of many empty
// optionals, variants or null pointers of large types (an empty
// optional<std::string> is 40 bytes for 1 on the wire). The slack lets a small
// message hold one large default-constructed object.
#ifndef ISOLATE_DECODE_ALLOCATION_FACTOR
#define ISOLATE_DECODE_ALLOCATION_FACTOR 16
#endif
#ifndef ISOLATE_DECODE_ALLOCATION_SLACK
#define ISOLATE_DECODE_ALLOCATION_SLACK (std::size_t{1} << 20)
#endif

// Whether a process plugin's link counts bytes and samples latency
// (telemetry.hpp). Only benchmarks set it to 0, to price it: everything else
// telemetry needs costs nothing on a call.
#ifndef ISOLATE_TELEMETRY
#define ISOLATE_TELEMETRY 1
#endif

// How deeply values may nest in a decoded message; deeper is a protocol error
// rather than a stack overflow. Each struct, container or smart pointer is a
// level, so 256 admits 127 generations of a tree whose node holds a vector,
// map or pointer of nodes (protobuf allows 100 nested messages); the decoder
// then uses under 40 KiB of stack (180-290 bytes a generation, measured with
// GCC 12 -O2; under 200 KiB with ASan).
#ifndef ISOLATE_MAX_DECODE_DEPTH
#define ISOLATE_MAX_DECODE_DEPTH 256
#endif

// Longest exception type name and message (bytes) that an error from the peer
// becomes; longer ones are cut, with a marker saying how much was cut. Room
// for an exception type's name (a registered type's must fit to be found) and
// a long diagnostic, while a 256 MiB message does not become a 256 MiB what().
#ifndef ISOLATE_MAX_REMOTE_TYPE_NAME
#define ISOLATE_MAX_REMOTE_TYPE_NAME 256
#endif
#ifndef ISOLATE_MAX_REMOTE_MESSAGE
#define ISOLATE_MAX_REMOTE_MESSAGE (std::size_t{64} << 10)
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
