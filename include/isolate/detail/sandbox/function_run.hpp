// The host's side of one run of isolate::sandbox: a run's processes started
// by the fork server and under their limits (prepared_run), then the call
// sent to them and its result, exception or ending read back, bounded in
// size and time (call_prepared). The runner is not trusted: every frame it
// sends is bounded, and its ending is judged from what its PID 1 (or its
// parent) reports, which it cannot forge.
#ifndef ISOLATE_DETAIL_SANDBOX_FUNCTION_RUN_HPP
#define ISOLATE_DETAIL_SANDBOX_FUNCTION_RUN_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/codec.hpp"
#include "isolate/detail/process/child.hpp"
#include "isolate/detail/process/unique_fd.hpp"
#include "isolate/detail/sandbox/fork_server.hpp"
#include "isolate/detail/sandbox/function_call.hpp"
#include "isolate/detail/sandbox/refusal.hpp"
#include "isolate/detail/sandbox/seccomp_notify.hpp"
#include "isolate/detail/sandbox/worker_limits.hpp"
#include "isolate/detail/system_call.hpp"
#include "isolate/error.hpp"
#include "isolate/limits.hpp"
#include "isolate/run_report.hpp"
#include "isolate/wire/exception_codec.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace isolate::detail::sandbox {

using run_clock = std::chrono::steady_clock;
using run_deadline = std::optional<run_clock::time_point>;

// Reads `size` bytes by the deadline: false at its end (timed_out set), at
// EOF or on an error. Meanwhile answers the run's refused system calls
// (`supervisor`, if any), and keeps a descriptor sent with the bytes (`passed`).
inline bool read_by(int fd, void* data, std::size_t size, run_deadline deadline, bool& timed_out,
                    seccomp_supervisor* supervisor = nullptr, unique_fd* passed = nullptr) {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    int wait_ms = -1;
    if (deadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - run_clock::now()).count();
      if (left <= 0) {
        timed_out = true;
        return false;
      }
      wait_ms = static_cast<int>(std::min<long long>(left, 1 << 30));
    }
    pollfd ready[2] = {{fd, POLLIN, 0}, {supervisor != nullptr ? supervisor->native_handle() : -1, POLLIN, 0}};
    const int polled = retry_on_eintr([&] { return ::poll(ready, 2, wait_ms); });
    if (polled < 0) return false;
    if (ready[1].revents != 0 && supervisor->handle_pending().hung_up) supervisor->close();
    if ((ready[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;  // the deadline check above decides
    std::array<char, CMSG_SPACE(sizeof(int))> control{};
    iovec piece{p, size};
    msghdr msg{};
    msg.msg_iov = &piece;
    msg.msg_iovlen = 1;
    if (passed != nullptr) {
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
    }
    // recvmsg only where a descriptor may come: the report is a pipe.
    const auto n = retry_on_eintr([&] {
      return passed != nullptr ? ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT) : ::read(fd, p, size);
    });
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n <= 0) return false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); passed != nullptr && c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      int received = -1;
      std::memcpy(&received, CMSG_DATA(c), sizeof received);
      *passed = unique_fd(received);
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// A frame from the runner: at most `most` bytes, by the deadline.
inline std::optional<std::vector<std::byte>> read_frame_by(int fd, std::size_t most, run_deadline deadline,
                                                           bool& timed_out, bool& too_large,
                                                           seccomp_supervisor* supervisor = nullptr,
                                                           unique_fd* passed = nullptr) {
  std::uint64_t size = 0;
  if (!read_by(fd, &size, sizeof size, deadline, timed_out, supervisor, passed)) return std::nullopt;
  if (size > most) {
    too_large = true;
    return std::nullopt;
  }
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  if (!read_by(fd, bytes.data(), bytes.size(), deadline, timed_out, supervisor)) return std::nullopt;
  return bytes;
}

inline void record(run_report& report, violation_kind kind, std::string details, std::string action) {
  report.violations.push_back(
      {std::chrono::system_clock::now(), report.function, kind, std::move(details), std::move(action)});
}

// Why a runner that sent no result ended, from what its parent reported.
inline error ending_of(const init_report& init, const limits::policy& policy, run_report& report) {
  exit_status status;
  status.signaled = init.code == CLD_KILLED || init.code == CLD_DUMPED;
  status.core_dumped = init.code == CLD_DUMPED;
  status.code_or_signal = init.status;
  report.ending = status.describe();
  report.cpu_user = std::chrono::microseconds(init.user_us);
  report.cpu_system = std::chrono::microseconds(init.system_us);
  report.peak_memory_bytes = static_cast<std::uint64_t>(init.max_rss_kb) * 1024;
  const auto cpu_us = init.user_us + init.system_us;
  std::string limit;
  if (policy.memory_mb != 0 && status.exited_with(worker_exit_memory_limit)) {
    limit = fmt::format("memory limit of {} MiB (RLIMIT_DATA)", policy.memory_mb);
  } else if (policy.cpu_seconds != 0 &&
             (status.killed_by(SIGXCPU) ||
              (status.killed_by(SIGKILL) && cpu_us >= static_cast<std::int64_t>(policy.cpu_seconds) * 1'000'000))) {
    limit = fmt::format("CPU time limit of {} s (RLIMIT_CPU)", policy.cpu_seconds);
  } else if (policy.file_size_mb != 0 && status.killed_by(SIGXFSZ)) {
    limit = fmt::format("file size limit of {} MiB (RLIMIT_FSIZE)", policy.file_size_mb);
  }
  if (!limit.empty()) {
    record(report, violation_kind::resource, limit, "run stopped");
    return error(errc::limit_exceeded,
                 fmt::format("{} reached its {} and was stopped ({})", report.function, limit, report.ending));
  }
  if (status.exited_with(worker_exit_failed)) {
    return error(errc::load_failed,
                 fmt::format("the sandbox of {} failed before the call ({})", report.function, report.ending));
  }
  record(report, violation_kind::crash, report.ending, "run ended");
  if (status.signaled) return error(errc::plugin_crashed, fmt::format("{} crashed: {}", report.function, report.ending));
  return error(errc::plugin_crashed,
               fmt::format("{} ended its process without returning ({})", report.function, report.ending));
}

// A run's processes, started and under their limits, waiting for a call.
// Destroying it kills C (G and R die with it: PR_SET_PDEATHSIG), so none
// outlives it; the fork server reaps C.
class prepared_run {
 public:
  // Starts one, by the deadline (10 s if none: isolate's own code runs
  // until the call). Throws what keeps it from starting: a limit that cannot
  // hold (limit_unenforceable), no namespaces (limit_unenforceable), a failed
  // fork (load_failed).
  static std::unique_ptr<prepared_run> start(const limits::policy& policy, bool namespaces, run_deadline deadline) {
    run_request request;
    request.limits.policy = policy;
    request.limits.namespaces = namespaces;
    request.limits.network_namespace = namespaces && policy.network != limits::network_isolation::none;
    int run_pair[2], report_pipe[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, run_pair) != 0) {
      throw error(errc::load_failed, "cannot make a sandbox run's socket: " + last_system_error().message());
    }
    unique_fd run_here(run_pair[0]), run_there(run_pair[1]);
    if (::pipe2(report_pipe, O_CLOEXEC) != 0) {
      throw error(errc::load_failed, "cannot make a sandbox run's pipe: " + last_system_error().message());
    }
    unique_fd report_here(report_pipe[0]), report_there(report_pipe[1]);
    auto run = std::unique_ptr<prepared_run>(new prepared_run);
    run->process_ = fork_server::instance().start(request, run_there.get(), report_there.get());
    run->run_ = std::move(run_here);
    run->report_ = std::move(report_here);
    run_there.reset();
    report_there.reset();

    bool timed_out = false, too_large = false;
    unique_fd listener;  // the runner's seccomp listener, when refusals are reported
    const auto frame = read_frame_by(run->run_.get(), 1 << 20,
                                     deadline.value_or(run_clock::now() + std::chrono::seconds(10)), timed_out,
                                     too_large, nullptr, &listener);
    if (!frame) {
      if (timed_out) throw error(errc::timeout, "the sandbox's process was not ready in time");
      run_report ignored;
      init_report init;
      bool late = false;
      if (!read_by(run->report_.get(), &init, sizeof init, run_clock::now() + std::chrono::seconds(1), late)) {
        throw error(errc::load_failed, "the sandbox's process ended before it was ready");
      }
      throw ending_of(init, policy, ignored);
    }
    limits_outcome outcome;
    decoding([&] {
      wire::input_archive archive{std::span<const std::byte>(*frame)};
      archive(outcome);
      archive.expect_end();
    });
    if (!outcome.failure.empty()) {
      throw error(errc::limit_unenforceable, "cannot run a function under these limits: " + outcome.failure);
    }
    run->limits_ = std::move(outcome.report);
    if (listener) {
      supervisor_options options;
      options.plan = seccomp_plan_of_runs(request.limits);
      run->supervisor_.emplace(std::move(listener), std::move(options));
    }
    return run;
  }

  ~prepared_run() {
    if (process_) pidfd_send_signal(process_.get(), SIGKILL);
  }
  prepared_run(const prepared_run&) = delete;
  prepared_run& operator=(const prepared_run&) = delete;

  int pidfd() const noexcept { return process_.get(); }
  int channel() const noexcept { return run_.get(); }
  int report_pipe() const noexcept { return report_.get(); }
  const limits::report& limits() const noexcept { return limits_; }
  // Answers the runner's refused system calls (report_refusals), if it sent its listener.
  seccomp_supervisor* supervisor() noexcept { return supervisor_ ? &*supervisor_ : nullptr; }

  // Whether its processes are still there (a warm run may have been killed meanwhile).
  bool alive() const noexcept {
    pollfd ends[2] = {{process_.get(), POLLIN, 0}, {run_.get(), POLLIN, 0}};
    return ::poll(ends, 2, 0) == 0;  // neither exited nor sent anything (nor hung up)
  }

 private:
  prepared_run() = default;

  unique_fd process_, run_, report_;
  limits::report limits_;
  std::optional<seccomp_supervisor> supervisor_;
};

// What a call may take and send back.
struct call_bounds {
  std::chrono::milliseconds timeout{0};  // 0: none
  std::size_t max_result_bytes = 0;
};

// Sends the call to a prepared run and returns the encoded value it
// returned; throws what it threw, or why it failed (filling `report`).
inline std::vector<std::byte> call_prepared(prepared_run& run, const call_message& call,
                                            std::span<const std::byte> arguments, const limits::policy& policy,
                                            const call_bounds& bounds, run_deadline deadline, run_report& report) {
  bool timed_out = false, too_large = false;
  auto timeout = [&] {
    pidfd_send_signal(run.pidfd(), SIGKILL);
    report.ending = fmt::format("timed out after {} ms", bounds.timeout.count());
    record(report, violation_kind::timeout, report.ending, "run killed");
    return error(errc::timeout,
                 fmt::format("{} ran past its timeout of {} ms and was killed", report.function, bounds.timeout.count()));
  };
  // The runner sent nothing more: how it ended, from its parent's report.
  auto ended = [&] {
    init_report init;
    bool late = false;
    if (!read_by(run.report_pipe(), &init, sizeof init, deadline, late)) {
      if (late) return timeout();
      report.ending = "its processes were killed";
      return error(errc::plugin_closed, report.function + "'s sandbox was killed before it could report");
    }
    return ending_of(init, policy, report);
  };
  if (!write_frames(run.channel(), {encoded(call).bytes(), arguments})) throw ended();
  // Each refusal the runner met during the call, recorded once the call is over.
  struct refusals_recorded {
    prepared_run& run;
    run_report& report;
    ~refusals_recorded() {
      if (auto* supervisor = run.supervisor()) {
        for (const auto& refused : supervisor->take_records()) {
          record(report, violation_kind_of(refused), refusal_details(refused), refusal_action(refused));
        }
      }
    }
  } const refusals{run, report};
  auto result = read_frame_by(run.channel(), bounds.max_result_bytes, deadline, timed_out, too_large,
                              run.supervisor());
  if (too_large) {
    record(report, violation_kind::protocol, "a result over max_result_bytes", "run killed");
    throw error(errc::protocol_error,
                fmt::format("{} sent a result of more than {} bytes", report.function, bounds.max_result_bytes));
  }
  if (!result) throw timed_out ? timeout() : ended();
  constexpr std::size_t head = 1 + sizeof(runner_usage);
  if (result->size() < head || std::to_integer<int>(result->front()) > static_cast<int>(result_kind::exception)) {
    record(report, violation_kind::protocol, "a malformed result", "run killed");
    throw error(errc::protocol_error, report.function + " sent a malformed result");
  }
  const auto kind = static_cast<result_kind>(std::to_integer<int>(result->front()));
  // As the runner measured itself after the call: the host does not wait
  // for its ending. (A function could misstate these, as it can its result.)
  runner_usage usage;
  std::memcpy(&usage, result->data() + 1, sizeof usage);
  report.cpu_user = std::chrono::microseconds(std::max<std::int64_t>(usage.user_us, 0));
  report.cpu_system = std::chrono::microseconds(std::max<std::int64_t>(usage.system_us, 0));
  report.peak_memory_bytes = static_cast<std::uint64_t>(std::max<std::int64_t>(usage.max_rss_kb, 0)) * 1024;
  result->erase(result->begin(), result->begin() + head);
  if (kind == result_kind::exception) {
    wire::encoded_exception thrown;
    decoding([&] {
      wire::input_archive archive{std::span<const std::byte>(*result)};
      archive(thrown);
      archive.expect_end();
    });
    report.ending = "threw " + thrown.type_name;
    report.error = errc::remote_exception;
    wire::rethrow(thrown);
  }
  report.ending = "returned";
  return std::move(*result);
}

}  // namespace isolate::detail::sandbox

#endif
