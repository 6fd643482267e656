// isolate::manager: plugins of different interfaces under string ids, each
// with its isolation level chosen at run time (from a configuration file,
// say), listed and inspected by id:
//
//   isolate::manager plugins;
//   auto calc = plugins.load<calculator>("calc", "plugins/libcalc.so", isolate::level::parse("process:strict"));
//   int r = calc->add(2, 3);   // the same call, and the same speed, as through isolate::load
//   for (const auto& p : plugins.list()) fmt::print("{}\n", p);
//   plugins.unload("calc");
//
// A handle (isolate::managed<Interface>) shares the plugin with the manager:
// unload() and shutdown() stop the plugin once no handle is left, and a
// handle keeps calling it until then. Loads run outside the manager's lock,
// so plugins load concurrently from several threads.
#ifndef ISOLATE_MANAGER_HPP
#define ISOLATE_MANAGER_HPP

#include "isolate/detail/async_arguments.hpp"
#include "isolate/error.hpp"
#include "isolate/interface.hpp"
#include "isolate/limits.hpp"
#include "isolate/plugin.hpp"
#include "isolate/plugin_library.hpp"
#include "isolate/services.hpp"
#include "isolate/telemetry.hpp"
#include "isolate/transport/in_process.hpp"
#include "isolate/transport/process.hpp"
#include "isolate/transport/thread.hpp"

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/dispatch.hpp>
#include <fmt/format.h>

#include <cxxabi.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iterator>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>
#include <thread>
#include <vector>

namespace isolate {

// Where a managed plugin runs.
enum class isolation { in_process, thread, process };

// An isolation level: a transport and, for a process, a limits policy.
struct level {
  isolation transport = isolation::process;
  limits::policy limits = limits::minimal();

  // "in_process", "thread", "process" or "process:<preset>" (minimal,
  // standard, strict, maximum), as a configuration file would say it.
  static level parse(std::string_view text) {
    const auto colon = text.find(':');
    const std::string_view transport = text.substr(0, colon);
    const std::string_view preset = colon == std::string_view::npos ? std::string_view{} : text.substr(colon + 1);
    level result;
    if (transport == "in_process") {
      result.transport = isolation::in_process;
    } else if (transport == "thread") {
      result.transport = isolation::thread;
    } else if (transport == "process") {
      result.transport = isolation::process;
    } else {
      throw error(errc::unsupported, fmt::format("unknown isolation level '{}': say in_process, thread, process or "
                                                 "process:<minimal|standard|strict|maximum>",
                                                 text));
    }
    if (preset.empty() && colon == std::string_view::npos) return result;
    if (result.transport != isolation::process) {
      throw error(errc::unsupported, fmt::format("isolation level '{}': a limits preset needs a process of its own "
                                                 "(in_process and thread plugins run inside the host)",
                                                 text));
    }
    if (preset == "minimal") {
      result.limits = limits::minimal();
    } else if (preset == "standard") {
      result.limits = limits::standard();
    } else if (preset == "strict") {
      result.limits = limits::strict();
    } else if (preset == "maximum") {
      result.limits = limits::maximum();
    } else {
      throw error(errc::unsupported,
                  fmt::format("isolation level '{}': unknown limits preset '{}' (minimal, standard, strict or maximum)",
                              text, preset));
    }
    return result;
  }
};

inline std::string_view to_string(isolation transport) noexcept {
  switch (transport) {
    case isolation::in_process: return "in_process";
    case isolation::thread: return "thread";
    case isolation::process: return "process";
  }
  return "?";
}

inline std::string_view to_string(limits::level preset) noexcept {
  switch (preset) {
    case limits::level::minimal: return "minimal";
    case limits::level::standard: return "standard";
    case limits::level::strict: return "strict";
    case limits::level::maximum: return "maximum";
  }
  return "?";
}

// "process:strict", "thread": as level::parse reads it.
inline std::string to_string(const level& lvl) {
  if (lvl.transport != isolation::process) return std::string(to_string(lvl.transport));
  return fmt::format("process:{}", to_string(lvl.limits.preset));
}

// A managed plugin's state as the manager sees it.
enum class plugin_state {
  running,      // calls go through (a process plugin may be restarting after a crash)
  down,         // its worker died and is not restarted: calls fail with the reason
  quarantined,  // calls fail with errc::quarantined until it is released
};

inline std::string_view to_string(plugin_state state) noexcept {
  switch (state) {
    case plugin_state::running: return "running";
    case plugin_state::down: return "down";
    case plugin_state::quarantined: return "quarantined";
  }
  return "?";
}

// One line of manager::list().
struct plugin_info {
  std::string id;
  std::string interface_name;
  std::filesystem::path path;
  isolate::level level;
  plugin_state state = plugin_state::running;
};

// What manager::status() says of one plugin: its line of list(), and for a
// process plugin its telemetry (calls, latency, memory, CPU, violations...).
struct plugin_status {
  plugin_info info;
  std::optional<plugin_telemetry> telemetry;
};

// Several plugins' status (manager::status()), formatted with fmt as a
// table: a line per plugin, "-" where a plugin inside the host has no figure.
struct status_table {
  std::vector<plugin_status> rows;
};

// Raises this process's soft limit of open descriptors to its hard limit and
// returns the soft limit then in force. Each process plugin holds about 8
// descriptors in the host (sockets, ring, pidfd, seccomp listener): a host
// of more than ~120 plugins needs more than the usual soft limit of 1024.
inline std::uint64_t raise_open_files_limit() noexcept {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    const rlim_t before = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) limit.rlim_cur = before;
  }
  return limit.rlim_cur;
}

// The host's lifecycle hooks, for every plugin a manager loads, at any level.
// Each gets the plugin's line of list(). before_load may refuse by throwing
// (load() throws that, and nothing was started); so may after_load (the
// plugin is unloaded again). after_crash and after_restart concern process
// plugins (a plugin inside the host that crashes takes the host with it):
// they run where supervision's callbacks run (telemetry.hpp), one at a time
// per plugin, an exception they throw dropped; after_restart follows a
// restart after a crash, manager::restart and manager::reload alike.
struct manager_hooks {
  std::function<void(const plugin_info&)> before_load;
  std::function<void(const plugin_info&)> after_load;
  std::function<void(const plugin_info&, const violation&)> after_crash;
  std::function<void(const plugin_info&, const recovery&)> after_restart;
};

namespace detail {

// A call by method name (manager::call), its arguments and result type-erased.
struct named_call {
  std::string_view method;
  const std::type_info* arguments_type;  // std::tuple<std::decay_t<Args>...>
  void* arguments;                       // that tuple (moved from)
  const std::type_info* result_type;     // Result (void for none)
  void* result;                          // std::optional<Result>* (unused for void)
  std::optional<std::chrono::milliseconds> timeout;
};

// Where an asynchronous call by name completes; `result` points to its
// Result (nullptr for void, or when it failed).
class named_completion {
 public:
  virtual ~named_completion() = default;
  virtual void complete(std::exception_ptr failure, void* result) = 0;
};

// Completes an asynchronous call by name through the caller's handler, on
// its associated executor.
template <class Handler, class Result>
class named_handler_completion final : public named_completion {
 public:
  explicit named_handler_completion(Handler handler) : handler_(std::move(handler)) {}

  void complete(std::exception_ptr failure, void* result) override {
    auto executor = asio::get_associated_executor(handler_);
    if constexpr (std::is_void_v<Result>) {
      asio::dispatch(executor, [handler = std::move(handler_), failure]() mutable { std::move(handler)(failure); });
    } else {
      Result value = result != nullptr ? std::move(*static_cast<Result*>(result)) : Result{};
      asio::dispatch(executor, [handler = std::move(handler_), failure, value = std::move(value)]() mutable {
        std::move(handler)(failure, std::move(value));
      });
    }
  }

 private:
  Handler handler_;
};

// A dynamic call's argument as the method's table would decode it: a string
// literal is a std::string.
template <class T>
using named_argument_t =
    std::conditional_t<std::is_same_v<std::decay_t<T>, const char*> || std::is_same_v<std::decay_t<T>, char*>,
                       std::string, std::decay_t<T>>;

inline std::string demangled(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(type.name());
}

// What the manager keeps of a plugin, whatever its interface.
class managed_entry {
 public:
  managed_entry(std::string id, std::string interface_name, std::filesystem::path path, isolate::level lvl)
      : info_{std::move(id), std::move(interface_name), std::move(path), std::move(lvl), plugin_state::running} {}
  virtual ~managed_entry() = default;
  managed_entry(const managed_entry&) = delete;
  managed_entry& operator=(const managed_entry&) = delete;

  plugin_info info() {
    plugin_info copy;
    {
      std::lock_guard lock(info_mutex_);
      copy = info_;
    }
    copy.state = state();
    return copy;
  }
  virtual plugin_status status() = 0;
  virtual std::uint64_t fingerprint() const noexcept = 0;
  // As loaded (no reload since), without asking the plugin its state: for
  // the derived class's constructor.
  plugin_info info_as_loaded() const { return info_; }
  // A process plugin gets a fresh worker; one inside the host cannot restart.
  virtual void restart() = 0;
  // A process plugin gets a fresh worker that loads the library at `path`
  // (empty: the same file again); one inside the host cannot reload.
  void reload(const std::filesystem::path& path) {
    const auto from = path.empty() ? info().path : path;
    reload_from(from);
    std::lock_guard lock(info_mutex_);
    info_.path = from;
  }
  // Runs the method named in `call`, after checking its types; throws
  // unknown_method or signature_mismatch.
  virtual void call_by_name(named_call& call) = 0;
  // As call_by_name, completing through `done` (which the errors reach too).
  virtual void async_by_name(named_call& call, std::unique_ptr<named_completion> done) = 0;

 protected:
  virtual plugin_state state() = 0;
  virtual void reload_from(const std::filesystem::path& path) = 0;

 public:
  // Quarantine (process plugins): why it is quarantined, if it is.
  virtual std::optional<std::string> quarantine_reason() = 0;
  virtual void quarantine(std::string reason) = 0;
  virtual void release() = 0;

 private:
  std::mutex info_mutex_;  // a reload changes the path
  plugin_info info_;
};

template <interface Interface>
class typed_managed_entry final : public managed_entry {
 public:
  using any_plugin =
      std::variant<plugin<Interface, in_process>, plugin<Interface, thread>, plugin<Interface, process>>;

  typed_managed_entry(std::string id, const std::filesystem::path& path, const isolate::level& lvl,
                      const host_services& services, const std::shared_ptr<const manager_hooks>& hooks)
      : managed_entry(std::move(id), std::string(Interface::isolate_meta::interface_name), path, lvl),
        plugin_(open(info_as_loaded(), services, hooks)) {}

  Interface* target() noexcept {
    return std::visit([](auto& p) { return p.operator->(); }, plugin_);
  }
  any_plugin& handle() noexcept { return plugin_; }

  plugin_status status() override {
    plugin_status result{info(), std::nullopt};
    if (auto* p = std::get_if<isolate::plugin<Interface, process>>(&plugin_)) result.telemetry = p->transport().telemetry();
    return result;
  }
  std::uint64_t fingerprint() const noexcept override { return Interface::isolate_meta::fingerprint; }

  void restart() override { process_plugin("restarted").transport().link().restart_now("restarted by the host"); }

  void call_by_name(named_call& call) override {
    with_method(call, [&]<std::size_t K>(std::integral_constant<std::size_t, K>) { run<K>(call); });
  }

  void async_by_name(named_call& call, std::unique_ptr<named_completion> done) override {
    try {
      with_method(call, [&]<std::size_t K>(std::integral_constant<std::size_t, K>) { start<K>(call, done); });
    } catch (...) {
      if (done) done->complete(std::current_exception(), nullptr);
    }
  }

 protected:
  void reload_from(const std::filesystem::path& path) override {
    process_plugin("reloaded").transport().link().reload(path);
  }

  std::optional<std::string> quarantine_reason() override {
    auto* p = std::get_if<isolate::plugin<Interface, process>>(&plugin_);
    if (p == nullptr || !p->transport().quarantined()) return std::nullopt;
    const auto history = p->transport().history();
    for (auto it = history.rbegin(); it != history.rend(); ++it) {
      if (it->action == recovery_action::quarantine) return it->reason;
    }
    return std::string("quarantined");
  }
  void quarantine(std::string reason) override { process_plugin("quarantined").transport().quarantine(std::move(reason)); }
  void release() override { process_plugin("released").transport().release(); }

  plugin_state state() override {
    auto* p = std::get_if<isolate::plugin<Interface, process>>(&plugin_);
    if (p == nullptr) return plugin_state::running;
    if (p->transport().quarantined()) return plugin_state::quarantined;
    return p->transport().link().up() ? plugin_state::running : plugin_state::down;
  }

 private:
  // The plugin as a process plugin, for what only those can do (`what`: how
  // the error says it, e.g. "restarted"); unsupported inside the host.
  isolate::plugin<Interface, process>& process_plugin(std::string_view what) {
    auto* p = std::get_if<isolate::plugin<Interface, process>>(&plugin_);
    if (p == nullptr) {
      throw error(errc::unsupported, fmt::format("the plugin '{}' runs inside the host ({}): only a process plugin "
                                                 "can be {} (unload it and load it again)",
                                                 info().id, to_string(info().level), what));
    }
    return *p;
  }

  static any_plugin open(const plugin_info& about, const host_services& services,
                         const std::shared_ptr<const manager_hooks>& hooks) {
    const auto& path = about.path;
    const auto& lvl = about.level;
    switch (lvl.transport) {
      case isolation::in_process:
        no_limits_outside_a_process(lvl);
        return any_plugin(std::in_place_index<0>, load<Interface, in_process>(path, {}, services));
      case isolation::thread:
        no_limits_outside_a_process(lvl);
        return any_plugin(std::in_place_index<1>, load<Interface, thread>(path, {}, services));
      case isolation::process: {
        process::options options;
        options.limits = lvl.limits;
        if (hooks && hooks->after_crash) {
          options.supervision.on_crash = [hooks, about](const violation& v) { hooks->after_crash(about, v); };
        }
        if (hooks && hooks->after_restart) {
          options.supervision.on_restart = [hooks, about](const recovery& r) { hooks->after_restart(about, r); };
        }
        return any_plugin(std::in_place_index<2>, load<Interface, process>(path, options, services));
      }
    }
    throw error(errc::unsupported, "unknown isolation level");
  }

  using meta = typename Interface::isolate_meta;

  // Finds the method named in `call`, checks the call's types against it and
  // hands its index to `then` (as an integral_constant).
  template <class Then>
  void with_method(const named_call& call, Then&& then) {
    const auto* found = std::find_if(std::begin(meta::methods), std::end(meta::methods),
                                     [&](const auto& m) { return m.name == call.method; });
    if (found == std::end(meta::methods)) {
      throw error(errc::unknown_method,
                  fmt::format("{} has no method '{}'", meta::interface_name, call.method));
    }
    const auto index = static_cast<std::size_t>(found - std::begin(meta::methods));
    [&]<std::size_t... K>(std::index_sequence<K...>) {
      ((K == index ? (check<K>(call), then(std::integral_constant<std::size_t, K>{}), true) : false) || ...);
    }(std::make_index_sequence<meta::method_count>{});
  }

  template <std::size_t K>
  static void check(const named_call& call) {
    using traits = method_traits<method_pointer_t<Interface, K>>;
    if (*call.arguments_type != typeid(typename traits::values) ||
        *call.result_type != typeid(typename traits::result_type)) {
      throw error(errc::signature_mismatch,
                  fmt::format("{}::{} is {}; it was called with arguments {} for a result of type {}",
                              meta::interface_name, call.method, meta::methods[K].signature,
                              demangled(*call.arguments_type), demangled(*call.result_type)));
    }
  }

  template <std::size_t K>
  void run(named_call& call) {
    using traits = method_traits<method_pointer_t<Interface, K>>;
    using result_type = typename traits::result_type;
    constexpr auto method = std::get<K>(meta::pointers);
    auto& arguments = *static_cast<typename traits::values*>(call.arguments);
    Interface* const target = this->target();
    const timeout_for scope(*this, call.timeout);
    std::apply(
        [&](auto&... args) {
          if constexpr (std::is_void_v<result_type>) {
            (target->*method)(std::move(args)...);
          } else {
            static_cast<std::optional<result_type>*>(call.result)->emplace((target->*method)(std::move(args)...));
          }
        },
        arguments);
  }

  template <std::size_t K>
  void start(named_call& call, std::unique_ptr<named_completion>& done) {
    using traits = method_traits<method_pointer_t<Interface, K>>;
    using result_type = typename traits::result_type;
    constexpr auto method = std::get<K>(meta::pointers);
    auto& arguments = *static_cast<typename traits::values*>(call.arguments);
    const timeout_for scope(*this, call.timeout);
    std::visit(
        [&](auto& p) {
          std::apply(
              [&](auto&... args) {
                if constexpr (std::is_void_v<result_type>) {
                  p.async(method, std::move(args)...,
                          [done = std::move(done)](std::exception_ptr failure) { done->complete(failure, nullptr); });
                } else {
                  p.async(method, std::move(args)...,
                          [done = std::move(done)](std::exception_ptr failure, result_type result) {
                            done->complete(failure, failure ? nullptr : &result);
                          });
                }
              },
              arguments);
        },
        plugin_);
  }

  // A dynamic call's timeout, for the calls made on this thread while it
  // lives; only a process plugin's calls can be abandoned.
  class timeout_for {
   public:
    timeout_for(typed_managed_entry& entry, std::optional<std::chrono::milliseconds> timeout)
        : previous_(next_call_timeout) {
      if (!timeout) return;
      if (!std::holds_alternative<isolate::plugin<Interface, process>>(entry.plugin_)) {
        throw error(errc::unsupported, fmt::format("a call to a plugin inside the host ({}) cannot time out: it "
                                                   "cannot be abandoned safely",
                                                   to_string(entry.info().level)));
      }
      next_call_timeout = timeout;
    }
    ~timeout_for() { next_call_timeout = previous_; }
    timeout_for(const timeout_for&) = delete;
    timeout_for& operator=(const timeout_for&) = delete;

   private:
    std::optional<std::chrono::milliseconds> previous_;
  };

  static void no_limits_outside_a_process(const isolate::level& lvl) {
    if (lvl.limits.preset != limits::level::minimal) {
      throw error(errc::unsupported, fmt::format("a limits preset other than minimal ({}) needs a process of its own; "
                                                 "{} plugins run inside the host",
                                                 to_string(lvl.limits.preset), to_string(lvl.transport)));
    }
  }

  any_plugin plugin_;
};

}  // namespace detail

// The host's handle on a managed plugin: calls through operator-> (the same
// virtual call as a handle from isolate::load) and async(). It shares the
// plugin with the manager (see the file's comment). Thread safety as
// isolate::plugin's.
template <interface Interface>
class managed {
 public:
  managed() = default;

  Interface* operator->() const noexcept { return target_; }
  Interface& operator*() const noexcept { return *target_; }
  explicit operator bool() const noexcept { return target_ != nullptr; }

  // m.async(&Interface::method, args..., token): as isolate::plugin::async,
  // with any Asio completion token.
  template <class Result, class... Params, class... ArgsAndToken>
  auto async(Result (Interface::*method)(Params...), ArgsAndToken&&... args_and_token) {
    static_assert(sizeof...(ArgsAndToken) == sizeof...(Params) + 1,
                  "isolate::managed::async(&Interface::method, args..., token) takes one argument per parameter of "
                  "the method, then an Asio completion token (e.g. asio::use_future).");
    auto all = std::forward_as_tuple(std::forward<ArgsAndToken>(args_and_token)...);
    auto&& token = detail::token_of(std::move(all));
    auto values = detail::values_before_token<std::decay_t<Params>...>(std::move(all));
    using signature = typename detail::completion_signature<Result>::type;
    // The transport is known at run time only: the initiation picks it, and
    // hands the call on with the handler as its completion token.
    return asio::async_initiate<decltype(token), signature>(
        [entry = entry_, method](auto handler, auto arguments) {
          std::visit(
              [&](auto& p) {
                std::apply([&](auto&... args) { p.async(method, std::move(args)..., std::move(handler)); },
                           arguments);
              },
              entry->handle());
        },
        token, std::move(values));
  }

  // The transport's handle, for what only one transport offers (a process
  // plugin's telemetry, quarantine, pid): null under another transport.
  template <class Policy>
  isolate::plugin<Interface, Policy>* as() noexcept {
    return entry_ ? std::get_if<isolate::plugin<Interface, Policy>>(&entry_->handle()) : nullptr;
  }

 private:
  friend class manager;
  explicit managed(std::shared_ptr<detail::typed_managed_entry<Interface>> entry)
      : entry_(std::move(entry)), target_(entry_->target()) {}

  std::shared_ptr<detail::typed_managed_entry<Interface>> entry_;
  Interface* target_ = nullptr;
};

class manager {
 public:
  manager() = default;
  explicit manager(manager_hooks hooks) : hooks_(std::make_shared<const manager_hooks>(std::move(hooks))) {}
  manager(const manager&) = delete;
  manager& operator=(const manager&) = delete;
  ~manager() { shutdown(); }

  // Loads the plugin at `path` under `id`, at `lvl`. Throws isolate::error:
  // duplicate_plugin if the id is taken, and as isolate::load does otherwise
  // (load_failed: a missing file, a file that is not a plugin;
  // fingerprint_mismatch: a plugin of another interface; unsupported: a
  // limits preset for a plugin inside the host).
  template <interface Interface>
  managed<Interface> load(std::string id, const std::filesystem::path& path, const level& lvl = {},
                          const host_services& services = {}) {
    {
      std::lock_guard lock(mutex_);
      if (const auto held = quarantined_.find(id); held != quarantined_.end()) {
        throw error(errc::quarantined,
                    fmt::format("the plugin '{}' was quarantined ({}) and stays so under its id after its unload: "
                                "manager::release(\"{}\") lets it load again",
                                id, held->second, id));
      }
      if (!plugins_.try_emplace(id, nullptr).second) {
        throw error(errc::duplicate_plugin, fmt::format("a plugin is already loaded under the id '{}'", id));
      }
    }
    // Loaded outside the lock (other loads go on meanwhile); the id is held.
    std::shared_ptr<detail::typed_managed_entry<Interface>> entry;
    try {
      if (hooks_ && hooks_->before_load) {
        hooks_->before_load(plugin_info{id, std::string(Interface::isolate_meta::interface_name), path, lvl});
      }
      entry = std::make_shared<detail::typed_managed_entry<Interface>>(id, path, lvl, services, hooks_);
      if (hooks_ && hooks_->after_load) hooks_->after_load(entry->info());
    } catch (...) {
      std::lock_guard lock(mutex_);
      plugins_.erase(id);
      throw;
    }
    std::lock_guard lock(mutex_);
    plugins_[id] = entry;
    return managed<Interface>(std::move(entry));
  }

  // Another handle on the plugin under `id`. Throws unknown_plugin, or
  // wrong_interface if it offers another interface than Interface.
  template <interface Interface>
  managed<Interface> get(std::string_view id) const {
    auto entry = find(id);
    if (entry->fingerprint() != Interface::isolate_meta::fingerprint) {
      throw error(errc::wrong_interface,
                  fmt::format("the plugin '{}' offers {}, not {}", id, entry->info().interface_name,
                              Interface::isolate_meta::interface_name));
    }
    return managed<Interface>(std::static_pointer_cast<detail::typed_managed_entry<Interface>>(std::move(entry)));
  }

  bool is_loaded(std::string_view id) const {
    std::lock_guard lock(mutex_);
    const auto found = plugins_.find(id);
    return found != plugins_.end() && found->second != nullptr;
  }

  // Forgets `id`; the plugin stops now, or when its last handle goes.
  // Throws unknown_plugin.
  void unload(std::string_view id) {
    std::shared_ptr<detail::managed_entry> entry;
    {
      std::lock_guard lock(mutex_);
      const auto found = plugins_.find(id);
      if (found == plugins_.end() || found->second == nullptr) throw unknown(id);
      entry = std::move(found->second);
      plugins_.erase(found);
    }
    // A quarantine outlives the load: loading the id again is refused until release(id).
    if (auto reason = entry->quarantine_reason()) {
      std::lock_guard lock(mutex_);
      quarantined_.insert_or_assign(std::string(id), std::move(*reason));
    }
    // Stopped here, outside the lock (a worker's stop may take its grace period).
  }

  // Quarantines the process plugin under `id`: its worker stops and its
  // calls fail with errc::quarantined until release(id); unloading it does
  // not lift that (see load). Throws unknown_plugin, unsupported for a
  // plugin inside the host.
  void quarantine(std::string_view id, std::string reason) { find(id)->quarantine(std::move(reason)); }

  // Lifts the quarantine of `id`: a loaded plugin's worker starts again
  // (returns once it runs); an unloaded one may be loaded again. Throws
  // unknown_plugin if `id` is neither loaded nor quarantined.
  void release(std::string_view id) {
    std::shared_ptr<detail::managed_entry> entry;
    {
      std::lock_guard lock(mutex_);
      if (const auto held = quarantined_.find(id); held != quarantined_.end()) {
        quarantined_.erase(held);
        return;
      }
      const auto found = plugins_.find(id);
      if (found == plugins_.end() || found->second == nullptr) throw unknown(id);
      entry = found->second;
    }
    entry->release();
  }

  // The ids under quarantine, loaded or not, with the reason of each.
  std::vector<std::pair<std::string, std::string>> quarantined() const {
    std::vector<std::pair<std::string, std::string>> result;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [id, reason] : quarantined_) result.emplace_back(id, reason);
    }
    for (const auto& entry : loaded_entries()) {
      if (auto reason = entry->quarantine_reason()) result.emplace_back(entry->info().id, std::move(*reason));
    }
    std::sort(result.begin(), result.end());
    return result;
  }

  // Every loaded plugin, by id.
  std::vector<plugin_info> list() const {
    std::vector<plugin_info> result;
    for (const auto& entry : loaded_entries()) result.push_back(entry->info());
    return result;
  }

  // The plugin's line of list(), with its telemetry if it runs in a process.
  // Throws unknown_plugin.
  plugin_status status(std::string_view id) const { return find(id)->status(); }

  // Every loaded plugin's status, by id: `fmt::print("{}", plugins.status())`
  // prints them as a table, one line each.
  status_table status() const {
    status_table table;
    for (const auto& entry : loaded_entries()) table.rows.push_back(entry->status());
    return table;
  }

  // mgr.call<Result>(id, "method", args...): a call by the method's name,
  // for hosts that know it only at run time (a script, a configuration).
  // Checked against the interface's method table: unknown_plugin,
  // unknown_method, signature_mismatch (the arguments' types, decayed, with a
  // string literal taken as std::string, and Result must be the method's).
  template <class Result, class... Args>
  Result call(std::string_view id, std::string_view method, Args&&... args) {
    return call_named<Result>(std::nullopt, id, method, std::forward<Args>(args)...);
  }

  // mgr.async_call<Result>(id, "method", args..., token): the same, completed
  // through any Asio completion token with (std::exception_ptr, Result); the
  // errors above arrive through it too. The manager must outlive the call's start.
  template <class Result, class... ArgsAndToken>
  auto async_call(std::string_view id, std::string_view method, ArgsAndToken&&... args_and_token) {
    return async_named<Result>(std::nullopt, id, method, std::forward<ArgsAndToken>(args_and_token)...);
  }

  // mgr.with_timeout(100ms).call<Result>(...) (or .async_call): that one call
  // may take at most `timeout`, then fails with errc::timeout and the worker
  // is killed; process plugins only (unsupported for one inside the host).
  class timed {
   public:
    template <class Result, class... Args>
    Result call(std::string_view id, std::string_view method, Args&&... args) {
      return manager_.call_named<Result>(timeout_, id, method, std::forward<Args>(args)...);
    }
    template <class Result, class... ArgsAndToken>
    auto async_call(std::string_view id, std::string_view method, ArgsAndToken&&... args_and_token) {
      return manager_.async_named<Result>(timeout_, id, method, std::forward<ArgsAndToken>(args_and_token)...);
    }

   private:
    friend class manager;
    timed(manager& m, std::chrono::milliseconds timeout) : manager_(m), timeout_(timeout) {}
    manager& manager_;
    std::chrono::milliseconds timeout_;
  };
  timed with_timeout(std::chrono::milliseconds timeout) { return timed(*this, timeout); }

  // Gives the process plugin under `id` a fresh worker, whatever its restart
  // policy (its calls in flight fail with plugin_closed); recorded in its
  // history. Throws unknown_plugin, unsupported for a plugin inside the host,
  // quarantined, or why the fresh worker could not start (the old one serves on).
  void restart(std::string_view id) { find(id)->restart(); }

  // Hot reload: the process plugin under `id` gets a fresh worker that loads
  // the library at `path` (empty: its file again, e.g. after a new build
  // replaced it). Handles keep working: new calls go to the new version once
  // this returns; calls in flight fail with plugin_closed ("the host
  // reloaded the plugin"). The fresh worker must load and pass the
  // fingerprint check first: if it does not, this throws why
  // (fingerprint_mismatch, load_failed, timeout...) and the old version
  // serves on. Recorded in the history as a reload. Throws unknown_plugin,
  // unsupported for a plugin inside the host, quarantined.
  void reload(std::string_view id, const std::filesystem::path& path = {}) { find(id)->reload(path); }

  // Unloads every plugin (each stops now, or when its last handle goes).
  void shutdown() {
    std::vector<std::shared_ptr<detail::managed_entry>> all;
    {
      std::lock_guard lock(mutex_);
      // A load under way keeps its id; it lands after this and is unloaded with the manager.
      for (auto it = plugins_.begin(); it != plugins_.end();) {
        if (it->second) {
          all.push_back(std::move(plugins_.extract(it++).mapped()));
        } else {
          ++it;
        }
      }
    }
    stop_concurrently(std::move(all));
  }

 private:
  // The loaded plugins' entries, taken under the lock, read outside it (an
  // entry's info or status may wait for its worker).
  std::vector<std::shared_ptr<detail::managed_entry>> loaded_entries() const {
    std::vector<std::shared_ptr<detail::managed_entry>> entries;
    std::lock_guard lock(mutex_);
    for (const auto& [id, entry] : plugins_) {
      if (entry) entries.push_back(entry);
    }
    return entries;
  }

  // Each plugin's stop may take its grace (asked, then killed): they are
  // stopped side by side, up to stoppers at a time, so that a shutdown takes
  // about one grace, not one per plugin. (A plugin a handle still holds
  // stops when that handle goes.)
  static void stop_concurrently(std::vector<std::shared_ptr<detail::managed_entry>> all) {
    constexpr std::size_t stoppers = 16;
    std::atomic<std::size_t> next{0};
    auto stop_some = [&] {
      for (std::size_t i = next.fetch_add(1); i < all.size(); i = next.fetch_add(1)) all[i].reset();
    };
    std::vector<std::thread> helpers;
    for (std::size_t i = 1; i < std::min(stoppers, all.size()); ++i) {
      try {
        helpers.emplace_back(stop_some);
      } catch (const std::system_error&) {
        break;  // no thread to be had: the ones there (and this one) stop the rest
      }
    }
    stop_some();
    for (auto& helper : helpers) helper.join();
  }

  template <class Result, class... Args>
  Result call_named(std::optional<std::chrono::milliseconds> timeout, std::string_view id, std::string_view method,
                    Args&&... args) {
    auto entry = find(id);
    std::tuple<detail::named_argument_t<Args>...> arguments(std::forward<Args>(args)...);
    detail::named_call call{method, &typeid(arguments), &arguments, &typeid(Result), nullptr, timeout};
    if constexpr (std::is_void_v<Result>) {
      entry->call_by_name(call);
    } else {
      std::optional<Result> result;
      call.result = &result;
      entry->call_by_name(call);
      return std::move(*result);
    }
  }

  template <class Result, class... ArgsAndToken>
  auto async_named(std::optional<std::chrono::milliseconds> timeout, std::string_view id, std::string_view method,
                   ArgsAndToken&&... args_and_token) {
    constexpr std::size_t count = sizeof...(ArgsAndToken) - 1;
    auto all = std::forward_as_tuple(std::forward<ArgsAndToken>(args_and_token)...);
    auto&& token = detail::token_of(std::move(all));
    auto values = [&]<std::size_t... I>(std::index_sequence<I...>) {
      return detail::values_before_token<
          detail::named_argument_t<std::tuple_element_t<I, std::tuple<ArgsAndToken...>>>...>(std::move(all));
    }(std::make_index_sequence<count>{});
    using signature = typename detail::completion_signature<Result>::type;
    return asio::async_initiate<decltype(token), signature>(
        [this, id = std::string(id), method = std::string(method), timeout](auto handler, decltype(values) arguments) {
          std::unique_ptr<detail::named_completion> done =
              std::make_unique<detail::named_handler_completion<decltype(handler), Result>>(std::move(handler));
          std::shared_ptr<detail::managed_entry> entry;
          try {
            entry = find(id);
          } catch (...) {
            done->complete(std::current_exception(), nullptr);
            return;
          }
          detail::named_call call{method, &typeid(arguments), &arguments, &typeid(Result), nullptr, timeout};
          entry->async_by_name(call, std::move(done));
        },
        token, std::move(values));
  }

  std::shared_ptr<detail::managed_entry> find(std::string_view id) const {
    std::lock_guard lock(mutex_);
    const auto found = plugins_.find(id);
    if (found == plugins_.end() || found->second == nullptr) throw unknown(id);
    return found->second;
  }

  static error unknown(std::string_view id) {
    return error(errc::unknown_plugin, fmt::format("no plugin is loaded under the id '{}'", id));
  }

  std::shared_ptr<const manager_hooks> hooks_;  // shared with the plugins' supervision callbacks
  mutable std::mutex mutex_;
  // nullptr while its load is under way (the id is taken).
  std::map<std::string, std::shared_ptr<detail::managed_entry>, std::less<>> plugins_;
  // Ids unloaded while quarantined, with the reason: not loaded again until release(id).
  std::map<std::string, std::string, std::less<>> quarantined_;
};

}  // namespace isolate

template <>
struct fmt::formatter<isolate::plugin_info> : fmt::formatter<std::string_view> {
  template <class Context>
  auto format(const isolate::plugin_info& info, Context& ctx) const {
    return fmt::format_to(ctx.out(), "{} ({}, {}, {}): {}", info.id, info.interface_name, isolate::to_string(info.level),
                          isolate::to_string(info.state), info.path.string());
  }
};

template <>
struct fmt::formatter<isolate::status_table> : fmt::formatter<std::string_view> {
  template <class Context>
  auto format(const isolate::status_table& table, Context& ctx) const {
    using isolate::detail::bytes_text;
    using isolate::detail::duration_text;
    constexpr std::string_view line = "{:<12} {:<16} {:<18} {:<11} {:>7} {:>6} {:>9} {:>9} {:>10} {:>8} {:>10}\n";
    auto out = fmt::format_to(ctx.out(), line, "id", "interface", "level", "state", "calls", "failed", "p50", "p99",
                              "peak mem", "restarts", "violations");
    for (const auto& row : table.rows) {
      const auto& info = row.info;
      if (!row.telemetry) {
        out = fmt::format_to(out, line, info.id, info.interface_name, isolate::to_string(info.level),
                             isolate::to_string(info.state), "-", "-", "-", "-", "-", "-", "-");
        continue;
      }
      const auto& t = *row.telemetry;
      const bool sampled = t.latency_samples > 0;
      out = fmt::format_to(out, line, info.id, info.interface_name, isolate::to_string(info.level),
                           isolate::to_string(info.state), t.calls, t.errors,
                           sampled ? duration_text(t.latency_p50) : std::string("-"),
                           sampled ? duration_text(t.latency_p99) : std::string("-"),
                           bytes_text(t.peak_memory_bytes), t.restarts, t.violations);
    }
    return out;
  }
};

template <>
struct fmt::formatter<isolate::plugin_status> : fmt::formatter<std::string_view> {
  template <class Context>
  auto format(const isolate::plugin_status& status, Context& ctx) const {
    auto out = fmt::format_to(ctx.out(), "{}", status.info);
    if (status.telemetry) out = fmt::format_to(out, "\n{}", *status.telemetry);
    return out;
  }
};

#endif
