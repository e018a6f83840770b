#include "search_pool.h"

namespace canopy {

SearchPool::SearchPool(size_t threads, size_t max_queue) : max_queue_(max_queue) {
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
    if (queue_.size() + tasks.size() > max_queue_) return false;
    queue_.insert(queue_.end(), tasks.begin(), tasks.end());
  }
  if (tasks.size() == 1) {
    ready_.notify_one();
  } else {
    ready_.notify_all();
  }
  return true;
}

SearchPoolStats SearchPool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {workers_.size(), queue_.size(), running_, max_queue_};
}

void SearchPool::work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to do
    SearchTask* task = queue_.front();
    queue_.pop_front();
    ++running_;
    lock.unlock();
    task->run();
    lock.lock();
    --running_;
  }
}

}  // namespace canopy
