#include "isolate/discovery.hpp"

#include "../plugin_library/calculator.hpp"
#include "../process/faulty.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

std::vector<char> bytes_of(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write(const fs::path& path, const std::vector<char>& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

bool mapped_here(const fs::path& path) {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    if (line.find(path.filename().string()) != std::string::npos) return true;
  }
  return false;
}

// A scratch directory, removed at the end.
struct scratch {
  scratch() : path(fs::temp_directory_path() / ("isolate-discovery-" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~scratch() { fs::remove_all(path); }
  fs::path path;
};

}  // namespace

TEST_CASE("discovery lists what the plugins in a directory offer, without loading them") {
  scratch dir;
  fs::copy_file(ISOLATE_TEST_CALCULATOR_PLUGIN, dir.path / "libcalc.so");
  fs::copy_file(ISOLATE_TEST_FAULTY_PLUGIN, dir.path / "libfaulty.so");
  fs::copy_file(ISOLATE_TEST_NO_ENTRY_LIBRARY, dir.path / "libnot_a_plugin.so");
  std::ofstream(dir.path / "README") << "not a library\n";
  fs::create_directories(dir.path / "nested");
  fs::copy_file(ISOLATE_TEST_CALCULATOR_PLUGIN, dir.path / "nested" / "libcalc.so");

  const auto found = isolate::discover(dir.path);
  REQUIRE(found.size() == 2);  // sorted by path; the subdirectory is not searched
  CHECK(found[0].path == dir.path / "libcalc.so");
  CHECK(found[0].interface_name == "calculator");
  CHECK(found[0].fingerprint == plugin_library_test::calculator::isolate_meta::fingerprint);
  CHECK(found[0].abi_version == isolate::detail::plugin_abi_version);
  CHECK(found[1].path == dir.path / "libfaulty.so");
  CHECK(found[1].interface_name == "faulty");
  CHECK(found[1].fingerprint == process_test::faulty::isolate_meta::fingerprint);
  // Read from the files, not loaded: none of them is mapped in this process.
  CHECK_FALSE(mapped_here(dir.path / "libcalc.so"));
  CHECK_FALSE(mapped_here(dir.path / "libfaulty.so"));

  CHECK_FALSE(isolate::describe(dir.path / "libnot_a_plugin.so").has_value());
  CHECK_FALSE(isolate::describe(dir.path / "README").has_value());
  CHECK_FALSE(isolate::describe(dir.path / "missing.so").has_value());
  CHECK_FALSE(isolate::describe(dir.path).has_value());  // a directory
  CHECK_THROWS_AS(isolate::discover(dir.path / "missing"), isolate::error);
}

TEST_CASE("discovery reads a damaged file as untrusted bytes: cut short or scribbled over, never a crash") {
  scratch dir;
  const auto original = bytes_of(ISOLATE_TEST_CALCULATOR_PLUGIN);
  REQUIRE(original.size() > 4096);
  const auto damaged = dir.path / "libdamaged.so";
  // Cut at many lengths: a file cut before its section headers describes nothing.
  for (std::size_t size : {std::size_t{0}, std::size_t{16}, std::size_t{64}, std::size_t{4096}, original.size() / 2,
                           original.size() - 1}) {
    CAPTURE(size);
    write(damaged, std::vector<char>(original.begin(), original.begin() + static_cast<std::ptrdiff_t>(size)));
    const auto described = isolate::describe(damaged);
    if (described) CHECK(described->interface_name == "calculator");
  }
  // Random bytes scribbled anywhere (headers, tables, the description itself):
  // either the description still reads whole, or the file is not a plugin.
  std::mt19937 random(2026);
  for (int round = 0; round < 300; ++round) {
    auto copy = original;
    for (int i = 0; i < 8; ++i) copy[random() % copy.size()] = static_cast<char>(random());
    write(damaged, copy);
    const auto described = isolate::describe(damaged);
    if (described) CHECK(described->interface_name.find('\0') == std::string::npos);
  }
}
