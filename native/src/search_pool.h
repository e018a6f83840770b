// The engine's search threads: a fixed set of workers and a bounded queue of pending tasks.
//
// submit() never blocks: when the tasks do not fit in the queue it fails at once (the caller reports
// QUEUE_FULL), so overload is shed instead of piling up. A task's run() must not throw.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace canopy {

class SearchTask {
 public:
  virtual ~SearchTask() = default;
  virtual void run() noexcept = 0;
};

struct SearchPoolStats {
  size_t threads;
  size_t queued;
  size_t running;
  size_t max_queue;
};

class SearchPool {
 public:
  static constexpr size_t kDefaultMaxQueue = 1024;

  // threads == 0: one per core.
  SearchPool(size_t threads, size_t max_queue);
  ~SearchPool();
  SearchPool(const SearchPool&) = delete;
  SearchPool& operator=(const SearchPool&) = delete;

  // Queues all of `tasks` or none of them; false when they do not fit. Ownership of queued tasks
  // passes to their run(), which must dispose of them.
  bool try_submit(const std::vector<SearchTask*>& tasks);
  SearchPoolStats stats() const;
  size_t threads() const { return workers_.size(); }

 private:
  void work();

  const size_t max_queue_;
  mutable std::mutex mu_;
  std::condition_variable ready_;
  std::deque<SearchTask*> queue_;
  size_t running_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace canopy
