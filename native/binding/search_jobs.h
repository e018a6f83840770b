// Searches on the pool: one query (SearchJob), or a batch split into one slice per pool thread
// (BatchJob). Each holds shared_ptrs to the forest and its graph, so unload() during a search is
// safe, and copies its queries, so JS memory is never read off the JS thread. Results settle a Promise.
#pragma once

#include <napi.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "args.h"
#include "completions.h"
#include "errors.h"
#include "codes.h"
#include "forest.h"
#include "graph_search.h"
#include "index.h"
#include "search_pool.h"

namespace canopy::binding {

// What one search asks for. `exact` asks for Annoy's search over the forest alone, whatever is
// attached. Otherwise, with ef > 0 and a graph, the graph is searched from the entry points a
// search_k forest search gives (ef candidates when search_k <= 0; scored on exact distances, whether or
// not codes are loaded); else the forest's codes when it has some (native/src/codes.h); otherwise the
// forest alone answers (a shard without a graph or codes still serves).
struct SearchSpec {
  size_t k;
  int64_t search_k;
  int ef;
  bool exact;
  int64_t rerank;  // <= 0: the codes' default
};

// The snapshot a search holds: the forest and, if attached and wanted, its graph and codes.
struct Searchable {
  std::shared_ptr<const Forest> forest;
  std::shared_ptr<const Graph> graph;
  std::shared_ptr<const CodedForest> codes;

  Searchable(const Index& index, const SearchSpec& spec)
      : forest(index.forest()), graph(index.graph()), codes(spec.exact ? nullptr : index.codes()) {}

  // item >= 0: search by item, else by `query`.
  size_t run(const SearchSpec& s, const float* query, int32_t item, int32_t* ids, float* distances) const {
    if (s.ef > 0 && graph && !s.exact) {
      const GraphQuery q{s.k, s.ef, s.search_k};  // on float rows, whether or not codes are loaded
      const size_t n = item >= 0 ? graph_search_item(*forest, graph->view(), item, q, ids, distances)
                                 : graph_search_vector(*forest, graph->view(), query, q, ids, distances);
      graph->check_intact();
      return n;
    }
    if (codes) {
      return item >= 0 ? codes->search_item(item, s.k, s.search_k, s.rerank, ids, distances)
                       : codes->search_vector(query, s.k, s.search_k, s.rerank, ids, distances);
    }
    return item >= 0 ? forest->search_item(item, s.k, s.search_k, ids, distances)
                     : forest->search_vector(query, s.k, s.search_k, ids, distances);
  }
  void reset() {
    forest.reset();
    graph.reset();
    codes.reset();
  }
};

// Why a queued search was dropped instead of run (search_pool.h): the caller sees QUEUE_FULL.
inline ErrorInfo dropped_search(std::chrono::nanoseconds waited) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(waited).count();
  return {ErrorCode::QueueFull, "search queue is full (this search waited " + std::to_string(ms) +
                                    " ms while the queue stood over its target); retry later"};
}

// ---------------------------------------------------------------- one async search

class SearchJob final : public SearchTask, public Completion {
 public:
  SearchJob(Napi::Env env, AddonData* addon, Searchable target, const SearchSpec& spec)
      : deferred_(Napi::Promise::Deferred::New(env)), addon_(addon), target_(std::move(target)), spec_(spec) {
    const size_t cap = target_.forest->result_capacity(spec.k);
    ids_.resize(cap);
    distances_.resize(cap);
  }

  VectorArg query;
  int32_t item = -1;  // >= 0: search by item instead of query

  Napi::Promise promise() const { return deferred_.Promise(); }

  void run() noexcept override {
    try {
      count_ = target_.run(spec_, query.data, item, ids_.data(), distances_.data());
    } catch (...) {
      failed_ = true;
      error_ = capture_current_exception();
    }
    target_.reset();  // the mapping may go now (unload during search)
    addon_->post(this);
  }

  void drop(std::chrono::nanoseconds waited) noexcept override {
    failed_ = true;
    error_ = dropped_search(waited);
    target_.reset();
    addon_->post(this);
  }

  void settle(Napi::Env env) override {
    if (failed_) {
      deferred_.Reject(make_error(env, error_));
      return;
    }
    Napi::ArrayBuffer ids = Napi::ArrayBuffer::New(env, count_ * sizeof(int32_t));
    Napi::ArrayBuffer dists = Napi::ArrayBuffer::New(env, count_ * sizeof(float));
    if (count_ > 0) {
      std::memcpy(ids.Data(), ids_.data(), count_ * sizeof(int32_t));
      std::memcpy(dists.Data(), distances_.data(), count_ * sizeof(float));
    }
    deferred_.Resolve(make_result(env, ids, dists, 0, count_));
  }

 private:
  Napi::Promise::Deferred deferred_;
  AddonData* addon_;
  Searchable target_;
  SearchSpec spec_;
  std::vector<int32_t> ids_;
  std::vector<float> distances_;
  size_t count_ = 0;
  bool failed_ = false;
  ErrorInfo error_;
};

// ---------------------------------------------------------------- a batch of searches over the pool

class BatchJob final : public Completion {
 public:
  BatchJob(Napi::Env env, AddonData* addon, Searchable target, size_t n, const SearchSpec& spec)
      : deferred_(Napi::Promise::Deferred::New(env)), addon_(addon), target_(std::move(target)), n_(n), spec_(spec),
        cap_(target_.forest->result_capacity(spec.k)), dim_(static_cast<size_t>(target_.forest->layout().dim)) {
    queries.resize(n * dim_);
    ids_.resize(n * cap_);
    distances_.resize(n * cap_);
    counts_.resize(n);
  }

  std::vector<float> queries;  // n * dim, row-major

  Napi::Promise promise() const { return deferred_.Promise(); }

  // One slice of the batch for one pool task; the last slice to finish posts the completion.
  class Slice final : public SearchTask {
   public:
    Slice(BatchJob* batch, size_t begin, size_t end) : batch_(batch), begin_(begin), end_(end) {}
    size_t searches() const noexcept override { return end_ - begin_; }
    void run() noexcept override {
      batch_->run_range(begin_, end_);
      finish();
    }
    // One slice dropped fails the whole batch: its caller gets all of its answers or none.
    void drop(std::chrono::nanoseconds waited) noexcept override {
      batch_->fail(dropped_search(waited));
      finish();
    }

   private:
    void finish() noexcept {
      BatchJob* batch = batch_;
      delete this;
      if (batch->remaining_.fetch_sub(1) == 1) {
        batch->target_.reset();
        batch->addon_->post(batch);
      }
    }

    BatchJob* batch_;
    size_t begin_;
    size_t end_;
  };

  std::vector<SearchTask*> slices(size_t count) {
    std::vector<SearchTask*> out;
    const size_t per = (n_ + count - 1) / count;
    for (size_t b = 0; b < n_; b += per) out.push_back(new Slice(this, b, b + per < n_ ? b + per : n_));
    remaining_.store(out.size());
    return out;
  }

  void settle(Napi::Env env) override {
    if (failed_) {
      deferred_.Reject(make_error(env, error_));
      return;
    }
    Napi::ArrayBuffer ids = Napi::ArrayBuffer::New(env, ids_.size() * sizeof(int32_t));
    Napi::ArrayBuffer dists = Napi::ArrayBuffer::New(env, distances_.size() * sizeof(float));
    if (!ids_.empty()) {
      std::memcpy(ids.Data(), ids_.data(), ids_.size() * sizeof(int32_t));
      std::memcpy(dists.Data(), distances_.data(), distances_.size() * sizeof(float));
    }
    Napi::Array results = Napi::Array::New(env, n_);
    for (size_t i = 0; i < n_; ++i) results.Set(static_cast<uint32_t>(i), make_result(env, ids, dists, i * cap_, counts_[i]));
    deferred_.Resolve(results);
  }

 private:
  void run_range(size_t begin, size_t end) {
    try {
      for (size_t i = begin; i < end; ++i) {
        counts_[i] = target_.run(spec_, &queries[i * dim_], -1, &ids_[i * cap_], &distances_[i * cap_]);
      }
    } catch (...) {
      fail(capture_current_exception());
    }
  }

  void fail(ErrorInfo error) noexcept {
    std::lock_guard<std::mutex> lock(error_mu_);
    failed_ = true;
    error_ = std::move(error);
  }

  Napi::Promise::Deferred deferred_;
  AddonData* addon_;
  Searchable target_;
  size_t n_;
  SearchSpec spec_;
  size_t cap_, dim_;
  std::vector<int32_t> ids_;
  std::vector<float> distances_;
  std::vector<size_t> counts_;
  std::atomic<size_t> remaining_{0};
  std::mutex error_mu_;
  bool failed_ = false;
  ErrorInfo error_;
};

}  // namespace canopy::binding
