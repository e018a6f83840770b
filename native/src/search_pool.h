// The engine's search threads: a fixed set of workers and a bounded queue of pending tasks.
//
// submit() never blocks: when the work ahead is too much it fails at once (the caller reports
// QUEUE_FULL), so overload is shed instead of piling up. Two bounds, either one refuses: the number
// of queued tasks (memory, a hard cap), and a standing queue (latency, see queue_admission.h): once
// the oldest queued search has waited over the target for an interval, a call is refused while the
// tasks queued ahead of it would take longer than the target to start (at the recent mean run time).
// A queue of at most one task per thread never counts as standing. The target is `max_wait`, or the
// recent mean run time of a task when that is longer, and the interval a few of those run times: a
// host that slows every search (other processes on its cores) stretches both instead of tripping
// them. An empty queue always admits. While shedding, a task that has waited over twice the target
// when a thread takes it is dropped, not run (CoDel drops at the head likewise): the calls queued
// before shedding began have waited too long already, and a router can still retry them elsewhere.
// A task's run() must not throw.
//
// The workers share cores with the thread that submits to them (a shard's event loop). They run as
// SCHED_BATCH (Linux): the same weight as other threads, so their share against other processes is
// unchanged (a lower priority starved them, see docs/design.md, "Overload"), but a worker woken by a
// new task does not preempt the thread that submitted it in the middle of its call.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "queue_admission.h"

namespace canopy {

class SearchTask {
 public:
  virtual ~SearchTask() = default;
  virtual void run() noexcept = 0;
  // Instead of run(): the pool shed this task after it had waited `waited` in the queue. It must
  // settle as refused (QUEUE_FULL) and dispose of itself as run() would.
  virtual void drop(std::chrono::nanoseconds waited) noexcept = 0;
  // How many searches run() performs: the unit the queue's wait is estimated in.
  virtual size_t searches() const noexcept { return 1; }
};

struct SearchPoolLimits {
  size_t max_queue;                     // queued tasks
  std::chrono::nanoseconds max_wait;    // least target wait of a standing queue; zero: no latency bound
};

struct SearchPoolStats {
  size_t threads;
  size_t queued;
  size_t running;
  size_t max_queue;
  std::chrono::nanoseconds max_wait;
  std::chrono::nanoseconds mean_search;  // recent mean run time of one search (zero before the first)
  std::chrono::nanoseconds queued_wait;  // how long the oldest queued task has waited (zero: none queued)
};

class SearchPool {
 public:
  static constexpr size_t kDefaultMaxQueue = 1024;
  // A standing queue's interval: this many recent task run times, and never less than the minimum.
  static constexpr size_t kStandingIntervalTasks = 8;
  static constexpr std::chrono::milliseconds kMinStandingInterval{20};
  // While shedding, a task taken after waiting over this many targets is dropped.
  static constexpr int kDropAfterTargets = 2;

  // threads == 0: one per core.
  SearchPool(size_t threads, SearchPoolLimits limits);
  ~SearchPool();
  SearchPool(const SearchPool&) = delete;
  SearchPool& operator=(const SearchPool&) = delete;

  // Queues all of `tasks` or none of them; false when a bound refuses them. Ownership of queued
  // tasks passes to their run(), which must dispose of them.
  bool try_submit(const std::vector<SearchTask*>& tasks);
  SearchPoolStats stats() const;
  size_t threads() const { return workers_.size(); }

 private:
  struct Queued {
    SearchTask* task;
    QueueAdmission::Clock::time_point since;
  };

  void work();
  void record_run(std::chrono::nanoseconds elapsed, size_t searches);
  std::chrono::nanoseconds oldest_wait_locked(QueueAdmission::Clock::time_point now) const;
  std::chrono::nanoseconds backlog_wait_locked(QueueAdmission::Clock::time_point now) const;
  std::chrono::nanoseconds expected_wait_locked() const;
  AdmissionBounds bounds_locked() const;
  bool admits_locked(QueueAdmission::Clock::time_point now);

  const SearchPoolLimits limits_;
  mutable std::mutex mu_;
  std::condition_variable ready_;
  std::deque<Queued> queue_;
  QueueAdmission admission_;
  double mean_search_ns_ = 0;
  double mean_task_ns_ = 0;
  size_t running_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace canopy
