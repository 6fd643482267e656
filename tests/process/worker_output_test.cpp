// A process plugin's stdout and stderr captured line by line for the host
// (process::options::on_output), through real workers started each way a
// worker can be: unsandboxed (`minimal`, posix_spawn), sandboxed (a clone
// into namespaces), and a best-effort sandbox without user namespaces
// (posix_spawn again, with the sandbox's surroundings).
#include "isolate/transport/process.hpp"

#include <doctest/doctest.h>

#include <ostream>  // doctest prints std::error_code through it

#include "chatty.hpp"

#include "../support/failure.hpp"

#include <isolate/limits.hpp>
#include <isolate/plugin_library.hpp>

#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#define ISOLATE_TEST_PRESETS isolate::limits::minimal, isolate::limits::strict
#define ISOLATE_TEST_EVERY_PRESET \
  isolate::limits::minimal, isolate::limits::standard, isolate::limits::strict, isolate::limits::maximum

using namespace std::chrono_literals;
using isolate::errc;
using isolate::output_line;
using isolate::output_stream;
using isolate_test::failure_of;
using process_test::chatty;

namespace {

constexpr auto patience = 30s;

struct line {
  std::string plugin;
  output_stream stream;
  std::string text;
  bool cut;
};

// What a plugin's on_output received, waited for with a bound.
struct received {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<line> lines;

  std::function<void(const output_line&)> callback() {
    return [this](const output_line& got) {
      std::lock_guard lock(mutex);
      lines.push_back({std::string(got.plugin), got.stream, std::string(got.text), got.cut});
      cv.notify_all();
    };
  }

  // The texts of `stream`, once `count` of them have arrived (or after `patience`).
  std::vector<std::string> texts(output_stream stream, std::size_t count) {
    std::unique_lock lock(mutex);
    std::vector<std::string> found;
    cv.wait_for(lock, patience, [&] {
      found.clear();
      for (const auto& l : lines) {
        if (l.stream == stream) found.push_back(l.text);
      }
      return found.size() >= count;
    });
    return found;
  }

  std::vector<line> all() {
    std::lock_guard lock(mutex);
    return lines;
  }
};

template <class Preset>
isolate::process::options options_for(received& got) {
  isolate::process::options options;
  options.worker = ISOLATE_TEST_WORKER;
  options.limits = Preset();
  options.load_timeout = 30s;  // a sanitized worker
  options.on_output = got.callback();
  return options;
}

isolate::plugin<chatty, isolate::process> load(const isolate::process::options& options) {
  return isolate::load<chatty, isolate::process>(ISOLATE_TEST_CHATTY_PLUGIN, options);
}

std::vector<std::string> numbered(int fd, int from, int to) {
  std::vector<std::string> lines;
  for (int i = from; i < to; ++i) lines.push_back(std::to_string(fd) + " " + std::to_string(i));
  return lines;
}

std::vector<std::string> joined(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

#if defined(__SANITIZE_THREAD__)
constexpr bool under_tsan = true;
#else
constexpr bool under_tsan = false;
#endif

// Refuses user namespaces to this process and its children, as a machine
// with user.max_user_namespaces = 0 would (as tests/limits does: clone3
// fails with ENOSYS, so that glibc falls back to clone, whose flags seccomp
// can read).
bool refuse_user_namespaces() {
  scmp_filter_ctx filter = seccomp_init(SCMP_ACT_ALLOW);
  if (filter == nullptr) return false;
  const scmp_arg_cmp new_user{0, SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER};
  int rc = seccomp_rule_add_array(filter, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1, &new_user);
  if (rc == 0) rc = seccomp_rule_add_array(filter, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1, &new_user);
  if (rc == 0) rc = seccomp_rule_add(filter, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (rc == 0) rc = seccomp_load(filter);
  seccomp_release(filter);
  return rc == 0;
}

// Runs `body` in a forked child; its exit status, or -1 if it did not end within `patience`.
template <class Body>
int status_in_child(Body&& body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int status = 1;
    try {
      status = body();
    } catch (...) {
    }
    std::_Exit(status);
  }
  const int watch = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  REQUIRE(watch >= 0);
  pollfd ended{watch, POLLIN, 0};
  int ready = 0;
  do ready = ::poll(&ended, 1, static_cast<int>(std::chrono::milliseconds(patience).count()));
  while (ready < 0 && errno == EINTR);
  if (ready != 1) ::kill(pid, SIGKILL);
  ::close(watch);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return ready == 1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE_TEMPLATE("a plugin's stdout and stderr arrive line by line, in order, with its name", Preset,
                   ISOLATE_TEST_EVERY_PRESET) {
  received got;
  {
    auto plugin = load(options_for<Preset>(got));
    plugin->number_lines(1, 3);
    plugin->number_lines(2, 500);  // stderr: unbuffered, a write per line
    plugin->number_lines(1, 500);  // stdout: line-buffered in a captured worker
    CHECK(plugin->add(2, 3) == 5);
    CHECK(got.texts(output_stream::err, 500) == numbered(2, 0, 500));
    CHECK(got.texts(output_stream::out, 503) == joined(numbered(1, 0, 3), numbered(1, 0, 500)));
  }
  const auto name = std::filesystem::path(ISOLATE_TEST_CHATTY_PLUGIN).stem().string();
  for (const auto& l : got.all()) {
    CHECK(l.plugin == name);
    CHECK_FALSE(l.cut);
  }
}

TEST_CASE_TEMPLATE("a plugin's name in its output can be chosen", Preset, ISOLATE_TEST_PRESETS) {
  received got;
  auto options = options_for<Preset>(got);
  options.name = "chatty";
  auto plugin = load(options);
  plugin->write_raw(2, "hello\n");
  REQUIRE(got.texts(output_stream::err, 1) == std::vector<std::string>{"hello"});
  CHECK(got.all()[0].plugin == "chatty");
}

TEST_CASE_TEMPLATE("what a plugin wrote just before it crashed arrives, an unterminated last line too", Preset,
                   ISOLATE_TEST_PRESETS) {
  received got;
  auto plugin = load(options_for<Preset>(got));
  plugin->number_lines(2, 100);
  // Stdout is line-buffered: its complete line was written before abort();
  // stderr is unbuffered: its unterminated line too.
  CHECK(failure_of([&] { plugin->print_then_abort("the last words\n", "no newline before the crash"); }).code() ==
        errc::plugin_crashed);
  CHECK(got.texts(output_stream::out, 1) == std::vector<std::string>{"the last words"});
  CHECK(got.texts(output_stream::err, 101) == joined(numbered(2, 0, 100), {"no newline before the crash"}));
}

TEST_CASE_TEMPLATE("an unterminated last line arrives when the plugin is unloaded, before unload returns", Preset,
                   ISOLATE_TEST_PRESETS) {
  received got;
  {
    auto options = options_for<Preset>(got);
    // A slow logger: unload must wait for it to have seen the last line too.
    options.on_output = [record = got.callback()](const output_line& l) {
      if (l.text == "complete") std::this_thread::sleep_for(200ms);
      record(l);
    };
    auto plugin = load(options);
    plugin->write_raw(1, "complete\nunterminated");
  }
  const auto lines = got.all();  // no waiting: unload waits for the worker's last lines
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].text == "complete");
  CHECK(lines[1].text == "unterminated");
}

TEST_CASE_TEMPLATE("a line longer than max_output_line is cut at the cap, in marked pieces", Preset,
                   ISOLATE_TEST_PRESETS) {
  received got;
  {
    auto plugin = load(options_for<Preset>(got));  // the default cap: 64 KiB
    std::string long_line;
    for (int i = 0; long_line.size() < 150'000; ++i) long_line += std::to_string(i % 10);
    plugin->write_raw(2, long_line + "\nafter\n" + std::string(65536, 'y') + "\n");
    const auto texts = got.texts(output_stream::err, 5);
    REQUIRE(texts.size() == 5);
    CHECK(texts[0] == long_line.substr(0, 65536));
    CHECK(texts[1] == long_line.substr(65536, 65536));
    CHECK(texts[2] == long_line.substr(131072));
    CHECK(texts[3] == "after");
    CHECK(texts[4] == std::string(65536, 'y'));  // exactly the cap: whole
    const auto lines = got.all();
    CHECK(lines[0].cut);
    CHECK(lines[1].cut);
    CHECK_FALSE(lines[2].cut);
    CHECK_FALSE(lines[4].cut);
  }
  received small;
  auto options = options_for<Preset>(small);
  options.max_output_line = 10;
  auto plugin = load(options);
  plugin->write_raw(1, "0123456789abcdefghijklmn\n");
  CHECK(small.texts(output_stream::out, 3) == std::vector<std::string>{"0123456789", "abcdefghij", "klmn"});
}

TEST_CASE_TEMPLATE("output keeps flowing after a restart, the new worker's after its predecessor's", Preset,
                   ISOLATE_TEST_PRESETS) {
  received got;
  auto options = options_for<Preset>(got);
  options.restart = isolate::restart_policy::crash(2, 0ms);
  // A slow logger: the restarted worker writes while it still has its predecessor's last lines to see.
  options.on_output = [record = got.callback()](const output_line& l) {
    if (l.text == "before the crash") std::this_thread::sleep_for(200ms);
    record(l);
  };
  auto plugin = load(options);
  const pid_t first = plugin.transport().pid();
  plugin->number_lines(1, 10);
  CHECK(failure_of([&] { plugin->print_then_abort("before the crash\n", "crashing"); }).code() == errc::plugin_crashed);
  plugin->number_lines(1, 10);  // a new worker, with new pipes
  CHECK(plugin.transport().restarts() == 1);
  CHECK(plugin.transport().pid() != first);
  plugin->number_lines(2, 3);
  CHECK(got.texts(output_stream::out, 21) ==
        joined(joined(numbered(1, 0, 10), {"before the crash"}), numbered(1, 0, 10)));
  CHECK(got.texts(output_stream::err, 4) == joined({"crashing"}, numbered(2, 0, 3)));
}

TEST_CASE("a worker that writes more than a pipe holds while it loads is read meanwhile, restarted too") {
  // 4000 lines of 100 bytes: six times what a pipe holds. Unread, the worker
  // would block in write() and never finish loading.
  REQUIRE(::setenv(process_test::load_lines_variable, "4000", 1) == 0);
  received got;
  {
    auto options = options_for<isolate::limits::minimal>(got);  // minimal: the worker has the host's environment
    options.load_timeout = 10s;
    options.restart = isolate::restart_policy::crash(1, 1ms);
    auto plugin = load(options);
    CHECK(failure_of([&] { plugin->print_then_abort("", ""); }).code() == errc::plugin_crashed);
    CHECK(plugin->add(1, 2) == 3);  // the restarted worker loaded: its output was read while it did
    CHECK(plugin.transport().restarts() == 1);
  }
  ::unsetenv(process_test::load_lines_variable);
  const auto texts = got.texts(output_stream::out, 8000);
  REQUIRE(texts.size() == 8000);
  CHECK(texts[3999] == "load 3999 " + std::string(90, 'x'));
  CHECK(texts[4000] == "load 0 " + std::string(90, 'x'));
}

TEST_CASE_TEMPLATE("a callback that throws loses its line, not the host nor the lines after", Preset,
                   ISOLATE_TEST_PRESETS) {
  received got;
  auto options = options_for<Preset>(got);
  options.on_output = [record = got.callback()](const output_line& l) {
    if (l.text.ends_with("3")) throw std::runtime_error("the host's logger failed");
    record(l);
  };
  auto plugin = load(options);
  plugin->number_lines(2, 20);
  CHECK(plugin->add(40, 2) == 42);
  std::vector<std::string> expected;
  for (const auto& text : numbered(2, 0, 20)) {
    if (!text.ends_with("3")) expected.push_back(text);
  }
  CHECK(got.texts(output_stream::err, 18) == expected);
  plugin->number_lines(1, 2);
  CHECK(got.texts(output_stream::out, 2) == numbered(1, 0, 2));
}

TEST_CASE("captured output overrides limits::output::discard") {
  received got;
  auto options = options_for<isolate::limits::strict>(got);
  options.limits = isolate::limits::strict().worker_output(isolate::limits::output::discard);
  auto plugin = load(options);
  plugin->number_lines(2, 2);
  CHECK(got.texts(output_stream::err, 2) == numbered(2, 0, 2));
}

TEST_CASE("a cap of zero bytes is refused") {
  received got;
  auto options = options_for<isolate::limits::minimal>(got);
  options.max_output_line = 0;
  CHECK(failure_of([&] { load(options); }).code() == errc::unsupported);
}

TEST_CASE("without user namespaces, a best-effort sandbox's worker (spawned outside any) is captured too") {
  if (under_tsan) return;  // TSan does not support starting threads in a child of a threaded fork
  CHECK(status_in_child([] {
          if (!refuse_user_namespaces()) return 2;
          received got;
          auto options = options_for<isolate::limits::strict>(got);
          options.limits = isolate::limits::strict().best_effort();
          auto plugin = load(options);
          bool outside = false;  // the fallback spawn, not the namespaced one
          for (const auto& limit : plugin.transport().limits_in_force()) {
            if (limit.limit == "user") outside = !limit.in_force;
          }
          plugin->number_lines(2, 3);
          plugin->number_lines(1, 2);
          const bool captured = got.texts(output_stream::err, 3) == numbered(2, 0, 3) &&
                                got.texts(output_stream::out, 2) == numbered(1, 0, 2);
          return outside ? (captured ? 0 : 1) : 3;
        }) == 0);
}
