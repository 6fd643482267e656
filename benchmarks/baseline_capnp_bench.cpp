// Cap'n Proto RPC baseline: Adder.add(a, b) over a Unix socket to a server
// process (capnp_add_server), one call per iteration. The listening socket is
// bound here and inherited by the server, so the client can connect at once
// without waiting for the server to start. This executable never starts a
// thread, so fork + exec is safe.
#include "add.capnp.h"
#include "ipc_baseline.hpp"

#include <benchmark/benchmark.h>
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>

#include <sys/socket.h>
#include <sys/un.h>

#include <string>

#ifndef ISOLATE_BENCH_CAPNP_SERVER
#error "ISOLATE_BENCH_CAPNP_SERVER must name the capnp_add_server executable"
#endif

namespace {

using namespace isolate::bench;

constexpr int warm_up_calls = 200;

// Binds and listens on `path`; returns the fd, inheritable by the server, or -1.
int listen_unix(std::string const& path) {
  int const fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path.copy(address.sun_path, sizeof address.sun_path - 1);
  ::unlink(path.c_str());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(fd, 1) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void capnp_add(benchmark::State& state, placement where) {
  std::string const path = "/tmp/isolate-bench-capnp-" + std::to_string(::getpid()) + ".sock";
  int const listen_fd = listen_unix(path);
  if (listen_fd < 0) {
    state.SkipWithError("cannot listen on a Unix socket in /tmp");
    return;
  }
  scoped_pin pin(0);
  std::string const fd_arg = std::to_string(listen_fd);
  forked_peer server(peer_cpu(where), [&] {
    ::execl(ISOLATE_BENCH_CAPNP_SERVER, ISOLATE_BENCH_CAPNP_SERVER, fd_arg.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  });
  ::close(listen_fd);

  try {
    auto io = kj::setupAsyncIo();
    auto address = io.provider->getNetwork().parseAddress(("unix:" + path).c_str()).wait(io.waitScope);
    auto stream = address->connect().wait(io.waitScope);
    ::unlink(path.c_str());
    capnp::TwoPartyClient client(*stream);
    auto adder = client.bootstrap().castAs<Adder>();
    std::int32_t sum = 0;
    auto call = [&] {
      auto request = adder.addRequest();
      request.setA(sum);
      request.setB(1);
      sum = request.send().wait(io.waitScope).getR();
    };
    for (int i = 0; i < warm_up_calls; ++i) call();
    run_round_trips(state, call);
    if (sum != warm_up_calls + static_cast<std::int32_t>(state.iterations())) state.SkipWithError("wrong sums");
  } catch (kj::Exception const& e) {
    ::unlink(path.c_str());
    state.SkipWithError(e.getDescription().cStr());
    return;
  }
  if (server.join() != 0) state.SkipWithError("the server failed");
}

}  // namespace

BENCHMARK_CAPTURE(capnp_add, a, placement::two_cores)->Name("capnp_add/two_cores")->UseRealTime();
BENCHMARK_CAPTURE(capnp_add, b, placement::one_core)->Name("capnp_add/one_core")->UseRealTime();

BENCHMARK_MAIN();
