// The only file that knows Node: translates JS calls into the C++ core (native/src) and back.
//
// - Arguments are checked here (one helper for vectors); core errors become the JS EngineError class
//   (registered by src/engine at load) with a stable `code`.
// - Async searches run on the engine's SearchPool; results come back through one thread-safe
//   function per environment, referenced only while searches are pending so it never keeps the
//   process alive. Jobs hold a shared_ptr to the forest, so unload() during a search is safe.
// - Async builds run on a libuv worker (AsyncWorker) that pins the JS object until it settles.
#include <napi.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "error.h"
#include "index.h"
#include "search_pool.h"

namespace canopy {
namespace {

// ---------------------------------------------------------------- errors

struct ErrorInfo {
  ErrorCode code = ErrorCode::InvalidArgument;
  std::string message;
};

class AddonData;

Napi::Value make_error(Napi::Env env, const ErrorInfo& e);

[[noreturn]] void throw_engine(Napi::Env env, ErrorCode code, const std::string& message) {
  throw Napi::Error(env, make_error(env, {code, message}));
}

// Runs `body`, turning core exceptions into JS EngineErrors.
template <class F>
Napi::Value guarded(Napi::Env env, F&& body) {
  try {
    return body();
  } catch (const Error& e) {
    throw Napi::Error(env, make_error(env, {e.code(), e.what()}));
  } catch (const std::bad_alloc&) {
    throw Napi::Error(env, make_error(env, {ErrorCode::IoError, "out of memory"}));
  }
}

ErrorInfo capture_current_exception() {
  try {
    throw;
  } catch (const Error& e) {
    return {e.code(), e.what()};
  } catch (const std::bad_alloc&) {
    return {ErrorCode::IoError, "out of memory"};
  } catch (const std::exception& e) {
    return {ErrorCode::BadState, e.what()};
  }
}

// ---------------------------------------------------------------- argument helpers

double number_arg(const Napi::Value& v, const char* name) {
  if (!v.IsNumber()) throw_engine(v.Env(), ErrorCode::InvalidArgument, std::string(name) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t integer_arg(const Napi::Value& v, const char* name, int64_t min, int64_t max) {
  const double d = number_arg(v, name);
  if (!std::isfinite(d) || std::floor(d) != d) {
    throw_engine(v.Env(), ErrorCode::InvalidArgument, std::string(name) + " must be an integer, got " + std::to_string(d));
  }
  if (d < static_cast<double>(min) || d > static_cast<double>(max)) {
    throw_engine(v.Env(), ErrorCode::InvalidArgument,
                 std::string(name) + " must be between " + std::to_string(min) + " and " + std::to_string(max) +
                     ", got " + std::to_string(static_cast<int64_t>(d)));
  }
  return static_cast<int64_t>(d);
}

int32_t item_arg(const Napi::Value& v, const char* name) {
  const double d = number_arg(v, name);
  if (!std::isfinite(d) || std::floor(d) != d) {
    throw_engine(v.Env(), ErrorCode::InvalidArgument, std::string(name) + " must be an integer, got " + std::to_string(d));
  }
  if (d < 0 || d > 2147483646.0) {
    throw_engine(v.Env(), ErrorCode::OutOfRange, std::string(name) + " " + std::to_string(static_cast<int64_t>(d)) + " is out of range");
  }
  return static_cast<int32_t>(d);
}

std::string string_arg(const Napi::Value& v, const char* name) {
  if (!v.IsString() || v.As<Napi::String>().Utf8Value().empty()) {
    throw_engine(v.Env(), ErrorCode::InvalidArgument, std::string(name) + " must be a non-empty string");
  }
  return v.As<Napi::String>().Utf8Value();
}

// search_k: undefined or <= 0 means Annoy's default (n_trees * k).
int64_t search_k_arg(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return -1;
  return integer_arg(v, "searchK", INT64_MIN / 2, INT64_MAX / 2);
}

void check_finite(Napi::Env env, const float* p, size_t n, const char* what) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(p[i])) {
      throw_engine(env, ErrorCode::InvalidArgument,
                   std::string(what) + "[" + std::to_string(i) + "] is " + (std::isnan(p[i]) ? "NaN" : "infinite") +
                       "; vectors must be finite");
    }
  }
}

// A vector argument: a Float32Array read in place, or a number[] copied. `copy` forces a private
// copy (async work must not read JS memory that may change or be detached meanwhile).
struct VectorArg {
  const float* data = nullptr;
  std::vector<float> owned;
};

void read_vector(const Napi::Value& v, size_t dim, const char* what, bool copy, VectorArg* out) {
  Napi::Env env = v.Env();
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
    auto a = v.As<Napi::Float32Array>();
    if (a.ElementLength() != dim) {
      throw_engine(env, ErrorCode::InvalidArgument, std::string(what) + " has wrong length (expected " +
                                                        std::to_string(dim) + ", got " + std::to_string(a.ElementLength()) + ")");
    }
    check_finite(env, a.Data(), dim, what);
    if (copy) {
      out->owned.assign(a.Data(), a.Data() + dim);
      out->data = out->owned.data();
    } else {
      out->data = a.Data();
    }
    return;
  }
  if (!v.IsArray()) throw_engine(env, ErrorCode::InvalidArgument, std::string(what) + " must be a Float32Array or an array of numbers");
  auto a = v.As<Napi::Array>();
  if (a.Length() != dim) {
    throw_engine(env, ErrorCode::InvalidArgument, std::string(what) + " has wrong length (expected " + std::to_string(dim) +
                                                      ", got " + std::to_string(a.Length()) + ")");
  }
  out->owned.resize(dim);
  for (uint32_t i = 0; i < dim; ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) {
      throw_engine(env, ErrorCode::InvalidArgument, std::string(what) + "[" + std::to_string(i) + "] is not a number");
    }
    out->owned[i] = static_cast<float>(e.As<Napi::Number>().DoubleValue());
  }
  check_finite(env, out->owned.data(), dim, what);
  out->data = out->owned.data();
}

Napi::Object make_result(Napi::Env env, Napi::ArrayBuffer ids, Napi::ArrayBuffer dists, size_t offset, size_t count) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("ids", Napi::Int32Array::New(env, count, ids, offset * sizeof(int32_t)));
  r.Set("distances", Napi::Float32Array::New(env, count, dists, offset * sizeof(float)));
  return r;
}

// ---------------------------------------------------------------- search pool (process-wide)

struct PoolConfig {
  size_t threads = 0;  // 0: one per core
  SearchPoolLimits limits{SearchPool::kDefaultMaxQueue, std::chrono::nanoseconds(0)};
};

std::mutex g_pool_mu;
PoolConfig g_pool_config;
SearchPool* g_pool = nullptr;  // never destroyed: workers may outlive any one environment

SearchPool& pool() {
  std::lock_guard<std::mutex> lock(g_pool_mu);
  if (g_pool == nullptr) g_pool = new SearchPool(g_pool_config.threads, g_pool_config.limits);
  return *g_pool;
}

// ---------------------------------------------------------------- completions back on the JS thread

class Completion {
 public:
  virtual ~Completion() = default;
  virtual void settle(Napi::Env env) = 0;
};

void deliver(Napi::Env env, Napi::Function, AddonData* data, Completion* c);
using CompletionTsfn = Napi::TypedThreadSafeFunction<AddonData, Completion, deliver>;

class AddonData {
 public:
  explicit AddonData(Napi::Env env) {
    tsfn_ = CompletionTsfn::New(env, "canopy-search-completions", 0, 1, this);
    tsfn_.Unref(env);
  }

  Napi::FunctionReference error_class;
  Napi::FunctionReference index_class;

  // Called on a pool thread when a task finished; settle() will run on the JS thread.
  void post(Completion* c) {
    if (tsfn_.NonBlockingCall(c) != napi_ok) delete c;  // the environment is shutting down
  }

  // JS thread: hand tasks to the pool, keeping the completion channel referenced while any are out.
  bool submit(Napi::Env env, const std::vector<SearchTask*>& tasks) {
    if (!pool().try_submit(tasks)) return false;
    if (pending_++ == 0) tsfn_.Ref(env);
    return true;
  }
  void settled(Napi::Env env) {
    if (--pending_ == 0) tsfn_.Unref(env);
  }

 private:
  CompletionTsfn tsfn_;
  size_t pending_ = 0;  // JS thread only
};

void deliver(Napi::Env env, Napi::Function, AddonData* data, Completion* c) {
  std::unique_ptr<Completion> owned(c);
  if (env == nullptr) return;
  Napi::HandleScope scope(env);
  data->settled(env);
  try {
    owned->settle(env);
  } catch (const Napi::Error& e) {  // e.g. no memory for the result arrays: surface it, do not abort
    e.ThrowAsJavaScriptException();
  }
}

Napi::Value make_error(Napi::Env env, const ErrorInfo& e) {
  AddonData* data = env.GetInstanceData<AddonData>();
  if (data != nullptr && !data->error_class.IsEmpty()) {
    return data->error_class.New({Napi::String::New(env, e.message), Napi::String::New(env, error_code_name(e.code))});
  }
  Napi::Error err = Napi::Error::New(env, e.message);
  err.Set("code", Napi::String::New(env, error_code_name(e.code)));
  return err.Value();
}

std::string milliseconds(std::chrono::nanoseconds t) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f ms", static_cast<double>(t.count()) / 1e6);
  return text;
}

Napi::Error queue_full(Napi::Env env) {
  const SearchPoolStats s = pool().stats();
  std::string why = std::to_string(s.queued) + " of " + std::to_string(s.max_queue) + " pending";
  if (s.max_wait.count() > 0) why += ", ~" + milliseconds(s.queued_wait) + " of searches ahead, at most " + milliseconds(s.max_wait);
  return Napi::Error(env, make_error(env, {ErrorCode::QueueFull, "search queue is full (" + why + "); retry later"}));
}

// ---------------------------------------------------------------- one async search

class SearchJob final : public SearchTask, public Completion {
 public:
  SearchJob(Napi::Env env, AddonData* addon, std::shared_ptr<const Forest> forest, size_t k, int64_t search_k)
      : deferred_(Napi::Promise::Deferred::New(env)), addon_(addon), forest_(std::move(forest)), k_(k), search_k_(search_k) {
    const size_t cap = forest_->result_capacity(k);
    ids_.resize(cap);
    distances_.resize(cap);
  }

  VectorArg query;
  int32_t item = -1;  // >= 0: search by item instead of query

  Napi::Promise promise() const { return deferred_.Promise(); }

  void run() noexcept override {
    try {
      count_ = item >= 0 ? forest_->search_item(item, k_, search_k_, ids_.data(), distances_.data())
                         : forest_->search_vector(query.data, k_, search_k_, ids_.data(), distances_.data());
    } catch (...) {
      failed_ = true;
      error_ = capture_current_exception();
    }
    forest_.reset();  // the mapping may go now (unload during search)
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
  std::shared_ptr<const Forest> forest_;
  size_t k_;
  int64_t search_k_;
  std::vector<int32_t> ids_;
  std::vector<float> distances_;
  size_t count_ = 0;
  bool failed_ = false;
  ErrorInfo error_;
};

// ---------------------------------------------------------------- a batch of searches over the pool

class BatchJob final : public Completion {
 public:
  BatchJob(Napi::Env env, AddonData* addon, std::shared_ptr<const Forest> forest, size_t n, size_t k, int64_t search_k)
      : deferred_(Napi::Promise::Deferred::New(env)), addon_(addon), forest_(std::move(forest)), n_(n), k_(k),
        search_k_(search_k), cap_(forest_->result_capacity(k)), dim_(static_cast<size_t>(forest_->layout().dim)) {
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
      BatchJob* batch = batch_;
      delete this;
      if (batch->remaining_.fetch_sub(1) == 1) {
        batch->forest_.reset();
        batch->addon_->post(batch);
      }
    }

   private:
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
        counts_[i] = forest_->search_vector(&queries[i * dim_], k_, search_k_, &ids_[i * cap_], &distances_[i * cap_]);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu_);
      failed_ = true;
      error_ = capture_current_exception();
    }
  }

  Napi::Promise::Deferred deferred_;
  AddonData* addon_;
  std::shared_ptr<const Forest> forest_;
  size_t n_, k_;
  int64_t search_k_;
  size_t cap_, dim_;
  std::vector<int32_t> ids_;
  std::vector<float> distances_;
  std::vector<size_t> counts_;
  std::atomic<size_t> remaining_{0};
  std::mutex error_mu_;
  bool failed_ = false;
  ErrorInfo error_;
};

// ---------------------------------------------------------------- the Index class

class IndexWrap : public Napi::ObjectWrap<IndexWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeIndex",
                       {
                           StaticMethod<&IndexWrap::load>("load"),
                           InstanceMethod<&IndexWrap::on_disk_build>("onDiskBuild"),
                           InstanceMethod<&IndexWrap::add_item>("addItem"),
                           InstanceMethod<&IndexWrap::build_sync>("buildSync"),
                           InstanceMethod<&IndexWrap::build_async>("build"),
                           InstanceMethod<&IndexWrap::trees_built>("treesBuilt"),
                           InstanceMethod<&IndexWrap::save>("save"),
                           InstanceMethod<&IndexWrap::search_sync>("searchSync"),
                           InstanceMethod<&IndexWrap::search_async>("search"),
                           InstanceMethod<&IndexWrap::search_item_sync>("searchByItemSync"),
                           InstanceMethod<&IndexWrap::search_item_async>("searchByItem"),
                           InstanceMethod<&IndexWrap::search_batch>("searchBatch"),
                           InstanceMethod<&IndexWrap::get_item_vector>("getItemVector"),
                           InstanceMethod<&IndexWrap::get_distance>("getDistance"),
                           InstanceMethod<&IndexWrap::n_items>("nItems"),
                           InstanceMethod<&IndexWrap::n_trees>("nTrees"),
                           InstanceMethod<&IndexWrap::unload>("unload"),
                       });
  }

  // new NativeIndex(metric, dim, seed?) ; NativeIndex.load(path, metric, dim, prefault) passes an
  // External holding a loaded core index instead.
  explicit IndexWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IndexWrap>(info) {
    Napi::Env env = info.Env();
    guarded(env, [&]() -> Napi::Value {
      if (info[0].IsExternal()) {
        index_.reset(info[0].As<Napi::External<Index>>().Data());
        return env.Undefined();
      }
      const MetricKind metric = parse_metric(string_arg(info[0], "metric"));
      const int dim = static_cast<int>(integer_arg(info[1], "dim", 1, 1 << 20));
      uint64_t seed = Kiss64Random::kDefaultSeed;
      if (info[2].IsBigInt()) {
        bool lossless = true;
        seed = info[2].As<Napi::BigInt>().Uint64Value(&lossless);
      } else if (!info[2].IsUndefined()) {
        seed = static_cast<uint64_t>(integer_arg(info[2], "seed", 0, (int64_t{1} << 53)));
      }
      index_ = std::make_unique<Index>(metric, dim, seed);
      return env.Undefined();
    });
  }

 private:
  static Napi::Value load(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const std::string path = string_arg(info[0], "path");
      const MetricKind metric = parse_metric(string_arg(info[1], "metric"));
      const int dim = static_cast<int>(integer_arg(info[2], "dim", 1, 1 << 20));
      const bool prefault = info[3].ToBoolean().Value();
      std::unique_ptr<Index> index = Index::load(path, metric, dim, prefault);
      auto external = Napi::External<Index>::New(env, index.get());
      Napi::Object obj = env.GetInstanceData<AddonData>()->index_class.New({external});
      index.release();  // owned by the new wrapper
      return obj;
    });
  }

  Napi::Value on_disk_build(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      index_->on_disk_build(string_arg(info[0], "path"));
      return info.Env().Undefined();
    });
  }

  Napi::Value add_item(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const int32_t item = item_arg(info[0], "item");
      VectorArg v;
      read_vector(info[1], static_cast<size_t>(index_->layout().dim), "vector", false, &v);
      index_->add_item(item, v.data);
      return info.Env().Undefined();
    });
  }

  struct BuildArgs {
    int n_trees;
    int threads;
  };
  static BuildArgs build_args(const Napi::CallbackInfo& info) {
    return {static_cast<int>(integer_arg(info[0], "nTrees", -1, 1 << 20)), static_cast<int>(integer_arg(info[1], "threads", 1, 1024))};
  }

  Napi::Value build_sync(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const BuildArgs a = build_args(info);
      index_->build(a.n_trees, a.threads);
      return info.Env().Undefined();
    });
  }

  class BuildWorker final : public Napi::AsyncWorker {
   public:
    BuildWorker(Napi::Env env, IndexWrap* wrap)
        : Napi::AsyncWorker(env, "canopy-build"), deferred_(Napi::Promise::Deferred::New(env)), wrap_(wrap) {
      pinned_ = Napi::Persistent(wrap->Value());  // the index must outlive the build
    }
    Napi::Promise promise() const { return deferred_.Promise(); }

   protected:
    void Execute() override {
      try {
        wrap_->index_->finish_build();
      } catch (...) {
        failed_ = true;
        error_ = capture_current_exception();
      }
    }
    void OnOK() override {
      if (failed_) {
        deferred_.Reject(make_error(Env(), error_));
      } else {
        deferred_.Resolve(Env().Undefined());
      }
    }

   private:
    Napi::Promise::Deferred deferred_;
    IndexWrap* wrap_;
    Napi::ObjectReference pinned_;
    bool failed_ = false;
    ErrorInfo error_;
  };

  Napi::Value build_async(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const BuildArgs a = build_args(info);
      index_->begin_build(a.n_trees, a.threads);  // refuses at once; calls made meanwhile fail
      auto* worker = new BuildWorker(info.Env(), this);
      worker->Queue();
      return worker->promise();
    });
  }

  Napi::Value trees_built(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), index_->trees_built()); }

  Napi::Value save(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      index_->save(string_arg(info[0], "path"));
      return info.Env().Undefined();
    });
  }

  static size_t k_arg(const Napi::Value& v) { return static_cast<size_t>(integer_arg(v, "k", 1, INT32_MAX)); }

  // searchSync(vector, k, searchK?)
  Napi::Value search_sync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      std::shared_ptr<const Forest> forest = index_->forest();
      VectorArg v;
      read_vector(info[0], static_cast<size_t>(forest->layout().dim), "query vector", false, &v);
      const size_t k = k_arg(info[1]);
      const int64_t search_k = search_k_arg(info[2]);
      return sync_result(env, *forest, k, [&](int32_t* ids, float* d) { return forest->search_vector(v.data, k, search_k, ids, d); });
    });
  }

  Napi::Value search_item_sync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      std::shared_ptr<const Forest> forest = index_->forest();
      const int32_t item = item_arg(info[0], "item");
      const size_t k = k_arg(info[1]);
      const int64_t search_k = search_k_arg(info[2]);
      return sync_result(env, *forest, k, [&](int32_t* ids, float* d) { return forest->search_item(item, k, search_k, ids, d); });
    });
  }

  // Searches straight into the result buffers, then views the filled part.
  template <class F>
  static Napi::Value sync_result(Napi::Env env, const Forest& forest, size_t k, F&& search) {
    const size_t cap = forest.result_capacity(k);
    Napi::ArrayBuffer ids = Napi::ArrayBuffer::New(env, cap * sizeof(int32_t));
    Napi::ArrayBuffer dists = Napi::ArrayBuffer::New(env, cap * sizeof(float));
    const size_t n = search(static_cast<int32_t*>(ids.Data()), static_cast<float*>(dists.Data()));
    return make_result(env, ids, dists, 0, n);
  }

  Napi::Value search_async(const Napi::CallbackInfo& info) { return start_search(info, false); }
  Napi::Value search_item_async(const Napi::CallbackInfo& info) { return start_search(info, true); }

  Napi::Value start_search(const Napi::CallbackInfo& info, bool by_item) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      std::shared_ptr<const Forest> forest = index_->forest();
      auto* addon = env.GetInstanceData<AddonData>();
      auto job = std::make_unique<SearchJob>(env, addon, forest, k_arg(info[1]), search_k_arg(info[2]));
      if (by_item) {
        job->item = item_arg(info[0], "item");
        if (job->item >= forest->n_items()) {
          throw Error(ErrorCode::OutOfRange, "item " + std::to_string(job->item) + " is out of range (index has " +
                                                 std::to_string(forest->n_items()) + " items)");
        }
      } else {
        read_vector(info[0], static_cast<size_t>(forest->layout().dim), "query vector", true, &job->query);
      }
      Napi::Promise promise = job->promise();
      if (!addon->submit(env, {job.get()})) throw queue_full(env);
      job.release();  // owned by the pool until it posts its completion
      return promise;
    });
  }

  // searchBatch(Float32Array n*dim | Vector[], k, searchK?)
  Napi::Value search_batch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      std::shared_ptr<const Forest> forest = index_->forest();
      const size_t dim = static_cast<size_t>(forest->layout().dim);
      const size_t k = k_arg(info[1]);
      const int64_t search_k = search_k_arg(info[2]);
      auto* addon = env.GetInstanceData<AddonData>();
      size_t n = 0;
      if (info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
        auto a = info[0].As<Napi::Float32Array>();
        if (a.ElementLength() % dim != 0) {
          throw Error(ErrorCode::InvalidArgument, "batch of queries has " + std::to_string(a.ElementLength()) +
                                                      " floats, not a multiple of dim " + std::to_string(dim));
        }
        n = a.ElementLength() / dim;
      } else if (info[0].IsArray()) {
        n = info[0].As<Napi::Array>().Length();
      } else {
        throw Error(ErrorCode::InvalidArgument, "queries must be a Float32Array (n*dim) or an array of vectors");
      }
      auto batch = std::make_unique<BatchJob>(env, addon, forest, n, k, search_k);
      if (info[0].IsTypedArray()) {
        auto a = info[0].As<Napi::Float32Array>();
        check_finite(env, a.Data(), a.ElementLength(), "queries");
        if (n > 0) std::memcpy(batch->queries.data(), a.Data(), n * dim * sizeof(float));
      } else {
        auto arr = info[0].As<Napi::Array>();
        for (uint32_t i = 0; i < n; ++i) {
          VectorArg v;
          const std::string what = "queries[" + std::to_string(i) + "]";
          read_vector(arr.Get(i), dim, what.c_str(), false, &v);
          std::memcpy(&batch->queries[i * dim], v.data, dim * sizeof(float));
        }
      }
      Napi::Promise promise = batch->promise();
      if (n == 0) {
        batch->settle(env);
        return promise;
      }
      const size_t threads = pool().threads();
      std::vector<SearchTask*> slices = batch->slices(n < threads ? n : threads);
      if (!addon->submit(env, slices)) {
        for (SearchTask* s : slices) delete s;
        throw queue_full(env);
      }
      batch.release();  // deleted by deliver() after its last slice completes
      return promise;
    });
  }

  Napi::Value get_item_vector(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const int32_t item = item_arg(info[0], "item");
      Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(index_->layout().dim));
      index_->get_item(item, out.Data());
      return out;
    });
  }

  Napi::Value get_distance(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const int32_t i = item_arg(info[0], "i");
      const int32_t j = item_arg(info[1], "j");
      return Napi::Number::New(info.Env(), index_->get_distance(i, j));
    });
  }

  Napi::Value n_items(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), index_->n_items()); }
  Napi::Value n_trees(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), index_->n_trees()); }

  Napi::Value unload(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      index_->unload();
      return info.Env().Undefined();
    });
  }

  std::unique_ptr<Index> index_;
};

// ---------------------------------------------------------------- module functions

// setErrorClass(EngineError): errors are created as `new EngineError(message, code)`.
Napi::Value set_error_class(const Napi::CallbackInfo& info) {
  auto* data = info.Env().GetInstanceData<AddonData>();
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "setErrorClass needs a constructor");
  data->error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

// configureSearchPool(threads | undefined, maxQueue | undefined, maxQueueWaitMs | undefined): only
// before the pool starts.
Napi::Value configure_search_pool(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    PoolConfig next;
    {
      std::lock_guard<std::mutex> lock(g_pool_mu);
      next = g_pool_config;
    }
    if (!info[0].IsUndefined()) next.threads = static_cast<size_t>(integer_arg(info[0], "threads", 1, 1024));
    if (!info[1].IsUndefined()) next.limits.max_queue = static_cast<size_t>(integer_arg(info[1], "maxQueue", 1, 1 << 24));
    if (!info[2].IsUndefined()) {
      next.limits.max_wait = std::chrono::milliseconds(integer_arg(info[2], "maxQueueWaitMs", 0, 3'600'000));
    }
    std::lock_guard<std::mutex> lock(g_pool_mu);
    if (g_pool != nullptr) {
      throw Error(ErrorCode::BadState, "the search pool has already started; configure it before the first search");
    }
    g_pool_config = next;
    return env.Undefined();
  });
}

Napi::Value search_pool_stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  SearchPoolStats s{};
  {
    std::lock_guard<std::mutex> lock(g_pool_mu);
    if (g_pool != nullptr) {
      s = g_pool->stats();
    } else {
      const size_t hw = std::thread::hardware_concurrency();
      const PoolConfig& c = g_pool_config;
      s = {c.threads != 0 ? c.threads : (hw > 0 ? hw : 1), 0, 0, c.limits.max_queue, c.limits.max_wait, {}, {}};
    }
  }
  o.Set("threads", Napi::Number::New(env, static_cast<double>(s.threads)));
  o.Set("queued", Napi::Number::New(env, static_cast<double>(s.queued)));
  o.Set("running", Napi::Number::New(env, static_cast<double>(s.running)));
  o.Set("maxQueue", Napi::Number::New(env, static_cast<double>(s.max_queue)));
  const auto ms = [&](std::chrono::nanoseconds t) { return Napi::Number::New(env, static_cast<double>(t.count()) / 1e6); };
  o.Set("maxQueueWaitMs", ms(s.max_wait));
  o.Set("meanSearchMs", ms(s.mean_search));
  o.Set("queuedWaitMs", ms(s.queued_wait));
  return o;
}

void keep_addon_data(Napi::Env, AddonData*) {}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  // Never freed: pool threads may still post completions while an environment (a worker thread)
  // shuts down, and the thread-safe function tolerates that only while its owner exists.
  auto* data = new AddonData(env);
  env.SetInstanceData<AddonData, keep_addon_data>(data);
  Napi::Function index_class = IndexWrap::define(env);
  data->index_class = Napi::Persistent(index_class);
  exports.Set("NativeIndex", index_class);
  exports.Set("setErrorClass", Napi::Function::New<set_error_class>(env, "setErrorClass"));
  exports.Set("configureSearchPool", Napi::Function::New<configure_search_pool>(env, "configureSearchPool"));
  exports.Set("searchPoolStats", Napi::Function::New<search_pool_stats>(env, "searchPoolStats"));
  exports.Set("simdLevel", Napi::String::New(env, simd::level_name(simd::kKernels.level)));
  return exports;
}

}  // namespace
}  // namespace canopy

static Napi::Object InitCanopy(Napi::Env env, Napi::Object exports) { return canopy::init(env, exports); }

NODE_API_MODULE(canopy, InitCanopy)
