// Cap'n Proto baseline server: serves Adder on one connection accepted from
// the listening Unix socket it inherits (fd number in argv[1]), and exits when
// the client hangs up. Started by baseline_capnp_bench, pinned by it.
#include "add.capnp.h"

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>

#include <cstdio>
#include <cstdlib>

namespace {

class adder_impl final : public Adder::Server {
 protected:
  kj::Promise<void> add(AddContext context) override {
    auto params = context.getParams();
    context.getResults().setR(params.getA() + params.getB());
    return kj::READY_NOW;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <listening unix socket fd>\n", argv[0]);
    return 2;
  }
  auto io = kj::setupAsyncIo();
  auto listener = io.lowLevelProvider->wrapListenSocketFd(std::atoi(argv[1]), kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
  capnp::TwoPartyServer server(kj::heap<adder_impl>());
  server.accept(listener->accept().wait(io.waitScope));
  server.drain().wait(io.waitScope);
  return 0;
}
