// The interface isolate's own benchmarks call, under every policy.
#ifndef ISOLATE_BENCHMARKS_BENCH_INTERFACE_HPP
#define ISOLATE_BENCHMARKS_BENCH_INTERFACE_HPP

#include <isolate/capability.hpp>
#include <isolate/interface.hpp>
#include <isolate/shared_buffer.hpp>

#include <cstdint>
#include <vector>

namespace isolate::bench {

// std::uint8_t, not std::byte: Cereal writes a vector of an arithmetic type
// as one block (a memcpy); a vector of std::byte would go element by element.
// An object the plugin makes for the host (isolate::capability).
ISOLATE_INTERFACE(bench_adder, (int, add, (int, int)));

ISOLATE_INTERFACE(bench_service,
                  (int, add, (int, int)),
                  // A payload passed by value one way; returns its size.
                  (std::uint64_t, consume, (std::vector<std::uint8_t> const&)),
                  // A payload returned by value: `size` bytes.
                  (std::vector<std::uint8_t>, produce, (std::uint64_t)),
                  // A shared buffer: returns its size, having read one byte of it.
                  (std::uint64_t, consume_shared, (isolate::shared_buffer const&)),
                  // An object of the plugin's, called through its capability.
                  (isolate::capability<bench_adder>, make_adder, ()));

}  // namespace isolate::bench

#endif
