#include "search_pool.h"

#include <algorithm>

#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#endif

namespace canopy {

namespace {

// The mean search and task times follow recent runs: each run moves them 1/16 of the way to its own.
constexpr double kMeanWeight = 1.0 / 16;

void follow(double& mean, double sample) { mean = mean == 0 ? sample : mean + kMeanWeight * (sample - mean); }

// SCHED_BATCH: the same CPU share as SCHED_OTHER, but the thread never preempts another when it wakes.
void run_as_batch() {
#ifdef __linux__
  sched_param none{};
  pthread_setschedparam(pthread_self(), SCHED_BATCH, &none);  // best effort: an error leaves SCHED_OTHER
#endif
}

std::chrono::nanoseconds as_ns(double ns) { return std::chrono::nanoseconds(static_cast<int64_t>(ns)); }

}  // namespace

SearchPool::SearchPool(size_t threads, SearchPoolLimits limits) : limits_(limits) {
  if (threads == 0) threads = std::thread::hardware_concurrency() > 0 ? std::thread::hardware_concurrency() : 1;
  workers_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
}

SearchPool::~SearchPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  ready_.notify_all();
  for (auto& w : workers_) w.join();
}

bool SearchPool::try_submit(const std::vector<SearchTask*>& tasks) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() + tasks.size() > limits_.max_queue) return false;
    const auto now = QueueAdmission::Clock::now();
    if (!admits_locked(now)) return false;
    for (SearchTask* t : tasks) queue_.push_back({t, now});
  }
  if (tasks.size() == 1) {
    ready_.notify_one();
  } else {
    ready_.notify_all();
  }
  return true;
}

std::chrono::nanoseconds SearchPool::oldest_wait_locked(QueueAdmission::Clock::time_point now) const {
  return queue_.empty() ? std::chrono::nanoseconds(0) : now - queue_.front().since;
}

AdmissionBounds SearchPool::bounds_locked() const {
  const auto task = as_ns(mean_task_ns_);
  const auto interval = std::max<std::chrono::nanoseconds>(kMinStandingInterval, task * kStandingIntervalTasks);
  return {std::max(limits_.max_wait, task), interval};
}

// A queue of at most one task per thread is never standing, however long its head has waited: it drains
// within one task's run time once the running ones end (the head waits on slow searches, say on a busy
// host, not on a backlog). CoDel likewise never drops while less than a packet is queued.
std::chrono::nanoseconds SearchPool::backlog_wait_locked(QueueAdmission::Clock::time_point now) const {
  return queue_.size() <= workers_.size() ? std::chrono::nanoseconds(0) : oldest_wait_locked(now);
}

// How long a call queued now would wait for the tasks ahead of it, at the recent mean run time.
std::chrono::nanoseconds SearchPool::expected_wait_locked() const {
  return as_ns(static_cast<double>(queue_.size()) * mean_task_ns_ / static_cast<double>(workers_.size()));
}

// Without a latency bound only the count refuses; otherwise the queue's state decides (queue_admission.h).
bool SearchPool::admits_locked(QueueAdmission::Clock::time_point now) {
  if (limits_.max_wait.count() == 0) return true;
  const AdmissionBounds bounds = bounds_locked();
  const auto backlog = backlog_wait_locked(now);
  admission_.observe(now, backlog, bounds);
  // A head that has waited long already says the queue is not moving, whatever the mean run time says.
  return admission_.admits(now, std::max(backlog, expected_wait_locked()), bounds);
}

void SearchPool::record_run(std::chrono::nanoseconds elapsed, size_t searches) {
  const auto ns = static_cast<double>(elapsed.count());
  follow(mean_task_ns_, ns);
  if (searches > 0) follow(mean_search_ns_, ns / static_cast<double>(searches));
}

SearchPoolStats SearchPool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {workers_.size(), queue_.size(), running_, limits_.max_queue, limits_.max_wait,
          as_ns(mean_search_ns_), oldest_wait_locked(QueueAdmission::Clock::now())};
}

void SearchPool::work() {
  run_as_batch();
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to do
    const Queued next = queue_.front();
    queue_.pop_front();
    SearchTask* task = next.task;
    const size_t searches = task->searches();
    const auto start = QueueAdmission::Clock::now();
    if (limits_.max_wait.count() > 0) {
      const AdmissionBounds bounds = bounds_locked();
      admission_.observe(start, backlog_wait_locked(start), bounds);
      const auto waited = start - next.since;
      if (admission_.shedding() && waited > bounds.target * kDropAfterTargets) {
        lock.unlock();
        task->drop(std::chrono::duration_cast<std::chrono::nanoseconds>(waited));  // may delete the task
        lock.lock();
        continue;
      }
    }
    ++running_;
    lock.unlock();
    task->run();  // may delete the task
    const auto elapsed = QueueAdmission::Clock::now() - start;
    lock.lock();
    --running_;
    record_run(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed), searches);
  }
}

}  // namespace canopy
