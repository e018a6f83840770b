#include "index_wrap.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "completions.h"
#include "errors.h"
#include "index.h"
#include "search_jobs.h"
#include "search_pool_binding.h"

namespace canopy::binding {
namespace {

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

}  // namespace

Napi::Function define_index_class(Napi::Env env) { return IndexWrap::define(env); }

}  // namespace canopy::binding
