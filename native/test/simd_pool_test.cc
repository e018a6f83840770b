// Kernels of every level this CPU runs agree with each other; bounded kernels keep exact results;
// the search pool bounds its queue.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "search_pool.h"
#include "simd.h"
#include "test_main.h"

using canopy::simd::Level;

namespace {

bool runs(Level level) {
  __builtin_cpu_init();
  if (level == Level::Avx512) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  if (level == Level::Avx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return true;
}

bool close(float a, float b) { return std::fabs(a - b) <= 1e-4f * (1 + std::fabs(a)); }

}  // namespace

TEST(kernels_agree_across_levels_and_bounded_kernels_are_exact) {
  std::mt19937 g(1);
  std::normal_distribution<float> normal;
  const auto scalar = canopy::simd::kernels_for(Level::Scalar);
  for (Level level : {Level::Scalar, Level::Avx2, Level::Avx512}) {
    if (!runs(level)) continue;
    const auto k = canopy::simd::kernels_for(level);
    for (int n : {1, 3, 7, 8, 12, 15, 16, 17, 31, 64, 100, 300}) {
      std::vector<float> x(n), y(n);
      for (auto& v : x) v = normal(g);
      for (auto& v : y) v = normal(g);
      CHECK(close(k.dot(x.data(), y.data(), n), scalar.dot(x.data(), y.data(), n)));
      CHECK(close(k.dot_short_tail(x.data(), y.data(), n), scalar.dot(x.data(), y.data(), n)));
      const float l2 = k.squared_l2(x.data(), y.data(), n);
      const float l1 = k.l1(x.data(), y.data(), n);
      CHECK(close(l2, scalar.squared_l2(x.data(), y.data(), n)));
      CHECK(close(l1, scalar.l1(x.data(), y.data(), n)));
      // Not beyond the bound: bit-identical. Beyond it: anything larger than the bound.
      CHECK(k.squared_l2_bounded(x.data(), y.data(), n, l2) == l2);
      CHECK(k.l1_bounded(x.data(), y.data(), n, l1) == l1);
      CHECK(k.squared_l2_bounded(x.data(), y.data(), n, l2 * 0.1f) > l2 * 0.1f);
      CHECK(k.l1_bounded(x.data(), y.data(), n, l1 * 0.1f) > l1 * 0.1f);
    }
    // Many at once: each result bit-identical to the single dot product.
    for (int n : {3, 12, 20, 100}) {
      std::vector<std::vector<float>> xs(9, std::vector<float>(n));
      std::vector<float> q(n);
      for (auto& v : q) v = normal(g);
      std::vector<const float*> ptrs;
      for (auto& x : xs) {
        for (auto& v : x) v = normal(g);
        ptrs.push_back(x.data());
      }
      std::vector<float> out(9);
      k.dot_many(q.data(), ptrs.data(), 9, n, out.data());
      for (int i = 0; i < 9; ++i) CHECK(out[i] == k.dot(q.data(), ptrs[i], n));
    }
    const uint64_t a[2] = {0xF0F0ULL, 1}, b[2] = {0x0FF0ULL, 0};
    CHECK(k.hamming(a, b, 2) == 9);
  }
}

namespace {

// Runs once the gate opens; counts itself done whether run or dropped.
class CountingTask : public canopy::SearchTask {
 public:
  CountingTask(std::atomic<int>* done, std::atomic<bool>* gate) : done_(done), gate_(gate) {}
  void run() noexcept override {
    while (!gate_->load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    done_->fetch_add(1);
    delete this;
  }
  void drop(std::chrono::nanoseconds) noexcept override {
    done_->fetch_add(1);
    delete this;
  }

 private:
  std::atomic<int>* done_;
  std::atomic<bool>* gate_;
};

}  // namespace

TEST(search_pool_runs_tasks_and_refuses_past_its_bound) {
  std::atomic<int> done{0};
  std::atomic<bool> gate{false};
  {
    canopy::SearchPool pool(1, {2, std::chrono::nanoseconds(0)});
    CHECK(pool.try_submit({new CountingTask(&done, &gate)}));  // taken by the worker, blocks on the gate
    while (pool.stats().running != 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CHECK(pool.try_submit({new CountingTask(&done, &gate), new CountingTask(&done, &gate)}));
    CountingTask* extra = new CountingTask(&done, &gate);
    CHECK(!pool.try_submit({extra}));  // queue of 2 is full: refused at once
    delete extra;
    CHECK(pool.stats().queued == 2);
    CHECK(pool.stats().max_queue == 2);
    gate.store(true);
  }  // the destructor drains the queue and joins
  CHECK(done.load() == 3);
}

namespace {

// Sleeps `ms` per search it stands for, then counts itself done; dropped, it counts itself done at once.
class SleepingTask : public canopy::SearchTask {
 public:
  SleepingTask(std::atomic<int>* done, size_t searches, int ms, std::atomic<int>* dropped = nullptr)
      : done_(done), searches_(searches), ms_(ms), dropped_(dropped) {}
  void run() noexcept override {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms_ * static_cast<int>(searches_)));
    done_->fetch_add(1);
    delete this;
  }
  void drop(std::chrono::nanoseconds) noexcept override {
    if (dropped_ != nullptr) dropped_->fetch_add(1);
    done_->fetch_add(1);
    delete this;
  }
  size_t searches() const noexcept override { return searches_; }

 private:
  std::atomic<int>* done_;
  size_t searches_;
  int ms_;
  std::atomic<int>* dropped_;
};

void wait_until(const std::atomic<int>& done, int n) {
  while (done.load() < n) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

}  // namespace

TEST(queue_admission_refuses_only_a_standing_queue) {
  using std::chrono::milliseconds;
  const canopy::AdmissionBounds b{milliseconds(2), milliseconds(20)};
  const auto t0 = canopy::QueueAdmission::Clock::time_point{} + std::chrono::hours(1);
  canopy::QueueAdmission a;
  // A burst: the oldest waits over the target, then the queue drains before an interval has passed.
  a.observe(t0, milliseconds(5), b);
  CHECK(a.admits(t0, milliseconds(5), b));
  a.observe(t0 + milliseconds(19), milliseconds(24), b);
  CHECK(a.admits(t0 + milliseconds(19), milliseconds(24), b));
  a.observe(t0 + milliseconds(20), milliseconds(0), b);
  CHECK(!a.shedding());
  // Over the target for a whole interval: standing; a call that would wait over the target is refused.
  a.observe(t0 + milliseconds(30), milliseconds(3), b);
  a.observe(t0 + milliseconds(50), milliseconds(3), b);
  CHECK(a.shedding());
  CHECK(!a.admits(t0 + milliseconds(50), milliseconds(3), b));
  a.observe(t0 + milliseconds(55), milliseconds(1), b);
  CHECK(a.admits(t0 + milliseconds(55), milliseconds(1), b));
  // A refusal counts as the queue still standing: shedding lasts an interval past the last one.
  a.observe(t0 + milliseconds(60), milliseconds(0), b);
  CHECK(!a.admits(t0 + milliseconds(60), milliseconds(4), b));
  a.observe(t0 + milliseconds(79), milliseconds(0), b);
  CHECK(a.shedding());
  a.observe(t0 + milliseconds(80), milliseconds(0), b);
  CHECK(!a.shedding());
  CHECK(a.admits(t0 + milliseconds(80), milliseconds(50), b));
}

TEST(search_pool_refuses_once_its_queue_stands_over_the_target) {
  std::atomic<int> done{0};
  std::atomic<bool> gate{false};
  {
    // Room for 1000 tasks; a wait over 1 ms that lasts 20 ms (the least interval) is a standing queue.
    canopy::SearchPool pool(1, {1000, std::chrono::milliseconds(1)});
    CHECK(pool.try_submit({new CountingTask(&done, &gate)}));  // holds the thread
    while (pool.stats().running != 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    // Calls keep coming while nothing finishes: admitted at first (a burst may drain), refused once it stands.
    int admitted = 0;
    bool refused = false;
    for (int i = 0; i < 200 && !refused; ++i) {
      CountingTask* t = new CountingTask(&done, &gate);
      if (pool.try_submit({t})) {
        ++admitted;
      } else {
        delete t;
        refused = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(refused);
    CHECK(admitted >= 2);
    CHECK(pool.stats().queued_wait >= std::chrono::milliseconds(20));
    gate.store(true);
    wait_until(done, admitted + 1);
    CHECK(pool.stats().queued_wait.count() == 0);
    CHECK(pool.try_submit({new SleepingTask(&done, 1, 1)}));  // drained: an empty queue admits
  }
}

TEST(search_pool_once_shedding_admits_only_a_short_wait) {
  std::atomic<int> done{0};
  std::atomic<int> dropped{0};
  int submitted = 0;
  {
    // One thread, tasks of 3 ms offered every 0.5 ms (6x what it can run): the queue stands within the
    // first interval; from the first refusal on, a call is admitted only with at most one task ahead
    // (the target is the 3 ms run time), so an accepted call waits about one run, not a queue's worth;
    // and the tasks queued before it began, which have waited over two runs when a thread takes them,
    // are dropped (settled as refused) instead of run.
    canopy::SearchPool pool(1, {1000, std::chrono::milliseconds(1)});
    bool shedding = false;
    size_t longest_admitted_queue = 0;
    int admitted_while_shedding = 0;
    for (int i = 0; i < 400; ++i) {
      SleepingTask* task = new SleepingTask(&done, 1, 3, &dropped);
      if (pool.try_submit({task})) {
        ++submitted;
        if (shedding) {
          longest_admitted_queue = std::max(longest_admitted_queue, pool.stats().queued);
          ++admitted_while_shedding;
        }
      } else {
        delete task;
        shedding = true;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    CHECK(shedding);
    CHECK(admitted_while_shedding > 10);  // still serving at its own pace
    CHECK(longest_admitted_queue <= 2);
  }
  CHECK(dropped.load() > 0);
  CHECK(done.load() == submitted);
}

namespace {

// What `probe` returns when run on a search pool worker.
int on_worker(int (*probe)()) {
  std::atomic<int> out{-100};
  class Probe : public canopy::SearchTask {
   public:
    Probe(int (*probe)(), std::atomic<int>* out) : probe_(probe), out_(out) {}
    void run() noexcept override {
      out_->store(probe_());
      delete this;
    }
    void drop(std::chrono::nanoseconds) noexcept override { delete this; }

   private:
    int (*probe_)();
    std::atomic<int>* out_;
  };
  {
    canopy::SearchPool pool(1, {4, std::chrono::nanoseconds(0)});
    CHECK(pool.try_submit({new Probe(probe, &out)}));
  }
  return out.load();
}

int thread_nice() {
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
  return errno == 0 ? nice : -100;
}

}  // namespace

// Searches compete with the host's other work at the process's own priority: workers at a lower one
// were starved by any busy process on the host (see docs/design.md, "Overload").
TEST(search_pool_workers_run_at_the_process_priority) {
  const int process_nice = thread_nice();
  CHECK(process_nice != -100);
  CHECK(on_worker(thread_nice) == process_nice);
}

// SCHED_BATCH keeps that share but never preempts the submitting thread (the event loop) on wake-up.
TEST(search_pool_workers_run_as_batch_threads) {
  CHECK(on_worker([] { return sched_getscheduler(0); }) == SCHED_BATCH);
}
