// Raw two-process ping-pong baselines: shared memory (spin, spin then futex,
// futex) and an AF_UNIX socketpair. One benchmark iteration = one round trip
// of `bytes` each way. This executable never starts a thread, so forking the
// peer inside each run is safe.
#include "ipc_baseline.hpp"

#include <benchmark/benchmark.h>

#include <sys/socket.h>

#include <vector>

namespace {

using namespace isolate::bench;

// Round trips run before timing so the peer is scheduled and its pages faulted.
constexpr int warm_up_round_trips = 200;

void shm_ping_pong(benchmark::State& state, waiting how, placement where) {
  auto const bytes = static_cast<std::size_t>(state.range(0));
  shared_mapping shm;
  scoped_pin pin(0);
  forked_peer peer(peer_cpu(where), [&] {
    std::vector<unsigned char> local(bytes);
    for (std::uint32_t n = 1;; ++n) {
      wait_for(shm->to_peer, n, how);
      if (shm->to_peer.stop.load(std::memory_order_relaxed) != 0) return;
      std::memcpy(local.data(), shm->to_peer.payload, bytes);
      ++local[0];
      std::memcpy(shm->to_caller.payload, local.data(), bytes);
      post(shm->to_caller, n, how);
    }
  });

  std::vector<unsigned char> message(bytes, 7);
  std::vector<unsigned char> reply(bytes);
  std::uint32_t n = 0;
  auto round_trip = [&] {
    ++n;
    std::memcpy(shm->to_peer.payload, message.data(), bytes);
    post(shm->to_peer, n, how);
    wait_for(shm->to_caller, n, how);
    std::memcpy(reply.data(), shm->to_caller.payload, bytes);
    benchmark::DoNotOptimize(reply.data());
  };
  for (int i = 0; i < warm_up_round_trips; ++i) round_trip();
  run_round_trips(state, round_trip);

  shm->to_peer.stop.store(1, std::memory_order_relaxed);
  post(shm->to_peer, n + 1, how);
  if (peer.join() != 0 || reply[0] != 8) state.SkipWithError("the peer failed or answered wrongly");
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes) * 2);
}

void socketpair_ping_pong(benchmark::State& state, placement where) {
  auto const bytes = static_cast<std::size_t>(state.range(0));
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    state.SkipWithError("socketpair failed");
    return;
  }
  scoped_pin pin(0);
  forked_peer peer(peer_cpu(where), [&] {
    ::close(fds[0]);
    std::vector<unsigned char> local(bytes);
    // The caller closing its end is the stop signal.
    while (read_all(fds[1], local.data(), bytes)) {
      ++local[0];
      if (!write_all(fds[1], local.data(), bytes)) ::_exit(1);
    }
  });
  ::close(fds[1]);

  std::vector<unsigned char> message(bytes, 7);
  std::vector<unsigned char> reply(bytes);
  bool ok = true;
  auto round_trip = [&] {
    ok = ok && write_all(fds[0], message.data(), bytes) && read_all(fds[0], reply.data(), bytes);
  };
  for (int i = 0; i < warm_up_round_trips; ++i) round_trip();
  run_round_trips(state, round_trip);

  ::close(fds[0]);
  if (peer.join() != 0 || !ok || reply[0] != 8) state.SkipWithError("the peer failed or answered wrongly");
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes) * 2);
}

// One way: `bytes` sent, 8 bytes of acknowledgement back (as a call by value
// with a small result). The floor of isolate's socket channel for large
// arguments; bytes_per_second counts the payload once.
void socketpair_one_way(benchmark::State& state, placement where) {
  auto const bytes = static_cast<std::size_t>(state.range(0));
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    state.SkipWithError("socketpair failed");
    return;
  }
  scoped_pin pin(0);
  forked_peer peer(peer_cpu(where), [&] {
    ::close(fds[0]);
    std::vector<unsigned char> local(bytes);
    std::uint64_t ack = 0;
    while (read_all(fds[1], local.data(), bytes)) {
      ack = local[bytes - 1];
      if (!write_all(fds[1], &ack, sizeof ack)) ::_exit(1);
    }
  });
  ::close(fds[1]);

  std::vector<unsigned char> message(bytes, 7);
  std::uint64_t ack = 0;
  bool ok = true;
  auto round_trip = [&] { ok = ok && write_all(fds[0], message.data(), bytes) && read_all(fds[0], &ack, sizeof ack); };
  for (int i = 0; i < 3; ++i) round_trip();
  run_round_trips(state, round_trip);

  ::close(fds[0]);
  if (peer.join() != 0 || !ok || ack != 7) state.SkipWithError("the peer failed or answered wrongly");
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
}

// Payload sizes of the latency-by-size plot; 8 bytes is the small-call row.
void sizes(benchmark::internal::Benchmark* b) {
  b->ArgName("bytes");
  for (std::int64_t size : {8, 4096, 65536}) b->Arg(size);
}

}  // namespace

BENCHMARK_CAPTURE(shm_ping_pong, a, waiting::spin, placement::two_cores)
    ->Name("shm_spin/two_cores")->Apply(sizes)->UseRealTime();
BENCHMARK_CAPTURE(shm_ping_pong, b, waiting::spin_then_futex, placement::two_cores)
    ->Name("shm_spin_futex/two_cores")->Apply(sizes)->UseRealTime();
BENCHMARK_CAPTURE(shm_ping_pong, c, waiting::spin_then_futex, placement::one_core)
    ->Name("shm_spin_futex/one_core")->ArgName("bytes")->Arg(8)->UseRealTime();
BENCHMARK_CAPTURE(shm_ping_pong, d, waiting::futex, placement::two_cores)
    ->Name("shm_futex/two_cores")->ArgName("bytes")->Arg(8)->UseRealTime();
BENCHMARK_CAPTURE(shm_ping_pong, e, waiting::futex, placement::one_core)
    ->Name("shm_futex/one_core")->ArgName("bytes")->Arg(8)->UseRealTime();
BENCHMARK_CAPTURE(socketpair_ping_pong, a, placement::two_cores)
    ->Name("socketpair/two_cores")->Apply(sizes)->UseRealTime();
BENCHMARK_CAPTURE(socketpair_ping_pong, b, placement::one_core)
    ->Name("socketpair/one_core")->ArgName("bytes")->Arg(8)->UseRealTime();

BENCHMARK_CAPTURE(socketpair_one_way, a, placement::two_cores)
    ->Name("socketpair_one_way/two_cores")->ArgName("bytes")->Arg(std::int64_t{64} << 20)->UseRealTime();

BENCHMARK_MAIN();
