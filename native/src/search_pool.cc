#include "search_pool.h"

#include <cerrno>

#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace canopy {

namespace {

// On Linux a nice value belongs to a thread, so a worker can lower its own priority alone. Searches
// are the long-running work; the thread that admits calls and sends answers (Node's event loop)
// then takes a busy core from them at once instead of waiting its turn behind them. An idle core
// still runs a search at full speed. Best effort: elsewhere, or if refused, workers keep the
// process's priority.
void lower_own_priority(int nice_increment) {
#ifdef __linux__
  if (nice_increment <= 0) return;
  const auto tid = static_cast<id_t>(syscall(SYS_gettid));
  errno = 0;
  const int current = getpriority(PRIO_PROCESS, tid);
  if (errno == 0) setpriority(PRIO_PROCESS, tid, current + nice_increment);
#else
  (void)nice_increment;
#endif
}

// The mean search time follows recent runs: each run moves it 1/16 of the way to its own time.
constexpr double kMeanSearchWeight = 1.0 / 16;

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
    if (limits_.max_wait.count() > 0 && queued_wait_locked() > limits_.max_wait) return false;
    queue_.insert(queue_.end(), tasks.begin(), tasks.end());
    for (const SearchTask* t : tasks) queued_searches_ += t->searches();
  }
  if (tasks.size() == 1) {
    ready_.notify_one();
  } else {
    ready_.notify_all();
  }
  return true;
}

std::chrono::nanoseconds SearchPool::queued_wait_locked() const {
  const double ns = static_cast<double>(queued_searches_) * mean_search_ns_ / static_cast<double>(workers_.size());
  return std::chrono::nanoseconds(static_cast<int64_t>(ns));
}

void SearchPool::record_run(std::chrono::nanoseconds elapsed, size_t searches) {
  if (searches == 0) return;
  const double per_search = static_cast<double>(elapsed.count()) / static_cast<double>(searches);
  mean_search_ns_ = mean_search_ns_ == 0 ? per_search : mean_search_ns_ + kMeanSearchWeight * (per_search - mean_search_ns_);
}

SearchPoolStats SearchPool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {workers_.size(), queue_.size(), running_, limits_.max_queue, limits_.max_wait,
          std::chrono::nanoseconds(static_cast<int64_t>(mean_search_ns_)), queued_wait_locked()};
}

void SearchPool::work() {
  lower_own_priority(kWorkerNiceIncrement);
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to do
    SearchTask* task = queue_.front();
    queue_.pop_front();
    const size_t searches = task->searches();
    queued_searches_ -= searches;
    ++running_;
    lock.unlock();
    const auto start = std::chrono::steady_clock::now();
    task->run();  // may delete the task
    const auto elapsed = std::chrono::steady_clock::now() - start;
    lock.lock();
    --running_;
    record_run(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed), searches);
  }
}

}  // namespace canopy
