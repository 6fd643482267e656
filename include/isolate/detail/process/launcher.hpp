// Where worker processes are started: one thread that lives as long as the
// host process. A worker asks the kernel to kill it when its parent goes
// (PR_SET_PDEATHSIG), and for the kernel the parent is the *thread* that
// started it: a worker started by a thread pool, std::async or an init
// thread that then exits would die at once. This thread never exits before
// the process does, so a worker lives as long as its host, whichever thread
// loaded it. It also reaps the rare child that a bounded kill could not wait
// for (one stuck in the kernel), so no zombie stays behind and no caller blocks.
#ifndef ISOLATE_DETAIL_PROCESS_LAUNCHER_HPP
#define ISOLATE_DETAIL_PROCESS_LAUNCHER_HPP

#include "isolate/detail/config.hpp"
#include "isolate/detail/process/unique_fd.hpp"
#include "isolate/detail/system_call.hpp"
#include "isolate/error.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace isolate::detail {

class launcher;

// Where the process's launcher is found.
struct launcher_slot {
  std::mutex mutex;
  launcher* current = nullptr;
};
inline launcher_slot the_launcher;

class launcher {
 public:
  // The launcher of this process. A child of fork() gets a new one: its
  // parent's thread is not in it.
  static launcher& instance() {
    static const bool fork_aware = [] {
      // Held across fork(), so a child never finds it locked by a thread it does not have.
      ::pthread_atfork([] { the_launcher.mutex.lock(); }, [] { the_launcher.mutex.unlock(); },
                       [] {
                         the_launcher.current = nullptr;  // its thread stayed in the parent
                         the_launcher.mutex.unlock();
                       });
      return true;
    }();
    (void)fork_aware;
    std::lock_guard lock(the_launcher.mutex);
    if (the_launcher.current == nullptr) the_launcher.current = new launcher();  // never deleted: its thread runs until exit
    return *the_launcher.current;
  }

  // Runs `start` on the launcher's thread and returns what it returns (or
  // throws what it throws). `start` should only start a process: anything
  // it waits for, every other load waits for too.
  template <class Start>
  std::invoke_result_t<Start&> run(Start&& start) {
    std::packaged_task<std::invoke_result_t<Start&>()> task(std::forward<Start>(start));
    auto result = task.get_future();
    {
      std::lock_guard lock(mutex_);
      jobs_.emplace_back([&task] { task(); });
    }
    wake();
    return result.get();
  }

  // Calls `reap` (which must not block) whenever `pidfd` is readable, until
  // it returns true; `reap` keeps alive what it needs.
  void reap_later(int pidfd, std::function<bool()> reap) {
    {
      std::lock_guard lock(mutex_);
      stragglers_.push_back({pidfd, std::move(reap)});
    }
    wake();
  }

 private:
  struct straggler {
    int pidfd;
    std::function<bool()> reap;
  };

  launcher() : wakeup_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!wakeup_) throw error(errc::load_failed, "cannot create the launcher's eventfd: " + last_system_error().message());
    try {
      std::thread([this] { loop(); }).detach();
    } catch (const std::system_error& e) {
      throw error(errc::load_failed, std::string("cannot start the thread that starts workers: ") + e.what());
    }
  }

  void wake() noexcept {
    const std::uint64_t one = 1;
    (void)retry_on_eintr([&] { return ::write(wakeup_.get(), &one, sizeof one); });
  }

  void loop() {
    std::vector<pollfd> watched;
    for (;;) {
      std::deque<std::packaged_task<void()>> jobs;
      {
        std::lock_guard lock(mutex_);
        jobs.swap(jobs_);
        watched.assign(1, pollfd{wakeup_.get(), POLLIN, 0});
        for (const auto& s : stragglers_) watched.push_back({s.pidfd, POLLIN, 0});
      }
      for (auto& job : jobs) job();
      if (!jobs.empty()) continue;  // more may have come meanwhile
      if (retry_on_eintr([&] { return ::poll(watched.data(), watched.size(), -1); }) < 0) continue;
      std::uint64_t count = 0;
      (void)::read(wakeup_.get(), &count, sizeof count);
      std::lock_guard lock(mutex_);
      std::erase_if(stragglers_, [&](straggler& s) {
        for (const auto& w : watched) {
          if (w.fd == s.pidfd && (w.revents & POLLIN) != 0) return s.reap();
        }
        return false;
      });
    }
  }

  unique_fd wakeup_;
  std::mutex mutex_;
  std::deque<std::packaged_task<void()>> jobs_;
  std::vector<straggler> stragglers_;
};

}  // namespace isolate::detail

#endif
