#include "isolate/manager.hpp"

#include "../plugin_library/calculator.hpp"
#include "../process/faulty.hpp"
#include "../support/failure.hpp"
#include "../support/sanitizers.hpp"

#include <asio/use_future.hpp>
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <signal.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using plugin_library_test::calculator;
using process_test::faulty;
using isolate_test::failure_of;

namespace {

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// This process's open descriptors: what each one is, by number.
std::map<std::string, std::string> descriptors() {
  std::map<std::string, std::string> open;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    open[entry.path().filename().string()] = std::filesystem::read_symlink(entry.path(), ec).string();
  }
  return open;
}

std::size_t memfds_in(const std::map<std::string, std::string>& open) {
  std::size_t count = 0;
  for (const auto& [fd, what] : open) count += contains(what, "memfd:") ? 1 : 0;
  return count;
}

// The descriptors in `after` that were not in `before`, for the message.
std::string added(const std::map<std::string, std::string>& before, const std::map<std::string, std::string>& after) {
  std::string text;
  for (const auto& [fd, what] : after) {
    if (!before.contains(fd)) text += fd + " -> " + what + "; ";
  }
  return text;
}

}  // namespace

TEST_CASE("manager: plugins of two interfaces under ids, each at a level read from text") {
  isolate::manager plugins;
  auto in_host = plugins.load<calculator>("calc-in-host", ISOLATE_TEST_CALCULATOR_PLUGIN, isolate::level::parse("in_process"));
  auto threaded = plugins.load<calculator>("calc-thread", ISOLATE_TEST_CALCULATOR_PLUGIN, isolate::level::parse("thread"));
  auto isolated =
      plugins.load<calculator>("calc-process", ISOLATE_TEST_CALCULATOR_PLUGIN, isolate::level::parse("process:standard"));
  auto other = plugins.load<faulty>("faulty", ISOLATE_TEST_FAULTY_PLUGIN, isolate::level::parse("process"));

  for (auto* calc : {&in_host, &threaded, &isolated}) {
    CHECK((*calc)->add(2, 3) == 5);
    CHECK(calc->async(&calculator::add, 4, 5, asio::use_future).get() == 9);
  }
  CHECK(other->add(1, 2) == 3);
  CHECK(other->pid() != ::getpid());
  CHECK(in_host.as<isolate::in_process>() != nullptr);
  CHECK(threaded.as<isolate::thread>() != nullptr);
  CHECK(isolated.as<isolate::process>() != nullptr);
  CHECK(isolated.as<isolate::thread>() == nullptr);

  // Another handle by id, of the right interface.
  CHECK(plugins.get<calculator>("calc-thread")->add(1, 1) == 2);
  CHECK(plugins.is_loaded("faulty"));
  CHECK_FALSE(plugins.is_loaded("nobody"));

  const auto listed = plugins.list();
  REQUIRE(listed.size() == 4);
  std::set<std::string> lines;
  for (const auto& info : listed) {
    CHECK(info.state == isolate::plugin_state::running);
    lines.insert(fmt::format("{}", info));
  }
  CHECK(lines.count(fmt::format("calc-in-host (calculator, in_process, running): {}", ISOLATE_TEST_CALCULATOR_PLUGIN)) == 1);
  CHECK(lines.count(fmt::format("calc-thread (calculator, thread, running): {}", ISOLATE_TEST_CALCULATOR_PLUGIN)) == 1);
  CHECK(lines.count(fmt::format("calc-process (calculator, process:standard, running): {}",
                                ISOLATE_TEST_CALCULATOR_PLUGIN)) == 1);
  CHECK(lines.count(fmt::format("faulty (faulty, process:minimal, running): {}", ISOLATE_TEST_FAULTY_PLUGIN)) == 1);

  // A process plugin's status carries its telemetry; one inside the host has none.
  const auto status = plugins.status("faulty");
  REQUIRE(status.telemetry.has_value());
  CHECK(status.telemetry->calls >= 2);
  CHECK(contains(fmt::format("{}", status), "faulty (faulty, process:minimal, running)"));
  CHECK_FALSE(plugins.status("calc-thread").telemetry.has_value());
}

TEST_CASE("manager: a bad id, file, interface or level is a named error, and leaves the others serving") {
  isolate::manager plugins;
  auto calc = plugins.load<calculator>("calc", ISOLATE_TEST_CALCULATOR_PLUGIN, isolate::level::parse("thread"));

  CHECK(failure_of([&] { plugins.load<calculator>("calc", ISOLATE_TEST_CALCULATOR_PLUGIN); }).code() ==
        isolate::errc::duplicate_plugin);
  for (auto code : {failure_of([&] { plugins.get<calculator>("nobody"); }).code(),
                    failure_of([&] { plugins.unload("nobody"); }).code(),
                    failure_of([&] { plugins.status("nobody"); }).code()}) {
    CHECK(code == isolate::errc::unknown_plugin);
  }
  const auto wrong = failure_of([&] { plugins.get<faulty>("calc"); });
  CHECK(wrong.code() == isolate::errc::wrong_interface);
  CHECK(contains(wrong.what(), "offers calculator, not faulty"));

  for (const char* how : {"in_process", "thread", "process"}) {
    CAPTURE(how);
    const auto level = isolate::level::parse(how);
    // A missing file, a library that is not a plugin, a plugin of another interface.
    CHECK(failure_of([&] { plugins.load<calculator>("x", "/nonexistent/libnothing.so", level); }).code() ==
          isolate::errc::load_failed);
    CHECK(failure_of([&] { plugins.load<calculator>("x", ISOLATE_TEST_NO_ENTRY_LIBRARY, level); }).code() ==
          isolate::errc::load_failed);
    const auto code = failure_of([&] { plugins.load<calculator>("x", ISOLATE_TEST_FAULTY_PLUGIN, level); }).code();
    CHECK((code == isolate::errc::fingerprint_mismatch || code == isolate::errc::load_failed));
    CHECK_FALSE(plugins.is_loaded("x"));  // a failed load frees its id
  }

  CHECK(failure_of([] { isolate::level::parse("sandboxed"); }).code() == isolate::errc::unsupported);
  CHECK(failure_of([] { isolate::level::parse("process:paranoid"); }).code() == isolate::errc::unsupported);
  CHECK(failure_of([] { isolate::level::parse("thread:strict"); }).code() == isolate::errc::unsupported);
  isolate::level in_host_strict{isolate::isolation::in_process, isolate::limits::strict()};
  CHECK(failure_of([&] { plugins.load<calculator>("x", ISOLATE_TEST_CALCULATOR_PLUGIN, in_host_strict); }).code() ==
        isolate::errc::unsupported);

  CHECK(calc->add(20, 22) == 42);
  CHECK(plugins.list().size() == 1);
  // The id is free again once unloaded.
  plugins.unload("calc");
  CHECK(plugins.load<calculator>("calc", ISOLATE_TEST_CALCULATOR_PLUGIN)->add(1, 2) == 3);
}

TEST_CASE("manager: a crashed plugin is listed down, a quarantined one quarantined") {
  isolate::manager plugins;
  auto p = plugins.load<faulty>("faulty", ISOLATE_TEST_FAULTY_PLUGIN);
  CHECK(failure_of([&] { p->segfault(); }).code() == isolate::errc::plugin_crashed);
  CHECK(plugins.list().front().state == isolate::plugin_state::down);

  auto q = plugins.load<faulty>("quarantined", ISOLATE_TEST_FAULTY_PLUGIN);
  q.as<isolate::process>()->transport().quarantine("the test says so");
  CHECK(plugins.status("quarantined").info.state == isolate::plugin_state::quarantined);
  CHECK(failure_of([&] { q->add(1, 1); }).code() == isolate::errc::quarantined);
}

TEST_CASE("manager: a quarantine outlives the unload; the id loads again only once released") {
  isolate::manager plugins;
  auto p = plugins.load<faulty>("faulty", ISOLATE_TEST_FAULTY_PLUGIN);
  plugins.quarantine("faulty", "it misbehaved");
  CHECK(failure_of([&] { p->add(1, 1); }).code() == isolate::errc::quarantined);
  using held = std::vector<std::pair<std::string, std::string>>;
  CHECK(plugins.quarantined() == held{{"faulty", "it misbehaved"}});

  // Unloading does not lift it: the same id is refused, with the reason.
  plugins.unload("faulty");
  const auto refused = failure_of([&] { plugins.load<faulty>("faulty", ISOLATE_TEST_FAULTY_PLUGIN); });
  CHECK(refused.code() == isolate::errc::quarantined);
  CHECK_MESSAGE(contains(refused.what(), "it misbehaved"), refused.what());
  CHECK_FALSE(plugins.is_loaded("faulty"));
  CHECK(plugins.quarantined() == held{{"faulty", "it misbehaved"}});

  // Released, it loads and serves again.
  plugins.release("faulty");
  CHECK(plugins.quarantined().empty());
  CHECK(plugins.load<faulty>("faulty", ISOLATE_TEST_FAULTY_PLUGIN)->add(1, 1) == 2);

  // A loaded plugin released in place serves again, through the handles it had.
  auto again = plugins.get<faulty>("faulty");
  plugins.quarantine("faulty", "again");
  CHECK(plugins.list().front().state == isolate::plugin_state::quarantined);
  plugins.release("faulty");
  CHECK(again->add(2, 2) == 4);

  CHECK(failure_of([&] { plugins.release("nobody"); }).code() == isolate::errc::unknown_plugin);
  CHECK(failure_of([&] { plugins.quarantine("nobody", "x"); }).code() == isolate::errc::unknown_plugin);
  plugins.load<faulty>("in-thread", ISOLATE_TEST_FAULTY_PLUGIN, isolate::level::parse("thread"));
  CHECK(failure_of([&] { plugins.quarantine("in-thread", "x"); }).code() == isolate::errc::unsupported);
}

TEST_CASE("manager: shutdown stops its plugins side by side, within about one grace") {
  // Four workers each stuck in a call (sent before the stop, so read
  // first): each stop waits its grace (2 s), then kills. One after the
  // other that is 8 s; side by side, about 2.
  isolate::manager plugins;
  std::vector<std::future<void>> stuck;
  std::vector<pid_t> pids;
  for (int i = 0; i < 4; ++i) {
    auto p = plugins.load<faulty>(fmt::format("stuck-{}", i), ISOLATE_TEST_FAULTY_PLUGIN);
    pids.push_back(p->pid());
    stuck.push_back(p.async(&faulty::hang, asio::use_future));
  }
  const auto started = std::chrono::steady_clock::now();
  plugins.shutdown();
  const auto took = std::chrono::steady_clock::now() - started;
  MESSAGE("shutdown of 4 stuck plugins: " << std::chrono::duration<double>(took).count() << " s");
  CHECK(took < 6s);
  for (auto& call : stuck) CHECK_THROWS_AS(call.get(), isolate::error);  // failed, not left hanging
  for (const pid_t pid : pids) CHECK_FALSE(process_exists(pid));
}

TEST_CASE("manager: unload stops a process plugin once no handle holds it; shutdown leaves no process, fd or memfd") {
  const auto before = descriptors();
  std::vector<pid_t> pids;
  {
    isolate::manager plugins;
    {
      auto p = plugins.load<faulty>("held", ISOLATE_TEST_FAULTY_PLUGIN);
      const pid_t pid = p->pid();
      plugins.unload("held");
      CHECK_FALSE(plugins.is_loaded("held"));
      CHECK(p->add(1, 1) == 2);  // the handle still serves
      CHECK(process_exists(pid));
      pids.push_back(pid);
    }
    CHECK_FALSE(process_exists(pids.back()));  // the last handle went: stopped and reaped

    // Loads from four threads at once: distinct ids all land, one id only once.
    std::atomic<int> duplicates{0};
    std::vector<std::thread> loaders;
    for (int i = 0; i < 4; ++i) {
      loaders.emplace_back([&, i] {
        plugins.load<faulty>(fmt::format("worker-{}", i), ISOLATE_TEST_FAULTY_PLUGIN);
        try {
          plugins.load<faulty>("contested", ISOLATE_TEST_FAULTY_PLUGIN);
        } catch (const isolate::error& e) {
          if (e.code() == isolate::errc::duplicate_plugin) duplicates.fetch_add(1);
        }
      });
    }
    for (auto& t : loaders) t.join();
    CHECK(duplicates.load() == 3);
    CHECK(plugins.list().size() == 5);
    for (const auto& info : plugins.list()) {
      const pid_t pid = plugins.get<faulty>(info.id)->pid();
      CHECK(process_exists(pid));
      pids.push_back(pid);
    }
    plugins.shutdown();
    CHECK(plugins.list().empty());
    for (std::size_t i = 1; i < pids.size(); ++i) CHECK_FALSE(process_exists(pids[i]));
    // The manager can load again after a shutdown; its destructor unloads that one.
    pids.push_back(plugins.load<faulty>("after", ISOLATE_TEST_FAULTY_PLUGIN)->pid());
  }
  CHECK_FALSE(process_exists(pids.back()));
  const auto after = descriptors();
  CAPTURE(added(before, after));
  CHECK(memfds_in(after) == memfds_in(before));
  // (TSan's runtime opens descriptors of its own along the way.)
  if (!isolate_test::under_tsan) CHECK(after.size() == before.size());
}

TEST_CASE("manager: calls by method name, checked against the interface at run time, under every transport") {
  isolate::manager plugins;
  plugins.load<calculator>("in_process", ISOLATE_TEST_CALCULATOR_PLUGIN, isolate::level::parse("in_process"));
  plugins.load<calculator>("thread", ISOLATE_TEST_CALCULATOR_PLUGIN, isolate::level::parse("thread"));
  plugins.load<calculator>("process", ISOLATE_TEST_CALCULATOR_PLUGIN, isolate::level::parse("process"));
  for (const char* id : {"in_process", "thread", "process"}) {
    CAPTURE(id);
    CHECK(plugins.call<int>(id, "add", 2, 40) == 42);
    CHECK(plugins.call<std::string>(id, "greet", std::string("you")) == plugins.get<calculator>(id)->greet("you"));
    CHECK(plugins.call<std::string>(id, "greet", "literal") == plugins.get<calculator>(id)->greet("literal"));
    CHECK(plugins.async_call<int>(id, "add", 1, 2, asio::use_future).get() == 3);

    const auto unknown = failure_of([&] { plugins.call<int>(id, "multiply", 2, 3); });
    CHECK(unknown.code() == isolate::errc::unknown_method);
    CHECK(contains(unknown.what(), "calculator has no method 'multiply'"));
    const auto arity = failure_of([&] { plugins.call<int>(id, "add", 2); });
    CHECK(arity.code() == isolate::errc::signature_mismatch);
    CHECK(contains(arity.what(), "calculator::add is int(int, int)"));
    CHECK(failure_of([&] { plugins.call<int>(id, "add", 2, 3.5); }).code() == isolate::errc::signature_mismatch);
    CHECK(failure_of([&] { plugins.call<long>(id, "add", 2, 3); }).code() == isolate::errc::signature_mismatch);
    // Through the token too, and for an unknown id.
    auto wrong = plugins.async_call<int>(id, "add", "2", 3, asio::use_future);
    CHECK(failure_of([&] { wrong.get(); }).code() == isolate::errc::signature_mismatch);
  }
  auto nobody = plugins.async_call<int>("nobody", "add", 1, 2, asio::use_future);
  CHECK(failure_of([&] { nobody.get(); }).code() == isolate::errc::unknown_plugin);
  CHECK(failure_of([&] { plugins.call<int>("nobody", "add", 1, 2); }).code() == isolate::errc::unknown_plugin);
}

TEST_CASE("manager: a call by name may have a timeout, under process only") {
  isolate::manager plugins;
  isolate::level level = isolate::level::parse("process");
  plugins.load<faulty>("faulty", ISOLATE_TEST_FAULTY_PLUGIN, level);
  plugins.load<calculator>("thread", ISOLATE_TEST_CALCULATOR_PLUGIN, isolate::level::parse("thread"));
  const auto e = failure_of([&] { plugins.with_timeout(100ms).call<void>("faulty", "hang"); });
  CHECK(e.code() == isolate::errc::timeout);
  CHECK(contains(e.what(), "100 ms"));
  auto late = plugins.with_timeout(100ms).async_call<int>("faulty", "sleep_ms", 30'000, asio::use_future);
  REQUIRE(late.wait_for(20s) == std::future_status::ready);
  CHECK(failure_of([&] { late.get(); }).code() == isolate::errc::timeout);
  CHECK(failure_of([&] { plugins.with_timeout(100ms).call<int>("thread", "add", 1, 2); }).code() ==
        isolate::errc::unsupported);
  CHECK(plugins.call<int>("thread", "add", 1, 2) == 3);  // and without one it goes through
}

TEST_CASE("manager: restart gives a process plugin a fresh worker, and is refused inside the host") {
  isolate::manager plugins;
  auto p = plugins.load<faulty>("faulty", ISOLATE_TEST_FAULTY_PLUGIN);  // no restart policy: restart is the host's call
  const pid_t first = p->pid();
  auto slow = p.async(&faulty::sleep_ms, 30'000, asio::use_future);
  plugins.restart("faulty");
  REQUIRE(slow.wait_for(20s) == std::future_status::ready);
  const auto stopped = failure_of([&] { slow.get(); });  // the old worker's call
  CHECK(stopped.code() == isolate::errc::plugin_closed);
  CHECK(contains(stopped.what(), "the host restarted the plugin"));
  const pid_t second = p->pid();
  CHECK(second != first);
  CHECK_FALSE(process_exists(first));
  CHECK(p->add(2, 2) == 4);
  const auto history = p.as<isolate::process>()->transport().history();
  REQUIRE_FALSE(history.empty());
  CHECK(history.back().action == isolate::recovery_action::restart);
  CHECK(contains(history.back().reason, "restarted by the host"));

  plugins.load<calculator>("thread", ISOLATE_TEST_CALCULATOR_PLUGIN, isolate::level::parse("thread"));
  CHECK(failure_of([&] { plugins.restart("thread"); }).code() == isolate::errc::unsupported);
  CHECK(failure_of([&] { plugins.restart("nobody"); }).code() == isolate::errc::unknown_plugin);
  p.as<isolate::process>()->transport().quarantine("test");
  CHECK(failure_of([&] { plugins.restart("faulty"); }).code() == isolate::errc::quarantined);
}

TEST_CASE("a reload during a crash restart's backoff is not undone by that restart") {
  isolate::process::options options;
  options.restart = isolate::restart_policy::crash(3, 1s);
  auto calc = isolate::load<calculator, isolate::process>(ISOLATE_TEST_CALCULATOR_PLUGIN, options);
  auto& link = calc.transport().link();
  const pid_t crashed = calc.transport().pid();
  REQUIRE(::kill(crashed, SIGKILL) == 0);
  // Bounded waits on the link's own state: the death seen, the restart due.
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (!link.restart_pending() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
  REQUIRE(link.restart_pending());

  calc.transport().reload(ISOLATE_TEST_CALCULATOR_NEXT_PLUGIN);
  const pid_t reloaded = calc.transport().pid();
  CHECK(reloaded != crashed);
  CHECK(calc->greet("ada") == "bonjour, ada");  // served now, not after the backoff

  while (link.restart_pending() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
  REQUIRE_FALSE(link.restart_pending());
  // The restart found the worker replaced: it did not bring back the old file.
  CHECK(calc->greet("ada") == "bonjour, ada");
  CHECK(calc.transport().pid() == reloaded);
  CHECK(link.plugin_path() == std::filesystem::path(ISOLATE_TEST_CALCULATOR_NEXT_PLUGIN));
}

TEST_CASE("manager: hot reload swaps a process plugin's library under its handles; a failed reload leaves the old serving") {
  // The plugin's file lives in a directory of its own, so a new build can replace it.
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("isolate-reload-{}", ::getpid());
  std::filesystem::create_directories(dir);
  const auto file = dir / "libcalc.so";
  std::filesystem::copy_file(ISOLATE_TEST_CALCULATOR_PLUGIN, file, std::filesystem::copy_options::overwrite_existing);
  // The worker runs from the plugin's directory: the build's own one serves here.
  std::filesystem::create_symlink(std::filesystem::path(ISOLATE_TEST_CALCULATOR_PLUGIN).parent_path() / "isolate-worker",
                                  dir / "isolate-worker");

  isolate::manager plugins;
  auto calc = plugins.load<calculator>("calc", file, isolate::level::parse("process"));
  CHECK(calc->greet("ada") == "hello, ada");
  const pid_t first = calc.as<isolate::process>()->transport().pid();

  // Another file: the handle now reaches the new version, in a fresh worker.
  plugins.reload("calc", ISOLATE_TEST_CALCULATOR_NEXT_PLUGIN);
  CHECK(calc->greet("ada") == "bonjour, ada");
  CHECK(plugins.get<calculator>("calc")->greet("bob") == "bonjour, bob");
  CHECK(calc.as<isolate::process>()->transport().pid() != first);
  CHECK_FALSE(process_exists(first));
  CHECK(plugins.list().front().path == std::filesystem::path(ISOLATE_TEST_CALCULATOR_NEXT_PLUGIN));
  const auto history = calc.as<isolate::process>()->transport().history();
  REQUIRE_FALSE(history.empty());
  CHECK(history.back().action == isolate::recovery_action::reload);
  CHECK(contains(history.back().reason, "reloaded from"));

  // Failed reloads: the fresh worker never takes a call, the old version serves on.
  const auto mismatch = failure_of([&] { plugins.reload("calc", ISOLATE_TEST_CALCULATOR_V2_PLUGIN); });
  CHECK(mismatch.code() == isolate::errc::fingerprint_mismatch);
  const auto missing = failure_of([&] { plugins.reload("calc", dir / "missing.so"); });
  CHECK(missing.code() == isolate::errc::load_failed);
  const auto other = failure_of([&] { plugins.reload("calc", ISOLATE_TEST_FAULTY_PLUGIN); });
  CHECK(other.code() == isolate::errc::fingerprint_mismatch);
  CHECK(calc->greet("ada") == "bonjour, ada");
  CHECK(plugins.list().front().path == std::filesystem::path(ISOLATE_TEST_CALCULATOR_NEXT_PLUGIN));

  // The same file, replaced on disk by a new build (renamed over, as an
  // installer does): a reload with no path loads it again.
  plugins.reload("calc", file);
  CHECK(calc->greet("ada") == "hello, ada");
  std::filesystem::copy_file(ISOLATE_TEST_CALCULATOR_NEXT_PLUGIN, dir / "libcalc.so.new");
  std::filesystem::rename(dir / "libcalc.so.new", file);
  CHECK(calc->greet("ada") == "hello, ada");  // the running worker keeps the version it loaded
  plugins.reload("calc");
  CHECK(calc->greet("ada") == "bonjour, ada");

  // A call in flight on the old version fails with a named error, never hangs.
  auto slow_plugin = plugins.load<faulty>("faulty", ISOLATE_TEST_FAULTY_PLUGIN);
  auto slow = slow_plugin.async(&faulty::sleep_ms, 30'000, asio::use_future);
  plugins.reload("faulty");
  REQUIRE(slow.wait_for(20s) == std::future_status::ready);
  const auto stopped = failure_of([&] { slow.get(); });
  CHECK(stopped.code() == isolate::errc::plugin_closed);
  CHECK(contains(stopped.what(), "the host reloaded the plugin"));
  CHECK(slow_plugin->add(2, 2) == 4);

  // Inside the host there is nothing to swap under a live proxy.
  plugins.load<calculator>("thread", ISOLATE_TEST_CALCULATOR_PLUGIN, isolate::level::parse("thread"));
  CHECK(failure_of([&] { plugins.reload("thread"); }).code() == isolate::errc::unsupported);
  CHECK(failure_of([&] { plugins.reload("nobody"); }).code() == isolate::errc::unknown_plugin);
  slow_plugin.as<isolate::process>()->transport().quarantine("test");
  CHECK(failure_of([&] { plugins.reload("faulty"); }).code() == isolate::errc::quarantined);

  plugins.shutdown();
  std::filesystem::remove_all(dir);
}
