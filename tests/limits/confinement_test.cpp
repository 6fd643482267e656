// What strict and maximum take away, proved by a plugin that reaches out:
// the network (a namespace with no interface, or seccomp), files outside
// the allow-list, and under maximum every call but computation. What the
// policy grants (a writable or read-only path) still works, and so does the
// plugin after a crash.
#include "isolate/limits.hpp"
#include "isolate/detail/sandbox/seccomp_notify.hpp"

#include "support.hpp"

#include "../support/failure.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

using namespace limits_test;
using namespace std::chrono_literals;
using isolate_test::contains;
using isolate_test::failure_of;

namespace {

void crashes_and_comes_back(hostile_plugin& p) {
  CHECK(failure_of([&] { p->crash(); }).code() == isolate::errc::plugin_crashed);
  CHECK(p->add(20, 22) == 42);
}

}  // namespace

TEST_CASE("network: standard leaves it open (the preset's promise, pinned) but for the host's abstract sockets" *
          doctest::test_suite(unprivileged_suite)) {
  const auto tcp = listener::tcp();
  const temp_dir dir(0755);
  const auto unix_socket = listener::unix_at(dir / "socket");
  const std::string name = "isolate-limits-" + std::to_string(::getpid());
  const auto abstract_socket = listener::abstract_named(name);
  auto p = load_hostile(restartable(isolate::limits::standard()));
  CHECK(p->connect_tcp(tcp.port()) == 0);
  CHECK(p->connect_unix((dir / "socket").string()) == 0);
  // The same network namespace, so the same abstract names: Landlock's scope refuses them.
  CHECK(p->connect_abstract(name) == EPERM);
  CHECK(p->connect_abstract(name + "-nobody-listens") == ECONNREFUSED);  // the scope, not a missing name, refused it
}

TEST_CASE("network: strict refuses IP sockets (reported) and unix sockets; its namespace has no route to the host" *
          doctest::test_suite(unprivileged_suite)) {
  const auto tcp = listener::tcp();
  const temp_dir dir(0755);
  const auto unix_socket = listener::unix_at(dir / "socket");
  auto p = load_hostile(restartable(isolate::limits::strict()));  // network_isolation::namespace_or_seccomp
  // With refusals reported (strict's default) an IP socket is refused at
  // once, so that the attempt is seen; without notification it is made in
  // the namespace, where it reaches nothing.
  const bool reported = isolate::detail::sandbox::seccomp_notify_available();
  CHECK(p->make_socket(AF_INET) == (reported ? EACCES : 0));
  CHECK(p->make_socket(AF_INET6) == (reported ? EACCES : 0));
  CHECK(p->connect_tcp(tcp.port()) == (reported ? EACCES : ENETUNREACH));
  // Pathname sockets are files, outside any network namespace: seccomp refuses socket(AF_UNIX).
  CHECK(p->make_socket(AF_UNIX) == EACCES);
  CHECK(p->connect_unix((dir / "socket").string()) == EACCES);
  CHECK(p->connect_abstract("isolate-limits-" + std::to_string(::getpid())) == EACCES);
  crashes_and_comes_back(p);
  CHECK(p->connect_tcp(tcp.port()) == (reported ? EACCES : ENETUNREACH));
}

TEST_CASE("network: strict without reported refusals leaves IP sockets in a namespace with no route to the host" *
          doctest::test_suite(unprivileged_suite)) {
  const auto tcp = listener::tcp();
  auto p = load_hostile(restartable(isolate::limits::strict().report_refusals(false)));
  const auto report = p.transport().limits_in_force();
  const bool namespaced = std::any_of(report.begin(), report.end(), [](const auto& e) {
    return e.limit == "network" && contains(e.mechanism, "network namespace");
  });
  if (!namespaced) return;  // no network namespace here: seccomp refuses every socket (the seccomp_only case)
  CHECK(p->make_socket(AF_INET) == 0);
  CHECK(p->make_socket(AF_INET6) == 0);
  CHECK(p->connect_tcp(tcp.port()) == ENETUNREACH);  // its loopback is down, and the host's is not its
  CHECK(p->make_socket(AF_UNIX) == EACCES);
}

TEST_CASE("network: seccomp_only refuses socket() for every family" * doctest::test_suite(unprivileged_suite)) {
  const auto tcp = listener::tcp();
  auto p = load_hostile(
      restartable(isolate::limits::strict().network(isolate::limits::network_isolation::seccomp_only)));
  for (const int family : {AF_INET, AF_INET6, AF_UNIX, AF_NETLINK, AF_PACKET}) {
    CAPTURE(family);
    CHECK(p->make_socket(family) == EACCES);
  }
  CHECK(p->connect_tcp(tcp.port()) == EACCES);
  crashes_and_comes_back(p);
  CHECK(p->make_socket(AF_INET) == EACCES);
}

TEST_CASE("filesystem: strict reads and writes only what the policy lists" *
          doctest::test_suite(unprivileged_suite)) {
  // World-writable and world-readable, so that only the sandbox can refuse.
  const temp_dir outside(0777), writable(0777), readable(0755);
  write_text(outside / "secret", "s3cret", 0666);
  write_text(readable / "granted", "hello", 0644);
  write_text(readable / "sibling", "not granted", 0644);
  auto p = load_hostile(
      restartable(isolate::limits::strict().writable(writable.path()).read_only(readable / "granted")));

  // Outside the allow-list: neither read nor written, whatever the file's mode says.
  CHECK(p->open_path("/etc/passwd", O_RDONLY) == EACCES);
  CHECK(p->open_path("/etc/shadow", O_RDONLY) == EACCES);
  CHECK(p->open_path((outside / "secret").string(), O_RDONLY) == EACCES);
  CHECK(p->open_path((outside / "secret").string(), O_WRONLY) == EACCES);
  CHECK(p->write_file((outside / "new").string(), "x") == EACCES);
  CHECK(!fs::exists(outside / "new"));
  CHECK(p->write_file("/tmp/isolate-limits-escape", "x") == EACCES);
  CHECK(!fs::exists("/tmp/isolate-limits-escape"));

  // A read-only file: read, not written; its neighbours are not granted.
  CHECK(p->read_file((readable / "granted").string()) == "hello");
  CHECK(p->write_file((readable / "granted").string(), "changed") == EACCES);
  CHECK(p->open_path((readable / "sibling").string(), O_RDONLY) == EACCES);
  CHECK(fs::file_size(readable / "granted") == 5);

  // A writable directory: created, written, read back, by the host too.
  CHECK(p->write_file((writable / "made-by-plugin").string(), "written") == 0);
  CHECK(first_line_of(writable / "made-by-plugin") == "written");
  CHECK(p->read_file((writable / "made-by-plugin").string()) == "written");

  crashes_and_comes_back(p);
  CHECK(p->open_path("/etc/passwd", O_RDONLY) == EACCES);
  CHECK(p->write_file((writable / "after-restart").string(), "again") == 0);
}

TEST_CASE("filesystem: strict refuses changes to a file's mode, times and owner, which Landlock does not cover" *
          doctest::test_suite(unprivileged_suite)) {
  // A private file of the worker's user outside (nobody, for a root host):
  // changing its mode is that user's right, so only the sandbox can refuse.
  const temp_dir outside(0777);
  const auto key = outside / "key";
  write_text(key, "private", 0600);
  if (::geteuid() == 0) REQUIRE(::chown(key.c_str(), 65534, 65534) == 0);
  const auto mode_of = [&] {
    struct stat st {};
    REQUIRE(::stat(key.c_str(), &st) == 0);
    return st.st_mode & 07777;
  };
  {
    // Under standard (no filesystem policy) the change goes through: the user may.
    auto p = load_hostile(isolate::limits::standard());
    CHECK(p->change_metadata(key.string()) == std::vector<int>{0, 0, 0});
    CHECK(mode_of() == 0666);
    REQUIRE(::chmod(key.c_str(), 0600) == 0);
  }
  auto p = load_hostile(restartable(isolate::limits::strict()));
  CHECK(p->change_metadata(key.string()) == std::vector<int>{EPERM, EPERM, EPERM});
  CHECK(mode_of() == 0600);
  crashes_and_comes_back(p);
  CHECK(p->change_metadata(key.string()) == std::vector<int>{EPERM, EPERM, EPERM});
}

TEST_CASE("file size: a write past file_size_mb stops the plugin with limit_exceeded naming it" *
          doctest::test_suite(unprivileged_suite)) {
  const temp_dir writable(0777);
  auto p = load_hostile(restartable(isolate::limits::strict().writable(writable.path()).file_size_mb(1)));
  CHECK(p->write_file((writable / "small").string(), std::string(1000, 'a')) == 0);
  const auto e = failure_of([&] { p->write_file((writable / "large").string(), std::string(2 << 20, 'b')); });
  CHECK(e.code() == isolate::errc::limit_exceeded);
  CHECK_MESSAGE(contains(e.what(), "file size limit of 1 MiB"), std::string(e.what()));
  CHECK(p->add(1, 1) == 2);
}

TEST_CASE("maximum: the plugin computes, and cannot write, connect or start a process" *
          doctest::test_suite(unprivileged_suite)) {
  const temp_dir writable(0777);
  auto p = load_hostile(restartable(isolate::limits::maximum().writable(writable.path())));
  CHECK(p->add(2, 3) == 5);
  CHECK(p->allocate_mib(32) == 32);
  CHECK(p->own_pid() == 2);
  // seccomp's allow-list: open for reading only, even where Landlock would allow writing.
  CHECK(p->open_path((writable / "file").string(), O_WRONLY | O_CREAT) == EPERM);
  CHECK(p->write_file((writable / "file").string(), "x") == EPERM);
  CHECK(!fs::exists(writable / "file"));
  CHECK(p->open_path("/etc/passwd", O_RDONLY) == EACCES);  // Landlock: libraries only
  // Refused as every socket is in a network namespace (reported: EACCES), or by the allow-list (EPERM).
  CHECK(p->make_socket(AF_INET) == (isolate::detail::sandbox::seccomp_notify_available() ? EACCES : EPERM));
  CHECK(p->make_socket(AF_UNIX) == EACCES);
  CHECK(p->fork_bomb(10) == std::vector<int>{0, EAGAIN});
  CHECK(p->raise_capabilities() == EPERM);
  crashes_and_comes_back(p);
  CHECK(p->allocate_mib(32) == 32);
}

TEST_CASE("unprivileged host: the cases above hold with the host as nobody") { run_unprivileged_suite(); }
