// isolate::sandbox: a function of this program run in a fresh sandboxed
// process, each way it can end: a value, an exception, a crash, a loop
// (timeout), memory past its cap, the network and the filesystem refused
// under strict, and a thousand runs that leave nothing behind.
#define DOCTEST_CONFIG_IMPLEMENT
#include <isolate/sandbox.hpp>

#include <asio/use_future.hpp>

#include "../reliability/host_footprint.hpp"
#include "../support/failure.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <thread>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer's report at a run's memory cap needs room (as a worker's does: worker.hpp).
extern "C" void __asan_on_error() { ::isolate::detail::sandbox::room_for_sanitizer_report(); }
#endif

namespace {

int add(int a, int b) { return a + b; }

std::map<std::string, int> count_words(const std::string& text) {
  std::map<std::string, int> counts;
  std::string word;
  for (char c : text + " ") {
    if (c == ' ') {
      if (!word.empty()) ++counts[word];
      word.clear();
    } else {
      word += c;
    }
  }
  return counts;
}

int refuse(std::string why) { throw std::invalid_argument("refused: " + why); }

int crash() {
  ::raise(SIGSEGV);
  return 0;
}

int spin() {
  for (;;) asm volatile("");
}

std::size_t allocate(std::size_t mib) {
  std::vector<char> block(mib << 20, 1);
  return block.size();
}

// 0 if it reached the port, else the errno of socket() or connect().
int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return errno;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int result = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0 ? 0 : errno;
  ::close(fd);
  return result;
}

// 0 if it could open the file so, else errno.
int open_file(std::string path, bool write) {
  const int fd = ::open(path.c_str(), write ? (O_WRONLY | O_CREAT | O_TRUNC) : O_RDONLY, 0600);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

// Burns this much CPU time (not wall time: a busy machine shares its cores).
double burn_cpu(int milliseconds) {
  auto used = [] {
    timespec t{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return std::chrono::seconds(t.tv_sec) + std::chrono::nanoseconds(t.tv_nsec);
  };
  const auto end = used() + std::chrono::milliseconds(milliseconds);
  double x = 1;
  while (used() < end) x = x * 1.0000001 + 1e-9;
  return x;
}

std::size_t touch(std::size_t mib) {
  std::vector<char> block(mib << 20);
  for (std::size_t i = 0; i < block.size(); i += 4096) block[i] = 1;
  return block.size();
}

std::vector<std::uint8_t> reversed(std::vector<std::uint8_t> bytes) {
  std::reverse(bytes.begin(), bytes.end());
  return bytes;
}

std::error_code code_of(const std::function<void()>& run) { return isolate_test::failure_of(run).code(); }

// Processes whose parent is `pid`.
int children_of(pid_t pid) {
  std::ifstream children("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  int count = 0;
  for (int child = 0; children >> child;) ++count;
  return count;
}

}  // namespace

TEST_CASE("a sandboxed function returns its value, under each preset") {
  isolate::sandbox minimal{isolate::limits::minimal()};
  CHECK(minimal.run(add, 2, 3) == 5);
  isolate::sandbox strict{isolate::limits::strict()};
  CHECK(strict.run(add, 20, 22) == 42);
  const auto counts = strict.run(count_words, std::string("a b a c a"));
  CHECK(counts == std::map<std::string, int>{{"a", 3}, {"b", 1}, {"c", 1}});
  isolate::sandbox maximum{isolate::limits::maximum()};
  CHECK(maximum.run([](int x) { return x * 2; }, 21) == 42);
  const auto report = maximum.last_report();
  CHECK(report.ending == "returned");
  CHECK_FALSE(report.error);
  CHECK(report.violations.empty());
  CHECK(report.wall > 0us);
  CHECK_FALSE(report.limits_in_force.empty());
  for (const auto& limit : report.limits_in_force) CHECK_MESSAGE(limit.in_force, limit.limit << ": " << limit.mechanism);
  MESSAGE(fmt::format("{}", report));
}

// A callable object whose state crosses: Cereal serializes it.
struct scaled_sum {
  int factor = 1;
  int operator()(int a, int b) const { return factor * (a + b); }
  template <class Archive>
  void serialize(Archive& ar) {
    ar(factor);
  }
};

TEST_CASE("a callable object Cereal can serialize runs with its state") {
  isolate::sandbox sb{isolate::limits::strict()};
  CHECK(sb.run(scaled_sum{10}, 2, 3) == 50);
  CHECK(sb.async_run(scaled_sum{3}, 1, 1, asio::use_future).get() == 6);
}

TEST_CASE("what a sandboxed function throws arrives with its type and message") {
  isolate::sandbox sb{isolate::limits::strict()};
  CHECK_THROWS_WITH_AS(sb.run(refuse, std::string("not today")), "refused: not today", std::invalid_argument);
  const auto report = sb.last_report();
  CHECK(report.ending == "threw std::invalid_argument");
  CHECK(report.error == isolate::errc::remote_exception);
  CHECK(report.violations.empty());
}

TEST_CASE("a sandboxed function that crashes fails with plugin_crashed, recorded as a crash") {
  isolate::sandbox sb{isolate::limits::strict()};
  const auto e = isolate_test::failure_of([&] { sb.run(crash); });
  CHECK(e.code() == isolate::errc::plugin_crashed);
  CHECK(std::string(e.what()).find("SIGSEGV") != std::string::npos);
  const auto report = sb.last_report();
  REQUIRE(report.violations.size() == 1);
  CHECK(report.violations[0].kind == isolate::violation_kind::crash);
  CHECK(sb.run(add, 1, 1) == 2);  // the next run is a fresh process
  // Under the allow-list too (a process may signal itself only: raise() must reach it).
  isolate::sandbox maximum{isolate::limits::maximum()};
  CHECK(code_of([&] { maximum.run(crash); }) == isolate::errc::plugin_crashed);
  CHECK(maximum.last_report().ending == "killed by signal 11 (SIGSEGV)");
}

TEST_CASE("a sandboxed function that loops forever is killed at its timeout") {
  isolate::sandbox sb{isolate::limits::strict(), {.timeout = 300ms}};
  const auto started = std::chrono::steady_clock::now();
  CHECK(code_of([&] { sb.run(spin); }) == isolate::errc::timeout);
  CHECK(std::chrono::steady_clock::now() - started >= 300ms);
  const auto report = sb.last_report();
  REQUIRE(report.violations.size() == 1);
  CHECK(report.violations[0].kind == isolate::violation_kind::timeout);
  CHECK(sb.run(add, 2, 2) == 4);
}

TEST_CASE("a sandboxed function past its memory cap fails with limit_exceeded") {
  isolate::sandbox sb{isolate::limits::strict().memory_mb(64)};
  CHECK(sb.run(allocate, std::size_t{16}) == (std::size_t{16} << 20));
  const auto e = isolate_test::failure_of([&] { sb.run(allocate, std::size_t{256}); });
  CHECK(e.code() == isolate::errc::limit_exceeded);
  CHECK(std::string(e.what()).find("memory limit of 64 MiB") != std::string::npos);
  const auto report = sb.last_report();
  REQUIRE(report.violations.size() == 1);
  CHECK(report.violations[0].kind == isolate::violation_kind::resource);
}

TEST_CASE("under strict, a sandboxed function reaches neither the network nor files outside its allow-list") {
  // A port the host listens on; the fork server started before it, so only the network could reach it.
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  REQUIRE(listener >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(listener, 4) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  const int port = ntohs(address.sin_port);

  const auto directory = std::filesystem::temp_directory_path() / ("isolate-functions-" + std::to_string(::getpid()));
  std::filesystem::create_directories(directory);
  const auto secret = directory / "secret";
  std::ofstream(secret) << "host data";

  isolate::sandbox open{isolate::limits::minimal()};
  CHECK(open.run(connect_to, port) == 0);  // the control: the same function reaches both without limits
  CHECK(open.run(open_file, secret.string(), false) == 0);
  const int accepted = ::accept(listener, nullptr, nullptr);
  CHECK(accepted >= 0);
  if (accepted >= 0) ::close(accepted);

  isolate::sandbox strict{isolate::limits::strict()};
  CHECK(strict.run(connect_to, port) != 0);
  CHECK(::accept(listener, nullptr, nullptr) < 0);  // nothing came
  // The refusal is recorded as a violation of the run (where the kernel has seccomp user notification).
  if (isolate::detail::sandbox::seccomp_notify_available()) {
    const auto report = strict.last_report();
    REQUIRE(report.violations.size() == 1);
    CHECK(report.violations[0].kind == isolate::violation_kind::network);
    CHECK(report.violations[0].details.find("socket(AF_INET") == 0);
    CHECK(report.violations[0].action == "refused (EACCES)");
    MESSAGE(fmt::format("{}", report));
  }
  CHECK(strict.run(open_file, secret.string(), false) == EACCES);
  CHECK(strict.run(open_file, (directory / "written").string(), true) == EACCES);
  CHECK_FALSE(std::filesystem::exists(directory / "written"));
  // What it was allowed, it has.
  isolate::sandbox allowed{isolate::limits::strict().read_only(directory)};
  CHECK(allowed.run(open_file, secret.string(), false) == 0);
  ::close(listener);
  std::filesystem::remove_all(directory);
}

TEST_CASE("large arguments and results cross whole; a result over max_result_bytes is refused") {
  std::vector<std::uint8_t> bytes(8 << 20);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(i * 7);
  isolate::sandbox sb{isolate::limits::strict()};
  const auto back = sb.run(reversed, bytes);
  REQUIRE(back.size() == bytes.size());
  CHECK(std::equal(back.begin(), back.end(), bytes.rbegin()));
  isolate::sandbox bounded{isolate::limits::strict(), {.max_result_bytes = 1 << 20}};
  const auto e = isolate_test::failure_of([&] { bounded.run(reversed, bytes); });
  CHECK(e.code() == isolate::errc::protocol_error);
  CHECK(bounded.last_report().violations.size() == 1);
  CHECK(bounded.run(add, 1, 2) == 3);
}

TEST_CASE("a run's report gives its CPU time and peak memory") {
  isolate::sandbox sb{isolate::limits::strict()};
  (void)sb.run(burn_cpu, 50);
  auto report = sb.last_report();
  CHECK(report.cpu_user + report.cpu_system >= 50ms);
  CHECK(report.wall >= 50ms);
  CHECK(sb.run(touch, std::size_t{64}) == (std::size_t{64} << 20));
  report = sb.last_report();
  CHECK(report.peak_memory_bytes >= (std::uint64_t{64} << 20));
  MESSAGE(fmt::format("{}", report));
}

TEST_CASE("a warm pool keeps runs started and under their limits, so a run costs no process start") {
  isolate::sandbox sb{isolate::limits::strict(), {.warm = 2}};
  CHECK(sb.run(add, 1, 2) == 3);
  auto report = sb.last_report();
  CHECK(report.warm);
  CHECK_FALSE(report.limits_in_force.empty());
  // Each warm run serves one call: a crash leaves the next one untouched.
  CHECK(code_of([&] { sb.run(crash); }) == isolate::errc::plugin_crashed);
  for (int i = 0; i < 20; ++i) CHECK(sb.run(add, i, i) == 2 * i);
  isolate::sandbox cold{isolate::limits::strict()};
  CHECK(cold.run(add, 1, 2) == 3);
  CHECK_FALSE(cold.last_report().warm);
}

TEST_CASE("a function from a library loaded after the fork server started is refused, not run") {
  // As nobody (the case below), from the copy made where nobody may read it.
  const char* copy = std::getenv("ISOLATE_TEST_SANDBOX_PROBE_COPY");
  void* library = ::dlopen(copy != nullptr ? copy : ISOLATE_TEST_SANDBOX_PROBE, RTLD_NOW | RTLD_LOCAL);
  REQUIRE(library != nullptr);
  using probe = long (*)(int, int);
  const auto late = reinterpret_cast<probe>(::dlsym(library, "isolate_sandbox_probe"));
  REQUIRE((late != nullptr));
  isolate::sandbox sb{isolate::limits::strict()};
  const auto e = isolate_test::failure_of([&] { sb.run(late, 1, 1); });
  CHECK(e.code() == isolate::errc::unsupported);
  CHECK(std::string(e.what()).find("start_fork_server") != std::string::npos);
  ::dlclose(library);
}

TEST_CASE("async_run completes through any Asio completion token, with the value or the error") {
  isolate::sandbox sb{isolate::limits::strict(), {.timeout = 5s}};
  auto sum = sb.async_run(add, 40, 2, asio::use_future);
  auto failed = sb.async_run(refuse, std::string("async"), asio::use_future);
  CHECK(sum.get() == 42);
  CHECK_THROWS_WITH_AS(failed.get(), "refused: async", std::invalid_argument);

  std::promise<std::pair<std::exception_ptr, int>> called;
  sb.async_run(crash, [&](std::exception_ptr e, int value) { called.set_value({e, value}); });
  const auto [e, value] = called.get_future().get();
  REQUIRE(e);
  CHECK(code_of([&] { std::rethrow_exception(e); }) == isolate::errc::plugin_crashed);
  CHECK(value == 0);
}

TEST_CASE("destroying a sandbox ends its runs in flight: their callers get plugin_closed") {
  std::future<int> spinning;
  {
    isolate::sandbox sb{isolate::limits::strict()};
    spinning = sb.async_run(spin, asio::use_future);
    // Once the run's process is there (nothing tells the host sooner), the sandbox goes.
    const pid_t server = isolate::detail::sandbox::fork_server::instance().pid();
    for (int tries = 0; children_of(server) == 0 && tries < 5000; ++tries) std::this_thread::sleep_for(1ms);
    CHECK(children_of(server) == 1);
  }
  CHECK(code_of([&] { spinning.get(); }) == isolate::errc::plugin_closed);
}

TEST_CASE("a thousand runs in a row leave no process, descriptor or memfd behind") {
  const long runs = reliability_test::sanitized ? 200 : 1000;
  isolate::sandbox sb{isolate::limits::strict()};
  CHECK(sb.run(add, 0, 0) == 0);
  const auto before = reliability_test::host_footprint::now();
  const auto started = std::chrono::steady_clock::now();
  long sum = 0;
  for (long i = 0; i < runs; ++i) sum += sb.run(add, static_cast<int>(i), 1);
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  CHECK(sum == runs * (runs - 1) / 2 + runs);
  const auto after = reliability_test::host_footprint::now();
  MESSAGE(runs << " runs in " << seconds << " s (" << seconds * 1e6 / static_cast<double>(runs)
               << " us each)\nbefore: " << before << "\nafter: " << after);
  CHECK(after.fds == before.fds);
  CHECK(after.memfds == before.memfds);
  CHECK(after.threads == before.threads);
  CHECK(after.children == before.children);
  // The fork server's children end with their runs (the last may still be going away).
  const pid_t server = isolate::detail::sandbox::fork_server::instance().pid();
  for (int tries = 0; children_of(server) > 0 && tries < 1000; ++tries) std::this_thread::sleep_for(1ms);
  CHECK(children_of(server) == 0);
}

TEST_CASE("unprivileged host: the cases above hold with the host as nobody") {
  if (::geteuid() != 0) {
    MESSAGE("the host is uid " << ::geteuid() << ", not root: every case already ran unprivileged");
    return;
  }
  // This program again, as nobody, from a copy nobody may run.
  const auto directory = std::filesystem::temp_directory_path() / ("isolate-nobody-" + std::to_string(::getpid()));
  std::filesystem::create_directories(directory);
  std::filesystem::permissions(directory, std::filesystem::perms(0755));
  // This program and the library it loads late, copied where nobody may read
  // them (a build tree may be closed to nobody).
  const auto copy = directory / "sandboxed_function_test";
  std::filesystem::copy_file("/proc/self/exe", copy, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::permissions(copy, std::filesystem::perms(0755));
  const auto probe = directory / "probe.so";
  std::filesystem::copy_file(ISOLATE_TEST_SANDBOX_PROBE, probe, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::permissions(probe, std::filesystem::perms(0755));
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    constexpr unsigned nobody = 65534;
    if (::setgroups(0, nullptr) != 0 || ::setresgid(nobody, nobody, nobody) != 0 ||
        ::setresuid(nobody, nobody, nobody) != 0 || ::chdir(directory.c_str()) != 0 ||
        ::setenv("ISOLATE_TEST_SANDBOX_PROBE_COPY", probe.c_str(), 1) != 0) {
      ::_exit(90);
    }
    ::execl(copy.c_str(), copy.c_str(), "--test-case-exclude=unprivileged*,a thousand*", "--no-intro=true",
            static_cast<char*>(nullptr));
    ::_exit(91);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  std::filesystem::remove_all(directory);
  CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), "the cases failed with the host as nobody");
}

int main(int argc, char** argv) {
  isolate::sandbox::start_fork_server();
  doctest::Context context(argc, argv);
  return context.run();
}
