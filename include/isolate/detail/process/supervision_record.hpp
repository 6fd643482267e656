// What a process plugin's supervision remembers: its violations (the last
// max_kept of them, and how many in all), its recoveries (restart,
// quarantine, release), whether it is quarantined, and how its last worker
// ended; and the host's callbacks, run on each new entry.
//
// Thread safety: every member may be called from any thread at once. The
// callbacks run on the thread that records, after the record's lock is let
// go (the process link records on its io thread only).
#ifndef ISOLATE_DETAIL_PROCESS_SUPERVISION_RECORD_HPP
#define ISOLATE_DETAIL_PROCESS_SUPERVISION_RECORD_HPP

#include "isolate/detail/config.hpp"
#include "isolate/telemetry.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace isolate::detail {

class supervision_record {
 public:
  static constexpr std::size_t max_kept = 256;  // violations and recoveries each; older ones are dropped

  supervision_record(std::string plugin, supervision policy) : plugin_(std::move(plugin)), policy_(std::move(policy)) {}

  const std::string& plugin() const noexcept { return plugin_; }

  // Records a violation and tells the host. True if it brings the plugin to
  // its quarantine threshold (the caller then quarantines it).
  bool violated(violation_kind kind, std::string details, std::string action, bool crash = false) {
    violation v{std::chrono::system_clock::now(), plugin_, kind, std::move(details), std::move(action)};
    bool reached = false;
    {
      std::lock_guard lock(mutex_);
      keep(violations_, v);
      ++violation_count_;
      ++since_release_;
      reached = !quarantined_ && policy_.quarantine_after != 0 && since_release_ >= policy_.quarantine_after;
    }
    notify(policy_.on_violation, v);
    if (crash) notify(policy_.on_crash, v);
    return reached;
  }

  // Whether a violation now would bring the plugin to its threshold.
  bool next_violation_quarantines() const {
    std::lock_guard lock(mutex_);
    return !quarantined_ && policy_.quarantine_after != 0 && since_release_ + 1 >= policy_.quarantine_after;
  }

  // Quarantines the plugin; false if it already was.
  bool quarantine(std::string reason) {
    recovery r{std::chrono::system_clock::now(), plugin_, recovery_action::quarantine, std::move(reason)};
    {
      std::lock_guard lock(mutex_);
      if (quarantined_) return false;
      quarantined_ = true;
      quarantine_reason_ = r.reason;
      keep(history_, r);
    }
    notify(policy_.on_quarantine, r);
    return true;
  }

  // Lifts the quarantine: the violations count from zero again. False if
  // the plugin was not quarantined.
  bool release(std::string reason) {
    std::lock_guard lock(mutex_);
    if (!quarantined_) return false;
    quarantined_ = false;
    since_release_ = 0;
    keep(history_, recovery{std::chrono::system_clock::now(), plugin_, recovery_action::release, std::move(reason)});
    return true;
  }

  // A fresh worker replaced the last one (`reload`: one that loaded the
  // plugin's library again, maybe from another file). Either tells on_restart.
  void restarted(std::string reason, recovery_action action = recovery_action::restart) {
    recovery r{std::chrono::system_clock::now(), plugin_, action, std::move(reason)};
    {
      std::lock_guard lock(mutex_);
      keep(history_, r);
    }
    notify(policy_.on_restart, r);
  }

  bool quarantined() const {
    std::lock_guard lock(mutex_);
    return quarantined_;
  }
  std::string quarantine_reason() const {
    std::lock_guard lock(mutex_);
    return quarantine_reason_;
  }

  void worker_ended(std::string how) {
    std::lock_guard lock(mutex_);
    last_exit_ = std::move(how);
  }
  std::string last_exit() const {
    std::lock_guard lock(mutex_);
    return last_exit_;
  }

  std::vector<violation> violations() const {
    std::lock_guard lock(mutex_);
    return {violations_.begin(), violations_.end()};
  }
  std::uint64_t violation_count() const {
    std::lock_guard lock(mutex_);
    return violation_count_;
  }
  std::vector<recovery> history() const {
    std::lock_guard lock(mutex_);
    return {history_.begin(), history_.end()};
  }

 private:
  template <class Entry>
  static void keep(std::deque<Entry>& entries, Entry entry) {
    if (entries.size() == max_kept) entries.pop_front();
    entries.push_back(std::move(entry));
  }

  // The host's callback, if any; what it throws is dropped (it must not
  // take down the plugin's supervision). One callback at a time per plugin,
  // whichever thread reports (the io strand, a restart's thread, the host's
  // thread that restarts or reloads).
  template <class Callback, class Entry>
  void notify(const Callback& callback, const Entry& entry) const noexcept {
    if (!callback) return;
    std::lock_guard lock(callback_mutex_);
    try {
      callback(entry);
    } catch (...) {
    }
  }

  const std::string plugin_;
  const supervision policy_;
  mutable std::mutex mutex_;
  mutable std::recursive_mutex callback_mutex_;  // held while a callback runs (which may report again: quarantine from on_violation)
  std::deque<violation> violations_;
  std::deque<recovery> history_;
  std::uint64_t violation_count_ = 0;
  std::uint64_t since_release_ = 0;
  bool quarantined_ = false;
  std::string quarantine_reason_;
  std::string last_exit_;
};

}  // namespace isolate::detail

#endif
