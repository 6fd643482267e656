// <isolate/export.hpp> is what every plugin source includes: it must stay
// light (no Asio, which only the host's asynchronous calls need) and make a
// library whose entry table describes the interface and serves its calls.
#include "isolate/export.hpp"

#ifdef ASIO_VERSION
#error "<isolate/export.hpp> pulled in Asio: a plugin's compile must not; keep the host's async machinery (detail/remote.hpp) out of the headers a plugin includes"
#endif

#include <doctest/doctest.h>

#include <cstring>
#include <string>

namespace export_test {

ISOLATE_INTERFACE(counter, (int, add, (int, int)), (std::string, name, ()));

struct my_counter final : counter {
  int add(int a, int b) override { return a + b; }
  std::string name() override { return "mine"; }
};

}  // namespace export_test

ISOLATE_EXPORT_PLUGIN(export_test::counter, export_test::my_counter);

TEST_CASE("the exported entry names the interface and serves its calls") {
  using export_test::counter;
  const isolate::detail::plugin_entry* entry = isolate_plugin_entry();
  REQUIRE(entry != nullptr);
  CHECK(entry->abi_version == isolate::detail::plugin_abi_version);
  CHECK(std::string(entry->interface_name) == std::string(counter::isolate_meta::interface_name));
  CHECK(entry->fingerprint == counter::isolate_meta::fingerprint);

  void* object = entry->create(nullptr);
  isolate::wire::buffer request, reply;
  isolate::detail::encode_call(request, 0, 1024, 2, 3);
  isolate::wire::set_call_id(request, 7);
  entry->handle(object, request.data(), request.size(), nullptr, reply, nullptr, 1024);
  const auto view = isolate::wire::parse(reply.bytes(), 1024);
  CHECK(view.header.kind == isolate::wire::frame_kind::reply);
  CHECK(view.header.call_id == 7);
  CHECK(isolate::detail::decode_reply<int>(reply, 1024) == 5);

  SUBCASE("a frame that does not parse still gets an error reply") {
    const std::byte garbage[3]{};
    entry->handle(object, garbage, sizeof garbage, nullptr, reply, nullptr, 1024);
    CHECK(isolate::wire::parse(reply.bytes(), 1024).header.kind == isolate::wire::frame_kind::error);
  }
  entry->destroy(object);
}
