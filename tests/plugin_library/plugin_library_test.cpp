// Plugins in shared libraries: loading under in_process and thread, the
// checks that refuse a wrong library, and the entry table the worker uses.
#include <isolate/plugin_library.hpp>

#include <isolate/detail/codec.hpp>
#include <isolate/transport/in_process.hpp>
#include <isolate/transport/thread.hpp>

#include "calculator.hpp"
#include "calculator_v2.hpp"

#include <dlfcn.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>

using plugin_library_test::calculator;

namespace {

const std::filesystem::path calculator_plugin = ISOLATE_TEST_CALCULATOR_PLUGIN;
const std::filesystem::path calculator_v2_plugin = ISOLATE_TEST_CALCULATOR_V2_PLUGIN;
const std::filesystem::path throwing_plugin = ISOLATE_TEST_THROWING_PLUGIN;
const std::filesystem::path no_entry_library = ISOLATE_TEST_NO_ENTRY_LIBRARY;
const std::filesystem::path other_directory_plugin = ISOLATE_TEST_OTHER_DIRECTORY_PLUGIN;

// The failure of f as (code, what()); fails the test if f does not throw an isolate::error.
template <class F>
std::pair<isolate::errc, std::string> failure_of(F&& f) {
  try {
    f();
  } catch (const isolate::error& e) {
    REQUIRE(e.code().category() == isolate::error_category());
    return {static_cast<isolate::errc>(e.code().value()), e.what()};
  }
  FAIL("no isolate::error was thrown");
  return {};
}

// Whether `reply` is the entry's protocol_error. The caller did not observe
// that error itself, so it arrives as the peer's (wire/exception_codec.hpp).
bool refused_with_protocol_error(const isolate::wire::buffer& reply, std::size_t max) {
  const auto [code, what] = failure_of([&] { isolate::detail::decode_reply<int>(reply, max); });
  return code == isolate::errc::remote_exception &&
         what.find("the peer threw isolate::error (protocol_error): ") != std::string::npos;
}

bool is_loaded(const std::filesystem::path& library) {
  void* handle = ::dlopen(std::filesystem::absolute(library).c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (!handle) return false;
  ::dlclose(handle);
  return true;
}

std::filesystem::path temporary_file(const std::string& name) {
  return std::filesystem::temp_directory_path() / (name + "." + std::to_string(::getpid()));
}

std::string contents(const std::filesystem::path& file) {
  std::ifstream in(file);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

#define ISOLATE_TEST_POLICIES isolate::in_process, isolate::thread

TEST_CASE_TEMPLATE("a plugin library loads and answers calls", Policy, ISOLATE_TEST_POLICIES) {
  auto calc = isolate::load<calculator, Policy>(calculator_plugin);
  CHECK(calc->add(2, 3) == 5);
  CHECK(calc->greet("ada") == "hello, ada");
  CHECK_THROWS_WITH_AS(calc->fail("bad input"), "bad input", std::invalid_argument);
  // Made on the thread that serves it: the caller's under in_process, the
  // plugin's own under thread.
  CHECK(calc->on_constructor_thread());
  const bool made_here = calc->constructor_thread() == std::hash<std::thread::id>{}(std::this_thread::get_id());
  CHECK(made_here == std::is_same_v<Policy, isolate::in_process>);
}

TEST_CASE_TEMPLATE("a path given as text or as a path picks the library overload", Policy, ISOLATE_TEST_POLICIES) {
  const std::string text = calculator_plugin.string();
  CHECK(isolate::load<calculator, Policy>(text.c_str())->add(1, 1) == 2);
  CHECK(isolate::load<calculator, Policy>(text)->add(1, 2) == 3);
  CHECK(isolate::load<calculator, Policy>(calculator_plugin, typename Policy::options{})->add(1, 3) == 4);
}

TEST_CASE_TEMPLATE("the object is destroyed by its library, which is unloaded after it", Policy,
                   ISOLATE_TEST_POLICIES) {
  const auto report = temporary_file("isolate_plugin_destroyed");
  std::filesystem::remove(report);
  REQUIRE_FALSE(is_loaded(calculator_plugin));
  {
    auto calc = isolate::load<calculator, Policy>(calculator_plugin);
    calc->report_destruction_to(report.string());
    CHECK(is_loaded(calculator_plugin));
    CHECK(contents(report).empty());
  }
  CHECK(contents(report) == "destroyed");
  CHECK_FALSE(is_loaded(calculator_plugin));
  std::filesystem::remove(report);
}

TEST_CASE("two plugins from one library are separate objects sharing the library") {
  auto first = isolate::load<calculator, isolate::thread>(calculator_plugin);
  {
    auto second = isolate::load<calculator, isolate::in_process>(calculator_plugin);
    CHECK(second->add(20, 22) == 42);
  }
  CHECK(is_loaded(calculator_plugin));
  CHECK(first->add(1, 2) == 3);
}

TEST_CASE_TEMPLATE("a plugin built from another declaration of the interface is refused", Policy,
                   ISOLATE_TEST_POLICIES) {
  const auto host = calculator::isolate_meta::fingerprint;
  const auto plugin = plugin_library_test_v2::calculator::isolate_meta::fingerprint;
  REQUIRE(host != plugin);
  const auto [code, what] = failure_of([] { isolate::load<calculator, Policy>(calculator_v2_plugin); });
  CHECK(code == isolate::errc::fingerprint_mismatch);
  CHECK(what.find(calculator_v2_plugin.string()) != std::string::npos);
  CHECK(what.find("'calculator'") != std::string::npos);
  CHECK(what.find(isolate::detail::hex(plugin)) != std::string::npos);
  CHECK(what.find(isolate::detail::hex(host)) != std::string::npos);
  CHECK(what.find("rebuild the plugin") != std::string::npos);
  // Refused before its object was made, and not left loaded.
  CHECK_FALSE(is_loaded(calculator_v2_plugin));
}

TEST_CASE_TEMPLATE("a missing file fails to load, naming the path", Policy, ISOLATE_TEST_POLICIES) {
  const std::filesystem::path missing = calculator_plugin.parent_path() / "libnot_there.so";
  const auto [code, what] = failure_of([&] { isolate::load<calculator, Policy>(missing); });
  CHECK(code == isolate::errc::load_failed);
  CHECK(what.find(missing.string()) != std::string::npos);
  CHECK(what.find("No such file") != std::string::npos);  // dlerror's reason
}

TEST_CASE_TEMPLATE("a library without an entry is not a plugin", Policy, ISOLATE_TEST_POLICIES) {
  const auto [code, what] = failure_of([] { isolate::load<calculator, Policy>(no_entry_library); });
  CHECK(code == isolate::errc::load_failed);
  CHECK(what.find(no_entry_library.string()) != std::string::npos);
  CHECK(what.find("does not export an isolate plugin") != std::string::npos);
  CHECK(what.find("ISOLATE_EXPORT_PLUGIN") != std::string::npos);
  CHECK_FALSE(is_loaded(no_entry_library));
}

TEST_CASE_TEMPLATE("a plugin whose constructor throws fails to load with its message", Policy,
                   ISOLATE_TEST_POLICIES) {
  const auto [code, what] = failure_of([] { isolate::load<calculator, Policy>(throwing_plugin); });
  CHECK(code == isolate::errc::load_failed);
  CHECK(what.find("no licence file found") != std::string::npos);
  CHECK_FALSE(is_loaded(throwing_plugin));
}

TEST_CASE("plugin_library checks a name and fingerprint without the interface type") {
  const isolate::detail::plugin_library library(calculator_plugin);
  CHECK(library.path() == calculator_plugin);
  CHECK(library.interface_name() == "calculator");
  CHECK(library.fingerprint() == calculator::isolate_meta::fingerprint);
  CHECK(library.entry().abi_version == isolate::detail::plugin_abi_version);
  CHECK_NOTHROW(library.check("calculator", calculator::isolate_meta::fingerprint));

  std::string message;
  CHECK_FALSE(library.matches("adder", calculator::isolate_meta::fingerprint, message));
  CHECK(message.find("implements interface 'calculator', but the host expects interface 'adder'") !=
        std::string::npos);
  const auto [code, what] = failure_of([&] { library.check("calculator", 0x1234); });
  CHECK(code == isolate::errc::fingerprint_mismatch);
  CHECK(what.find("0x0000000000001234") != std::string::npos);
}

TEST_CASE("the entry serves frames for a caller that does not know the interface") {
  const isolate::detail::plugin_library library(calculator_plugin);
  const auto& entry = library.entry();
  void* object = entry.create(nullptr);  // calculator_impl takes no plugin_context
  REQUIRE(object != nullptr);
  constexpr std::size_t max = 1 << 16;

  SUBCASE("a call") {
    isolate::wire::buffer request, reply;
    isolate::detail::encode_call(request, 0, max, 40, 2);
    isolate::wire::set_call_id(request, 77);
    entry.handle(object, request.data(), request.size(), nullptr, reply, nullptr, max);
    const auto frame = isolate::wire::parse(reply.bytes(), max);
    CHECK(frame.header.call_id == 77);
    CHECK(isolate::detail::decode_reply<int>(reply, max) == 42);
  }
  SUBCASE("a call whose payload arrives in pieces after the header") {
    isolate::wire::buffer request, reply;
    const std::string name(5000, 'n');
    isolate::detail::encode_call(request, 1, max, name);
    // The entry gets the header and 10 payload bytes; the rest comes 7 bytes at a time.
    struct pieces final : isolate::wire::chunk_source {
      std::span<const std::byte> left;
      int finished = 0;
      std::span<const std::byte> next() override {
        const auto piece = left.first(std::min<std::size_t>(7, left.size()));
        left = left.subspan(piece.size());
        return piece;
      }
      void finish() noexcept override { ++finished; }
    } rest;
    const std::size_t first = isolate::wire::header_size + 10;
    rest.left = request.bytes().subspan(first);
    entry.handle(object, request.data(), first, &rest, reply, nullptr, max);
    CHECK(isolate::detail::decode_reply<std::string>(reply, max) == "hello, " + name);
    CHECK(rest.finished == 1);
  }
  SUBCASE("a call whose method throws") {
    isolate::wire::buffer request, reply;
    isolate::detail::encode_call(request, 5, max, std::string("nope"));
    entry.handle(object, request.data(), request.size(), nullptr, reply, nullptr, max);
    CHECK_THROWS_WITH_AS(isolate::detail::decode_reply<void>(reply, max), "nope", std::invalid_argument);
  }
  SUBCASE("a frame that does not parse gets an error reply addressed to its call") {
    isolate::wire::buffer request, reply;
    isolate::detail::encode_call(request, 0, max, 40, 2);
    isolate::wire::set_call_id(request, 9);
    request.resize(request.size() - 1);  // shorter than its header says
    entry.handle(object, request.data(), request.size(), nullptr, reply, nullptr, max);
    const auto frame = isolate::wire::parse(reply.bytes(), max);
    CHECK(frame.header.kind == isolate::wire::frame_kind::error);
    CHECK(frame.header.call_id == 9);
    CHECK(refused_with_protocol_error(reply, max));
  }
  SUBCASE("a frame shorter than a header gets an error reply too") {
    const std::byte scrap[3]{};
    isolate::wire::buffer reply;
    entry.handle(object, scrap, sizeof scrap, nullptr, reply, nullptr, max);
    CHECK(refused_with_protocol_error(reply, max));
  }
  SUBCASE("an unknown method") {
    isolate::wire::buffer request, reply;
    isolate::detail::encode_call(request, 200, max);
    entry.handle(object, request.data(), request.size(), nullptr, reply, nullptr, max);
    CHECK(refused_with_protocol_error(reply, max));
  }
  entry.destroy(object);
}

TEST_CASE("isolate_add_plugin puts a worker next to every plugin directory") {
  CHECK(std::filesystem::is_regular_file(calculator_plugin.parent_path() / "isolate-worker"));
  CHECK(other_directory_plugin.parent_path() != calculator_plugin.parent_path());
  CHECK(std::filesystem::is_regular_file(other_directory_plugin.parent_path() / "isolate-worker"));
  CHECK(isolate::load<calculator, isolate::in_process>(other_directory_plugin)->add(2, 2) == 4);
}
