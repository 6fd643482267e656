// One-shot sandboxed functions: run a function of the host program in a
// fresh process under a limits policy, get its result or a named error, and
// read what the run cost and did.
//
//   int main() {
//     isolate::sandbox::start_fork_server();  // first thing: before any thread starts
//     isolate::sandbox sb{isolate::limits::strict().memory_mb(64), {.timeout = std::chrono::seconds(2)}};
//     auto doc = sb.run(parse, untrusted_bytes);   // parse(std::vector<char>) -> document
//     fmt::print("{}\n", sb.last_report());      // peak memory, CPU time, how it ended
//   }
//
// What can be run: a function, a lambda without captures, or a callable
// object Cereal can serialize (its state crosses, decoded in the run before
// its arguments), whose parameters and result are values Cereal can
// serialize (no pointers, no non-const references). It runs in a fork of
// the host as it was when the fork server started (so it sees the globals
// of that moment, not later ones), from code loaded before then. A lambda
// with captures does not compile: pass what it would capture as arguments.
//
// One fork server serves the whole program; a child the program forks
// afterwards shares its socket and must not use sandboxes.
//
// Errors: what the function throws arrives as the same type where known
// (else isolate::remote_error); a crash is errc::plugin_crashed, a run past
// the timeout errc::timeout, a memory, CPU or file-size limit reached
// errc::limit_exceeded, a limit the machine cannot enforce
// errc::limit_unenforceable (unless best_effort).
#ifndef ISOLATE_SANDBOX_HPP
#define ISOLATE_SANDBOX_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/codec.hpp"
#include "isolate/detail/async_arguments.hpp"
#include "isolate/detail/sandbox/fork_server.hpp"
#include "isolate/detail/sandbox/function_call.hpp"
#include "isolate/detail/sandbox/function_run.hpp"
#include "isolate/error.hpp"
#include "isolate/limits.hpp"
#include "isolate/run_report.hpp"

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/dispatch.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/thread_pool.hpp>
#include <dlfcn.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace isolate {

struct sandbox_options {
  // Wall-clock time a run may take, from its call to its result (a cold
  // run's start counts too); 0: no bound but the policy's CPU time. Past it
  // the run's processes are killed.
  std::chrono::milliseconds timeout{0};
  // The largest result a run may send back; a bigger one fails as protocol_error.
  std::size_t max_result_bytes = std::size_t{1} << 30;
  // Runs kept started and under their limits, waiting for a call, so that a
  // run costs no process start: each is used once, and replaced in the
  // background. 0: every run starts its processes itself (a cold run).
  unsigned warm = 0;
  // How many asynchronous runs go at once (async_run); more wait their turn.
  unsigned parallel_runs = 4;
  // What reports and errors call the function; empty: its symbol's name when
  // the program exports it (-rdynamic), else "sandboxed function".
  std::string name = {};
};

class sandbox {
 public:
  // Starts the fork server every run's process comes from. Call it at the
  // top of main, before the program starts a thread: it fails with
  // errc::unsupported once there are two. Without it, the first run starts
  // the server if the program still has one thread then.
  static void start_fork_server() { (void)detail::sandbox::fork_server::instance(); }

  // With options.warm > 0, returns once that many runs are ready.
  explicit sandbox(limits::policy policy = limits::strict(), sandbox_options options = {})
      : policy_(std::move(policy)), options_(options) {
    for (unsigned i = 0; i < options_.warm; ++i) warm_.push_back(prepare(std::nullopt));
  }

  // Runs still going are killed (their callers get plugin_closed).
  ~sandbox() {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
      for (const int pidfd : running_) detail::pidfd_send_signal(pidfd, SIGKILL);
    }
    if (pool_) pool_->join();
    warm_.clear();
  }
  sandbox(const sandbox&) = delete;
  sandbox& operator=(const sandbox&) = delete;

  // Runs f(args...) in a fresh sandboxed process and returns its result.
  template <class F, class... Args>
  auto run(F&& f, Args&&... args) {
    return run_callable(callable_of(std::forward<F>(f)), std::forward<Args>(args)...);
  }

  // sb.async_run(f, args..., token): the same run, completed through any Asio
  // completion token (use_future, a callback, use_awaitable, deferred) with
  // (std::exception_ptr, result). The run waits on a thread of the sandbox's
  // own (options.parallel_runs of them); the handler runs on its associated
  // executor (for a plain callback, that thread).
  template <class F, class... ArgsAndToken>
  auto async_run(F&& f, ArgsAndToken&&... args_and_token) {
    return async_run_callable(callable_of(std::forward<F>(f)), std::forward<ArgsAndToken>(args_and_token)...);
  }

  // The last run's report (of any thread's run on this sandbox).
  run_report last_report() const {
    std::lock_guard lock(mutex_);
    return last_;
  }

  const limits::policy& policy() const noexcept { return policy_; }

  // How many warm runs are ready now (at most options.warm).
  std::size_t warm_ready() const {
    std::lock_guard lock(mutex_);
    return warm_.size();
  }

 private:
  using prepared_run = detail::sandbox::prepared_run;
  using run_clock = detail::sandbox::run_clock;

  template <class F>
  static auto callable_of(F&& f) {
    using D = std::decay_t<F>;
    if constexpr (std::is_pointer_v<D> && std::is_function_v<std::remove_pointer_t<D>>) {
      return static_cast<D>(f);
    } else if constexpr (captureless<D>) {
      return +f;
    } else if constexpr (serializable_callable<D>) {
      return detail::sandbox::object_call<D>{std::forward<F>(f)};
    } else {
      static_assert(serializable_callable<D>,
                    "isolate::sandbox::run takes a function, a lambda without captures, or a callable object Cereal "
                    "can serialize (its state is sent): a lambda's captures live in the host's memory, which the "
                    "sandboxed process does not share; pass them as arguments");
      return static_cast<void (*)()>(nullptr);
    }
  }

  // A lambda without captures, which converts to a function pointer.
  template <class F>
  static constexpr bool captureless = requires(F f) { requires std::is_pointer_v<decltype(+f)>; };

  // An object with one call operator and state Cereal serializes.
  template <class F>
  static constexpr bool serializable_callable =
      std::is_class_v<F> && requires { &F::operator(); } && detail::is_wire_type<F>;

  template <class R, class... Params>
  static constexpr void check_signature() {
    namespace sb = detail::sandbox;
    static_assert((sb::sandbox_value<Params> && ...) && sb::sandbox_value<R>,
                  "a sandboxed function takes and returns values: a pointer would point into memory the "
                  "sandboxed process does not share");
    static_assert(((!std::is_lvalue_reference_v<Params> || std::is_const_v<std::remove_reference_t<Params>>) && ...),
                  "a sandboxed function cannot take a non-const reference: what it writes stays in its process");
    static_assert((detail::is_wire_type<std::decay_t<Params>> && ...),
                  "a sandboxed function's parameters must be default-constructible and serializable with Cereal");
    static_assert(std::is_void_v<R> || detail::is_wire_type<R>,
                  "a sandboxed function's result must be void, or default-constructible and serializable with Cereal");
  }

  template <class R, class... Params, class... Args>
  R run_callable(R (*f)(Params...), Args&&... args) {
    namespace sb = detail::sandbox;
    static_assert(sizeof...(Params) == sizeof...(Args), "isolate::sandbox::run(f, args...) takes f's arguments");
    check_signature<R, Params...>();
    const std::tuple<std::decay_t<Params>...> values(std::forward<Args>(args)...);
    wire::buffer arguments;
    std::apply([&](const auto&... v) { detail::encode_values(arguments, v...); }, values);
    const sb::call_message call{sb::locate_code(reinterpret_cast<const void*>(&sb::call_function<R, Params...>)),
                                sb::locate_code(reinterpret_cast<const void*>(f))};
    return decode_result<R>(run_encoded(call, arguments.bytes()));
  }

  // A callable object: its state goes first, then the arguments.
  template <class F, class... Args>
  auto run_callable(const detail::sandbox::object_call<F>& f, Args&&... args) {
    using op = detail::sandbox::call_operator<decltype(&F::operator())>;
    return [&]<class R, class... Params>(std::type_identity<R>, std::tuple<Params...>*) -> R {
      namespace sb = detail::sandbox;
      static_assert(sizeof...(Params) == sizeof...(Args), "isolate::sandbox::run(f, args...) takes f's arguments");
      check_signature<R, Params...>();
      const std::tuple<std::decay_t<Params>...> values(std::forward<Args>(args)...);
      wire::buffer arguments;
      std::apply([&](const auto&... v) { detail::encode_values(arguments, f.object, v...); }, values);
      const auto* enter = reinterpret_cast<const void*>(&sb::call_object<F, R, Params...>);
      const sb::call_message call{sb::locate_code(enter), sb::locate_code(enter)};
      return decode_result<R>(run_encoded(call, arguments.bytes()));
    }(std::type_identity<typename op::result>{}, static_cast<typename op::params*>(nullptr));
  }

  template <class R>
  static R decode_result(const std::vector<std::byte>& result) {
    if constexpr (std::is_void_v<R>) {
      detail::decode_values(std::span<const std::byte>(result));
    } else {
      R value{};
      detail::decode_values(std::span<const std::byte>(result), value);
      return value;
    }
  }

  template <class Callable, class... ArgsAndToken>
  auto async_run_callable(Callable f, ArgsAndToken&&... args_and_token) {
    using signature_of_f = detail::sandbox::callable_signature<Callable>;
    using R = typename signature_of_f::result;
    return [&]<class... Params>(std::tuple<Params...>*) {
      static_assert(sizeof...(ArgsAndToken) == sizeof...(Params) + 1,
                    "isolate::sandbox::async_run(f, args..., token) takes f's arguments, then an Asio completion "
                    "token");
      auto all = std::forward_as_tuple(std::forward<ArgsAndToken>(args_and_token)...);
      auto&& token = detail::token_of(std::move(all));
      auto values = detail::values_before_token<std::decay_t<Params>...>(std::move(all));
      using signature = typename detail::completion_signature<R>::type;
      return asio::async_initiate<decltype(token), signature>(
          [this, f](auto handler, auto arguments) {
            auto work = asio::make_work_guard(asio::get_associated_executor(handler));
            asio::post(pool(), [this, f, handler = std::move(handler), arguments = std::move(arguments),
                                work = std::move(work)]() mutable {
              std::exception_ptr failure;
              auto executor = work.get_executor();
              if constexpr (std::is_void_v<R>) {
                try {
                  std::apply([&](auto&... a) { run_callable(f, std::move(a)...); }, arguments);
                } catch (...) {
                  failure = std::current_exception();
                }
                asio::dispatch(executor,
                               [handler = std::move(handler), failure]() mutable { std::move(handler)(failure); });
              } else {
                std::optional<R> result;
                try {
                  result.emplace(std::apply([&](auto&... a) { return run_callable(f, std::move(a)...); }, arguments));
                } catch (...) {
                  failure = std::current_exception();
                }
                asio::dispatch(executor, [handler = std::move(handler), failure, result = std::move(result)]() mutable {
                  std::move(handler)(failure, result ? std::move(*result) : R{});
                });
              }
            });
          },
          token, std::move(values));
    }(static_cast<typename signature_of_f::params*>(nullptr));
  }

  asio::thread_pool& pool() {
    std::lock_guard lock(mutex_);
    return pool_locked();
  }

  // Made on its first use. Called with mutex_ held.
  asio::thread_pool& pool_locked() {
    if (!pool_) pool_ = std::make_unique<asio::thread_pool>(std::max(1u, options_.parallel_runs));
    return *pool_;
  }

  // A cold run's processes. Without namespaces on this machine, a
  // best-effort policy runs without them.
  std::unique_ptr<prepared_run> prepare(detail::sandbox::run_deadline deadline) {
    try {
      return prepared_run::start(policy_, policy_.protect_host, deadline);
    } catch (const error& e) {
      if (!(policy_.protect_host && policy_.best_effort && e.code() == make_error_code(errc::limit_unenforceable))) {
        throw;
      }
      return prepared_run::start(policy_, false, deadline);
    }
  }

  // A warm run if one is ready (and replaced in the background), else a cold one.
  std::unique_ptr<prepared_run> take(detail::sandbox::run_deadline deadline, bool& warm) {
    {
      std::lock_guard lock(mutex_);
      while (!warm_.empty()) {
        auto run = std::move(warm_.front());
        warm_.pop_front();
        if (!run->alive()) continue;  // killed meanwhile (by an OOM killer, say): replaced after the run
        warm = true;
        return run;
      }
    }
    warm = false;
    return prepare(deadline);
  }

  // Called with mutex_ held.
  void refill_later() {
    if (closing_) return;
    asio::post(pool_locked(), [this] {
      try {
        auto run = prepare(std::nullopt);
        std::lock_guard lock(mutex_);
        if (!closing_ && warm_.size() < options_.warm) warm_.push_back(std::move(run));
      } catch (const std::exception&) {
        // The next run starts cold, and says why it cannot start if it cannot.
      }
    });
  }

  // One run, from the encoded arguments to the encoded result. Keeps its report.
  std::vector<std::byte> run_encoded(const detail::sandbox::call_message& call, std::span<const std::byte> arguments) {
    run_report report;
    report.function = options_.name.empty() ? function_name(call.function) : options_.name;
    const auto started = run_clock::now();
    struct keeper {
      sandbox& owner;
      run_report& report;
      run_clock::time_point started;
      ~keeper() {
        report.wall = std::chrono::duration_cast<std::chrono::microseconds>(run_clock::now() - started);
        std::lock_guard lock(owner.mutex_);
        owner.last_ = std::move(report);
      }
    } const keep{*this, report, started};
    try {
      return run_once(call, arguments, report, started);
    } catch (const error& e) {
      if (!report.error) report.error = static_cast<errc>(e.code().value());
      throw;
    }
  }

  std::vector<std::byte> run_once(const detail::sandbox::call_message& call, std::span<const std::byte> arguments,
                                  run_report& report, run_clock::time_point started) {
    namespace sb = detail::sandbox;
    sb::fork_server::instance().check_code(call);
    sb::run_deadline deadline;
    if (options_.timeout.count() > 0) deadline = started + options_.timeout;
    auto run = take(deadline, report.warm);
    report.limits_in_force = run->limits();
    {
      std::lock_guard lock(mutex_);
      if (closing_) throw error(errc::plugin_closed, "the sandbox was destroyed before the run started");
      running_.insert(run->pidfd());
    }
    // After the call (not during it: a start competes for the CPU), the
    // warm pool gets a fresh run in the background.
    struct forget {
      sandbox& owner;
      int pidfd;
      ~forget() {
        std::lock_guard lock(owner.mutex_);
        owner.running_.erase(pidfd);
        if (owner.options_.warm > 0) owner.refill_later();
      }
    } const forget_run{*this, run->pidfd()};
    try {
      return sb::call_prepared(*run, call, arguments, policy_, {options_.timeout, options_.max_result_bytes}, deadline,
                               report);
    } catch (const error& e) {
      if (e.code() == make_error_code(errc::plugin_closed) && destroyed()) {
        throw error(errc::plugin_closed, "the sandbox was destroyed during the run");
      }
      throw;
    }
  }

  bool destroyed() const {
    std::lock_guard lock(mutex_);
    return closing_;
  }

  static std::string function_name(const detail::sandbox::code_address& function) {
    Dl_info info{};
    const auto* address = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(function.address));
    if (::dladdr(address, &info) != 0 && info.dli_sname != nullptr && info.dli_saddr == address) return info.dli_sname;
    return "sandboxed function";
  }

  limits::policy policy_;
  sandbox_options options_;
  mutable std::mutex mutex_;
  run_report last_;
  std::set<int> running_;  // the pidfds of the runs in flight
  bool closing_ = false;
  std::deque<std::unique_ptr<prepared_run>> warm_;
  std::unique_ptr<asio::thread_pool> pool_;  // for async_run and refills, made on first use
};

}  // namespace isolate

#endif
