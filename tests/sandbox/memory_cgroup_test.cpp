// The memory cgroup of a worker: which directories can hold one, and, where
// this host can make one (root here: a cgroup v1 memory group; a delegated
// cgroup v2 hierarchy elsewhere), that its cap holds against shared memory,
// which RLIMIT_DATA does not count, and that its OOM kill is seen.
#include "isolate/detail/sandbox/memory_cgroup.hpp"

#include <doctest/doctest.h>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;
using namespace isolate::detail::sandbox;

namespace {

struct scratch_directory {
  fs::path path;
  scratch_directory() {
    std::string pattern = (fs::temp_directory_path() / "isolate-cgroup-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~scratch_directory() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write(const fs::path& file, const std::string& text) { std::ofstream(file) << text; }

}  // namespace

TEST_CASE("a named directory is a cgroup v2 parent only if its subtree has the memory controller") {
  scratch_directory dir;
  std::string why;
  write(dir.path / "cgroup.subtree_control", "cpu io\n");
  CHECK_FALSE(find_cgroup_parent(dir.path, why));
  CHECK(why.find("does not give its children the memory controller") != std::string::npos);
  write(dir.path / "cgroup.subtree_control", "cpu memory pids\n");
  const auto parent = find_cgroup_parent(dir.path, why);
  REQUIRE(parent);
  CHECK(parent->version == 2);
  CHECK(parent->directory == dir.path);
}

TEST_CASE("a named directory is a cgroup v1 parent if it is a memory group, and nothing else is") {
  scratch_directory dir;
  std::string why;
  CHECK_FALSE(find_cgroup_parent(dir.path, why));
  CHECK(why.find("is not a cgroup v2 directory nor a cgroup v1 memory group") != std::string::npos);
  write(dir.path / "memory.limit_in_bytes", "9223372036854771712\n");
  const auto parent = find_cgroup_parent(dir.path, why);
  REQUIRE(parent);
  CHECK(parent->version == 1);
}

TEST_CASE("the OOM counters are read from either version's file") {
  CHECK(cgroup_detail::keyed_value("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill") == 3);
  CHECK(cgroup_detail::keyed_value("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n", "oom_kill") == 1);
  CHECK_FALSE(cgroup_detail::keyed_value("oom_kill_disable 0\n", "oom_kill"));
}

TEST_CASE("where this host can make a memory group, its cap stops shared memory, and the kill is counted") {
  std::string why;
  const auto parent = find_cgroup_parent({}, why);
  if (!parent) {
    MESSAGE("no memory cgroup for this host, not tested here: " << why);
    return;
  }
  std::error_code ec;
  auto group = memory_cgroup::create(*parent, std::uint64_t{32} << 20, ec);
  REQUIRE_MESSAGE(!ec, ec.message());
  const auto directory = group.directory();
  CHECK(fs::is_directory(directory));
  CHECK(group.oom_kills() == 0);

  int go[2];
  REQUIRE(::pipe(go) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    char byte;
    if (::read(go[0], &byte, 1) != 1) ::_exit(2);
    // 256 MiB of shared memory, which RLIMIT_DATA would not see.
    const std::size_t size = std::size_t{256} << 20;
    void* block = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (block == MAP_FAILED) ::_exit(3);
    std::memset(block, 1, size);
    ::_exit(0);
  }
  CHECK(!group.add(child));
  REQUIRE(::write(go[1], "x", 1) == 1);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  CHECK(group.oom_kills() == 1);
  const auto peak = group.peak_bytes();
  REQUIRE(peak);
  CHECK(*peak <= std::uint64_t{32} << 20);
  CHECK(*peak > std::uint64_t{16} << 20);
  ::close(go[0]);
  ::close(go[1]);
  group = {};
  CHECK_FALSE(fs::exists(directory));  // removed once empty
}
