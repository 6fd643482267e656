// What the limits tests share: loading the hostile plugin under a policy,
// looking at workers from the host's side (its /proc), temporary
// directories a worker that is nobody can reach, and running a test suite
// again in a forked child whose host is unprivileged or sandboxed itself.
#ifndef ISOLATE_TESTS_LIMITS_SUPPORT_HPP
#define ISOLATE_TESTS_LIMITS_SUPPORT_HPP

#include "hostile.hpp"

#include <isolate/detail/sandbox/memory_cgroup.hpp>
#include <isolate/limits.hpp>
#include <isolate/plugin_library.hpp>
#include <isolate/transport/process.hpp>

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace limits_test {

namespace fs = std::filesystem;
using hostile_plugin = isolate::plugin<hostile, isolate::process>;

// Set in a child that runs a suite again as an unprivileged host: the
// directory holding the copies of the plugin and the worker it loads.
inline constexpr const char* copies_variable = "ISOLATE_TEST_LIMITS_COPIES";

inline fs::path build_directory_or_copies(const fs::path& built) {
  const char* copies = std::getenv(copies_variable);
  return copies != nullptr ? fs::path(copies) / built.filename() : built;
}
inline fs::path plugin_path() { return build_directory_or_copies(ISOLATE_TEST_HOSTILE_PLUGIN); }
inline fs::path worker_path() { return build_directory_or_copies(ISOLATE_TEST_WORKER); }

// Options with `limits`, the worker named (the copy, for an unprivileged
// host), and time enough for a sanitized worker to start.
inline isolate::process::options options_with(const isolate::limits::policy& limits) {
  isolate::process::options options;
  options.worker = worker_path();
  options.limits = limits;
  options.load_timeout = std::chrono::seconds(30);
  return options;
}

// Options with `limits` and a restart policy: a plugin stopped by a limit comes back.
inline isolate::process::options restartable(const isolate::limits::policy& limits) {
  auto options = options_with(limits);
  options.restart = isolate::restart_policy::crash(2);
  return options;
}

inline hostile_plugin load_hostile(const isolate::process::options& options) {
  return isolate::load<hostile, isolate::process>(plugin_path(), options);
}
inline hostile_plugin load_hostile(const isolate::limits::policy& limits) { return load_hostile(options_with(limits)); }

// The id a sandboxed worker has outside its namespaces: nobody for a root host, else the host's own.
inline unsigned expected_worker_uid() { return ::geteuid() == 0 ? 65534U : ::geteuid(); }

// --- The host's view of processes ------------------------------------------

// A process watched through a pidfd taken now, so that a later wait cannot
// mistake a new process that reused the pid for it.
class pid_watch {
 public:
  explicit pid_watch(int pid) : fd_(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))) {}
  ~pid_watch() {
    if (fd_ >= 0) ::close(fd_);
  }
  pid_watch(const pid_watch&) = delete;
  pid_watch& operator=(const pid_watch&) = delete;

  bool watching() const noexcept { return fd_ >= 0; }
  // True once the process has exited (a zombie counts), within `timeout`.
  bool dies_within(std::chrono::milliseconds timeout) const {
    if (fd_ < 0) return false;
    pollfd p{fd_, POLLIN, 0};
    int ready = 0;
    do ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
    while (ready < 0 && errno == EINTR);
    return ready == 1;
  }

 private:
  int fd_;
};

inline std::string first_line_of(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

// The processes of the host's /proc whose comm is `comm` (one pass: the
// caller has waited for whatever it looks for to be there).
inline std::vector<int> pids_named(const std::string& comm) {
  std::vector<int> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const auto name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (first_line_of(entry.path() / "comm") == comm) found.push_back(std::stoi(name));
  }
  return found;
}

// The line of /proc/<pid>/status that starts with `field`, as the host sees it.
inline std::string host_status_line(int pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(field, 0) == 0) return line;
  }
  return {};
}

// The real uid in a "Uid:" line (real, effective, saved, filesystem).
inline long uid_in(const std::string& line) {
  return line.size() > 4 ? std::strtol(line.c_str() + 4, nullptr, 10) : -1;
}

// A sandboxed worker, as the host sees it: the pid of PID 1 of its
// namespace (link().pid()) and of the worker proper it forked (PID 2).
inline int worker_proper(hostile_plugin& p) {
  const int init = p.transport().link().pid();
  const auto children = first_line_of("/proc/" + std::to_string(init) + "/task/" + std::to_string(init) + "/children");
  return children.empty() ? -1 : std::atoi(children.c_str());
}

// --- What the host is told --------------------------------------------------

inline std::optional<isolate::limits::enforcement> limit_named(const isolate::limits::report& report,
                                                               const std::string& name) {
  for (const auto& entry : report) {
    if (entry.limit == name) return entry;
  }
  return std::nullopt;
}

// The memory cgroups this host made for its workers (sandbox/memory_cgroup.hpp) that exist now.
inline int memory_groups_of_this_host() {
  std::string why;
  const auto parent = isolate::detail::sandbox::find_cgroup_parent({}, why);
  if (!parent) return 0;
  const auto prefix = "isolate-" + std::to_string(::getpid()) + "-";
  int groups = 0;
  for (const auto& entry : fs::directory_iterator(parent->directory)) {
    if (entry.path().filename().string().starts_with(prefix)) ++groups;
  }
  return groups;
}

// --- Files and sockets the worker may or may not reach ---------------------

// A fresh directory under /tmp with `mode` (mkdtemp makes it 0700, which
// nobody could not enter), removed with what it holds.
class temp_dir {
 public:
  explicit temp_dir(mode_t mode = 0755) {
    std::string pattern = (fs::temp_directory_path() / "isolate-limits-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
    REQUIRE(::chmod(path_.c_str(), mode) == 0);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const fs::path& path() const noexcept { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

inline void write_text(const fs::path& file, const std::string& text, mode_t mode = 0644) {
  {
    std::ofstream out(file);
    out << text;
  }
  REQUIRE(::chmod(file.c_str(), mode) == 0);
}

// A listening socket of the host, closed on destruction.
class listener {
 public:
  // TCP on 127.0.0.1, on a port the kernel picks.
  static listener tcp() {
    listener l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(l.fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(l.fd_, 16) == 0);
    socklen_t size = sizeof address;
    REQUIRE(::getsockname(l.fd_, reinterpret_cast<sockaddr*>(&address), &size) == 0);
    l.port_ = ntohs(address.sin_port);
    return l;
  }
  // A pathname unix socket anyone may connect to.
  static listener unix_at(const fs::path& path) {
    listener l(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(path.string().size() < sizeof address.sun_path);
    std::strcpy(address.sun_path, path.c_str());
    REQUIRE(::bind(l.fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::chmod(path.c_str(), 0777) == 0);
    REQUIRE(::listen(l.fd_, 16) == 0);
    return l;
  }
  // An abstract unix socket (no file: Landlock's scope is what keeps a worker from it).
  static listener abstract_named(const std::string& name) {
    listener l(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(name.size() + 1 < sizeof address.sun_path);
    std::memcpy(address.sun_path + 1, name.data(), name.size());
    const auto size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    REQUIRE(::bind(l.fd_, reinterpret_cast<sockaddr*>(&address), size) == 0);
    REQUIRE(::listen(l.fd_, 16) == 0);
    return l;
  }
  listener(listener&& other) noexcept : fd_(std::exchange(other.fd_, -1)), port_(other.port_) {}
  listener& operator=(listener&&) = delete;
  ~listener() {
    if (fd_ >= 0) ::close(fd_);
  }
  int port() const noexcept { return port_; }

 private:
  explicit listener(int fd) : fd_(fd) { REQUIRE(fd_ >= 0); }
  int fd_;
  int port_ = 0;
};

// --- Running checks in a forked child ---------------------------------------

// How long a child running checks may take: a hang fails the test, with
// its own message, before CTest's timeout would.
inline constexpr std::chrono::seconds child_time_limit{120};

// Waits for child `pid` until `limit`, killing it then; returns its exit
// status, 128 + the signal that ended it, or -1 if it had to be killed.
inline int exit_status_of(pid_t pid, std::chrono::seconds limit) {
  const pid_watch watch(pid);
  bool timed_out = false;
  if (watch.watching() && !watch.dies_within(limit)) {
    timed_out = true;
    ::kill(pid, SIGKILL);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    FAIL_CHECK("the child did not finish within " << limit.count() << " s and was killed");
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Counts the failed assertions of this process (a forked child's own count
// starts from its parent's, so compare before and after).
class failure_counter final : public doctest::IReporter {
 public:
  explicit failure_counter(const doctest::ContextOptions&) {}
  static int failures() noexcept { return count_.load(); }

  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override { ++count_; }
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData& data) override {
    if (data.m_failed) ++count_;
  }
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}

 private:
  static inline std::atomic<int> count_{0};
};
REGISTER_LISTENER("limits_test_failure_counter", 1, failure_counter);

// Runs `body` (doctest assertions and all) in a forked child, after
// `prepare` has made the child what it needs (returning false, with why, if
// it cannot); the child's failures are reported from there as usual.
// Returns true when the child prepared and passed. The caller must not be
// running a plugin: only this thread is in the child.
inline bool passes_in_child(const std::function<bool(std::string& why)>& prepare, const std::function<void()>& body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int before = failure_counter::failures();
    int status = 1;
    try {
      std::string why;
      if (!prepare(why)) {
        std::fprintf(stderr, "cannot prepare the child: %s\n", why.c_str());
        std::fflush(nullptr);
        std::_Exit(2);
      }
      body();
      status = failure_counter::failures() == before ? 0 : 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "the child threw: %s\n", e.what());
    } catch (...) {  // a failed REQUIRE, already reported
    }
    std::cout.flush();
    std::fflush(nullptr);
    std::_Exit(status);
  }
  return exit_status_of(pid, child_time_limit) == 0;
}

// --- Running a suite again in a forked child --------------------------------

// Runs the cases of doctest test suite `suite` of this binary in a forked
// child, after `prepare` (which returns false, with `why`, if it cannot
// make the child what the suite needs); the child's cases report as usual
// on stdout. Returns the child's exit status: 0 when every case passed.
// The caller must not be running a plugin: only this thread is in the child.
inline int run_suite_in_child(const char* suite, const std::function<bool(std::string& why)>& prepare) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int status = 3;
    try {
      std::string why;
      if (!prepare(why)) {
        std::fprintf(stderr, "cannot prepare the child for suite %s: %s\n", suite, why.c_str());
        std::fflush(nullptr);
        std::_Exit(2);
      }
      doctest::Context context;
      context.setOption("test-suite", suite);
      context.setOption("no-intro", true);
      status = context.run() == 0 ? 0 : 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "the child for suite %s threw: %s\n", suite, e.what());
    }
    std::cout.flush();
    std::fflush(nullptr);
    std::_Exit(status);
  }
  return exit_status_of(pid, child_time_limit);
}

// The test suite run again with the host as nobody (root hosts only).
inline constexpr const char* unprivileged_suite = "unprivileged host";

// Makes this process nobody (65534), as a daemon started as root does once
// it has set up. Changing uid leaves a process not dumpable, and a host
// that is not dumpable cannot write its worker's id maps (it does not own
// its /proc files): `dumpable` sets it back, as such a daemon must.
inline bool become_nobody(bool dumpable, std::string& why) {
  constexpr unsigned nobody = 65534;
  if (::setgroups(0, nullptr) != 0 || ::setresgid(nobody, nobody, nobody) != 0 ||
      ::setresuid(nobody, nobody, nobody) != 0) {
    why = std::string("cannot become nobody: ") + std::strerror(errno);
    return false;
  }
  if (dumpable && ::prctl(PR_SET_DUMPABLE, 1) != 0) {
    why = std::string("cannot become dumpable again: ") + std::strerror(errno);
    return false;
  }
  return ::geteuid() == nobody || (why = "still not nobody", false);
}

// A copy of the worker alone in `dir` (no isolate-init beside it), for
// options.worker: such a worker is its own PID 1 in a sandbox.
inline fs::path copy_worker_alone(const temp_dir& dir) {
  const auto worker = dir / "isolate-worker";
  fs::copy_file(worker_path(), worker);
  REQUIRE(::chmod(worker.c_str(), 0755) == 0);
  return worker;
}

// Copies of the plugin and its worker in a fresh world-readable directory,
// for a host that is nobody (the build tree may be out of its reach).
class plugin_copies {
 public:
  plugin_copies() {
    // isolate-init too, where it is beside the worker: PID 1 of its sandbox.
    const auto init = worker_path().parent_path() / "isolate-init";
    for (const auto& file : {plugin_path(), worker_path(), init}) {
      if (!fs::exists(file)) continue;
      const auto copy = dir_ / file.filename().string();
      fs::copy_file(file, copy, fs::copy_options::overwrite_existing);
      REQUIRE(::chmod(copy.c_str(), 0755) == 0);
    }
  }
  // In the child: load the copies from now on, from a working directory nobody may enter.
  bool use(std::string& why) const {
    ::setenv(copies_variable, dir_.path().c_str(), 1);
    if (::chdir(dir_.path().c_str()) != 0) return why = "cannot enter the copies' directory", false;
    return true;
  }

 private:
  temp_dir dir_{0755};
};

// Runs this binary's "unprivileged host" suite in a child whose host is
// nobody (65534), loading copies of the plugin and the worker. An
// unprivileged test run has run every case as such a host already.
inline void run_unprivileged_suite() {
  if (::geteuid() != 0) {
    MESSAGE("the host is uid " << ::geteuid() << ", not root: every case of this file already ran unprivileged");
    return;
  }
  const plugin_copies copies;
  const int status = run_suite_in_child(unprivileged_suite, [&](std::string& why) {
    return copies.use(why) && become_nobody(true, why);
  });
  CHECK_MESSAGE(status == 0, "the cases of suite '" << std::string(unprivileged_suite) << "' failed with the host as nobody");
}

}  // namespace limits_test

#endif
