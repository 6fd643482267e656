// isolate::plugin<Interface, Policy>: the host's handle on a loaded plugin,
// and isolate::load to get one. Host code is the same under every policy:
//
//   auto calc = isolate::load<calculator, isolate::thread>(std::make_unique<my_calc>());
//   int r = calc->add(2, 3);                                   // synchronous
//   auto f = calc.async(&calculator::add, 2, 3, asio::use_future);  // any Asio completion token
//
// Asynchronous calls complete with (std::exception_ptr, Result) — or
// (std::exception_ptr) for void — so a plugin's exception reaches a future or
// a coroutine as the same type a synchronous call would throw.
#ifndef ISOLATE_PLUGIN_HPP
#define ISOLATE_PLUGIN_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/async_arguments.hpp"
#include "isolate/call_cost.hpp"
#include "isolate/detail/call_accounting.hpp"
#include "isolate/error.hpp"
#include "isolate/interface.hpp"
#include "isolate/detail/plugin_object.hpp"
#include "isolate/services.hpp"
#include "isolate/detail/remote.hpp"

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/post.hpp>

#include <chrono>
#include <concepts>
#include <optional>
#include <exception>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

namespace isolate {

namespace detail {

// What an asynchronous call is made with besides its arguments: kept until
// the call starts (a deferred token starts it later).
struct call_settings {
  std::optional<std::chrono::milliseconds> timeout;
  call_cost* cost = nullptr;  // with_accounting: where the call's cost goes
};

// Sets the timeout of the calls made on this thread while it lives (one
// full-expression, in `p.with_timeout(t)->method()`), and of an
// asynchronous call made through it (`p.with_timeout(t).async(...)`).
template <class Plugin>
class timeout_scope {
 public:
  timeout_scope(Plugin& plugin, std::chrono::milliseconds timeout)
      : plugin_(plugin), timeout_(timeout), previous_(std::exchange(next_call_timeout, timeout)) {}
  ~timeout_scope() { next_call_timeout = previous_; }
  timeout_scope(const timeout_scope&) = delete;
  timeout_scope& operator=(const timeout_scope&) = delete;
  auto operator->() const noexcept { return plugin_.operator->(); }

  // As plugin::async, with this timeout (kept until the call starts, so a
  // deferred token gets it too).
  template <class... MethodArgsAndToken>
  auto async(MethodArgsAndToken&&... method_args_and_token) {
    return plugin_.async_with(call_settings{timeout_}, std::forward<MethodArgsAndToken>(method_args_and_token)...);
  }

 private:
  Plugin& plugin_;
  std::chrono::milliseconds timeout_;
  std::optional<std::chrono::milliseconds> previous_;
};

template <class Connection>
concept marshalling_connection = requires(Connection& c) { c.transport(); };

// Reports the cost of the call made through it in `cost`: a synchronous one
// in its full-expression (`p.with_accounting(cost)->method()`), an
// asynchronous one (`p.with_accounting(cost).async(...)`) before its handler
// runs. A marshalled call is measured by the plugin's thread that runs it
// (the link is told through next_call_cost); an in_process one here, on the
// caller's thread, around the full-expression.
template <class Plugin, bool Marshalled>
class accounting_scope {
 public:
  accounting_scope(Plugin& plugin, call_cost& cost) : plugin_(plugin), cost_(cost) {
    cost = call_cost{};
    if constexpr (Marshalled) {
      previous_ = std::exchange(next_call_cost, &cost);
    } else {
      meter_.emplace();
    }
  }
  ~accounting_scope() {
    if constexpr (Marshalled) {
      next_call_cost = previous_;
    } else if (!async_) {
      cost_ = as_call_cost(meter_->finish());
    }
  }
  accounting_scope(const accounting_scope&) = delete;
  accounting_scope& operator=(const accounting_scope&) = delete;
  auto operator->() const noexcept { return plugin_.operator->(); }

  // As plugin::async; `cost` must live until the handler runs.
  template <class... MethodArgsAndToken>
  auto async(MethodArgsAndToken&&... method_args_and_token) {
    async_ = true;
    return plugin_.async_with(call_settings{std::nullopt, &cost_},
                              std::forward<MethodArgsAndToken>(method_args_and_token)...);
  }

 private:
  Plugin& plugin_;
  call_cost& cost_;
  call_cost* previous_ = nullptr;
  std::optional<cost_meter> meter_;
  bool async_ = false;
};

}  // namespace detail

// A policy says how a plugin is isolated: in_process, thread or process.
template <class Policy, class Interface>
concept transport_policy = interface<Interface> && requires {
  typename Policy::options;
  typename Policy::template connection<Interface>;
} && requires(typename Policy::template connection<Interface>& c) {
  { c.target() } -> std::same_as<Interface*>;
};

// The host's handle on a loaded plugin: calls through operator->, async()
// and with_timeout(). It owns the connection (and so the plugin's thread or
// worker process); destroying it unloads the plugin.
//
// Thread safety: distinct objects: safe. Shared object: its calls (operator->,
// operator*, async(), with_timeout()) may be made from any number of threads
// at once. Under in_process they run on the calling threads, so the
// implementation sees the callers' concurrency; under thread and process they
// are marshalled, and the implementation sees as many threads at once as
// the policy's `concurrency` option allows. with_timeout() applies to the next
// call on the calling thread only. Moving, assigning or destroying the plugin
// must not race any other use of it; an asynchronous call still pending when
// it is destroyed completes with an error (plugin_closed) rather than never.
template <interface Interface, class Policy>
  requires transport_policy<Policy, Interface>
class plugin {
  using connection = typename Policy::template connection<Interface>;

 public:
  explicit plugin(std::unique_ptr<connection> c) noexcept
      : connection_(std::move(c)), target_(connection_->target()) {}

  // The target is kept here, not asked of the connection each time: one load
  // fewer per call, which is most of the price of an in_process call.
  Interface* operator->() const noexcept { return target_; }
  Interface& operator*() const noexcept { return *target_; }
  connection& transport() noexcept { return *connection_; }

  // p.with_timeout(100ms)->method(args): this one call may take at most
  // `timeout` (then it fails with errc::timeout and the plugin is killed);
  // p.with_timeout(100ms).async(&Interface::method, args..., token) for an
  // asynchronous one. Only for policies whose calls can time out: a call on
  // the caller's own thread or on a worker thread cannot be abandoned safely.
  auto with_timeout(std::chrono::milliseconds timeout)
    requires Policy::calls_can_time_out
  {
    return detail::timeout_scope<plugin>(*this, timeout);
  }

  // p.with_accounting(cost)->method(args): `cost` gets what this one call
  // cost where it ran (CPU time, page faults, growth of the peak resident
  // memory: isolate/call_cost.hpp); p.with_accounting(cost).async(...) for
  // an asynchronous one, whose `cost` is filled before its handler runs.
  // A call made without it is not measured and costs nothing more.
  auto with_accounting(call_cost& cost) {
    return detail::accounting_scope<plugin, detail::marshalling_connection<connection>>(*this, cost);
  }

  // p.async(&Interface::method, args..., token): the call, completed through
  // any Asio completion token (use_future, a callback, use_awaitable, deferred).
  template <class Result, class... Params, class... ArgsAndToken>
  auto async(Result (Interface::*method)(Params...), ArgsAndToken&&... args_and_token) {
    return async_with(detail::call_settings{}, method, std::forward<ArgsAndToken>(args_and_token)...);
  }

  // As async, with a timeout and accounting of its own (with_timeout(t) and
  // with_accounting(cost) call this).
  template <class Result, class... Params, class... ArgsAndToken>
  auto async_with(detail::call_settings settings, Result (Interface::*method)(Params...),
                  ArgsAndToken&&... args_and_token) {
    static_assert(sizeof...(ArgsAndToken) == sizeof...(Params) + 1,
                  "isolate::plugin::async(&Interface::method, args..., token) takes one argument per parameter of "
                  "the method, then an Asio completion token (e.g. asio::use_future).");
    auto all = std::forward_as_tuple(std::forward<ArgsAndToken>(args_and_token)...);
    auto&& token = detail::token_of(std::move(all));
    auto values = detail::values_before_token<std::decay_t<Params>...>(std::move(all));
    using signature = typename detail::completion_signature<Result>::type;
    return asio::async_initiate<decltype(token), signature>(
        [this, method, settings](auto handler, auto arguments) {
          if constexpr (detail::marshalling_connection<connection>) {
            const std::uint16_t id = detail::method_id<Interface>(method);
            // The link reads the call's timeout and accounting when the call starts, which is now.
            struct restore {
              std::optional<std::chrono::milliseconds> timeout;
              call_cost* cost;
              ~restore() {
                detail::next_call_timeout = timeout;
                detail::next_call_cost = cost;
              }
            } restored{std::exchange(detail::next_call_timeout,
                                     settings.timeout ? settings.timeout : detail::next_call_timeout),
                       std::exchange(detail::next_call_cost, settings.cost)};
            std::apply(
                [&](const auto&... args) {
                  connection_->template async_call<Result>(id, std::move(handler), args...);
                },
                arguments);
          } else {
            run_inline<Result>(method, std::move(handler), std::move(arguments), settings.cost);
          }
        },
        token, std::move(values));
  }

 private:
  // Direct call (in_process): run now, complete through the handler's executor
  // (posted, never inline, as Asio requires of an initiating function).
  template <class Result, class Method, class Handler, class Values>
  void run_inline(Method method, Handler handler, Values values, call_cost* cost) {
    auto executor = asio::get_associated_executor(handler);
    std::exception_ptr failure;
    std::optional<detail::cost_meter> meter;
    if (cost != nullptr) meter.emplace();
    // Runs the call; measured (with_accounting) up to here, not the posting.
    const auto run = [&](auto call) {
      try {
        call();
      } catch (...) {
        failure = std::current_exception();
      }
      if (meter) *cost = detail::as_call_cost(meter->finish());
    };
    if constexpr (std::is_void_v<Result>) {
      run([&] {
        std::apply([&](auto&&... args) { (connection_->target()->*method)(std::move(args)...); }, std::move(values));
      });
      asio::post(executor, [handler = std::move(handler), failure]() mutable { std::move(handler)(failure); });
    } else {
      Result result{};
      run([&] {
        result = std::apply([&](auto&&... args) { return (connection_->target()->*method)(std::move(args)...); },
                            std::move(values));
      });
      asio::post(executor, [handler = std::move(handler), failure, result = std::move(result)]() mutable {
        std::move(handler)(failure, std::move(result));
      });
    }
  }

  std::unique_ptr<connection> connection_;
  Interface* target_;  // connection_->target(), which never changes
};

namespace detail {
template <class Interface>
void delete_plugin(void* object) noexcept {
  delete static_cast<Interface*>(object);
}
}  // namespace detail

// Loads a plugin whose code is linked into the host: `make` returns the
// implementation (called once, on the plugin's own thread where it has one).
template <interface Interface, class Policy, class Factory>
  requires transport_policy<Policy, Interface> && std::invocable<Factory&> &&
           std::convertible_to<std::invoke_result_t<Factory&>, std::unique_ptr<Interface>>
plugin<Interface, Policy> load(Factory make, const typename Policy::options& options = {}) {
  // Shared so that a move-only factory fits in a std::function.
  std::function<std::unique_ptr<Interface>()> erased = [make = std::make_shared<Factory>(std::move(make))] {
    return std::unique_ptr<Interface>((*make)());
  };
  using connection = typename Policy::template connection<Interface>;
  return plugin<Interface, Policy>(std::make_unique<connection>(std::move(erased), options));
}

// Loads a plugin linked into the host that calls back into it: `make`
// receives the plugin_context through which the plugin reaches `services`.
template <interface Interface, class Policy, class Factory>
  requires transport_policy<Policy, Interface> && std::invocable<Factory&, plugin_context&> &&
           std::convertible_to<std::invoke_result_t<Factory&, plugin_context&>, std::unique_ptr<Interface>>
plugin<Interface, Policy> load(Factory make, const typename Policy::options& options, const host_services& services) {
  auto host = std::make_shared<detail::direct_context>(services);
  auto shared_make = std::make_shared<Factory>(std::move(make));
  detail::plugin_factory<Interface> erased = [shared_make, host]() -> detail::plugin_object<Interface> {
    std::unique_ptr<Interface> made((*shared_make)(*host));
    // The context outlives the object, which may keep what it handed out.
    return detail::plugin_object<Interface>(made.release(),
                                            detail::plugin_deleter(&detail::delete_plugin<Interface>, host));
  };
  using connection = typename Policy::template connection<Interface>;
  return plugin<Interface, Policy>(std::make_unique<connection>(std::move(erased), options));
}

// Loads a plugin from an object made by the caller.
template <interface Interface, class Policy, class Impl>
  requires transport_policy<Policy, Interface> && std::derived_from<Impl, Interface>
plugin<Interface, Policy> load(std::unique_ptr<Impl> impl, const typename Policy::options& options = {}) {
  return load<Interface, Policy>(
      [impl = std::move(impl)]() mutable -> std::unique_ptr<Interface> { return std::move(impl); }, options);
}

}  // namespace isolate

#endif
