#include "index_wrap.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "completions.h"
#include "errors.h"
#include "graph_build.h"
#include "graph_section.h"
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
                           InstanceMethod<&IndexWrap::build_graph_sync>("buildGraphSync"),
                           InstanceMethod<&IndexWrap::build_graph_async>("buildGraph"),
                           InstanceMethod<&IndexWrap::has_graph>("hasGraph"),
                           InstanceMethod<&IndexWrap::save_graph>("saveGraph"),
                           InstanceMethod<&IndexWrap::load_graph>("loadGraph"),
                           InstanceMethod<&IndexWrap::save>("save"),
                           InstanceMethod<&IndexWrap::save_codes>("saveCodes"),
                           InstanceMethod<&IndexWrap::load_codes>("loadCodes"),
                           InstanceMethod<&IndexWrap::has_codes>("hasCodes"),
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

  // Work on a libuv worker that settles a Promise. work() runs off the JS thread and touches only
  // C++ data; finish() runs on the JS thread before the Promise settles. Either may throw (the
  // Promise rejects). The JS object is pinned until then: the index must outlive the work.
  class IndexWorker : public Napi::AsyncWorker {
   public:
    IndexWorker(Napi::Env env, const char* name, IndexWrap* wrap)
        : Napi::AsyncWorker(env, name), wrap_(wrap), deferred_(Napi::Promise::Deferred::New(env)) {
      pinned_ = Napi::Persistent(wrap->Value());
    }
    Napi::Promise promise() const { return deferred_.Promise(); }

   protected:
    virtual void work() = 0;
    virtual void finish() {}
    IndexWrap* wrap_;

   private:
    void Execute() override { attempt([this] { work(); }); }
    void OnOK() override {
      if (!failed_) attempt([this] { finish(); });
      if (failed_) {
        deferred_.Reject(make_error(Env(), error_));
      } else {
        deferred_.Resolve(Env().Undefined());
      }
    }
    template <class F>
    void attempt(F&& step) {
      try {
        step();
      } catch (...) {
        failed_ = true;
        error_ = capture_current_exception();
      }
    }

    Napi::Promise::Deferred deferred_;
    Napi::ObjectReference pinned_;
    bool failed_ = false;
    ErrorInfo error_;
  };

  class BuildWorker final : public IndexWorker {
   public:
    BuildWorker(Napi::Env env, IndexWrap* wrap) : IndexWorker(env, "canopy-build", wrap) {}

   protected:
    void work() override { wrap_->index_->finish_build(); }
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

  // (threads, width?) for a graph build, checked now; width 0 or undefined: the build's choice.
  GraphBuildOptions graph_args(const Napi::CallbackInfo& info) const {
    GraphBuildOptions o;
    o.n_threads = static_cast<int>(integer_arg(info[0], "threads", 1, 1024));
    if (!info[1].IsUndefined()) o.width = static_cast<int>(integer_arg(info[1], "width", 0, kGraphMaxWidth));
    return o.resolved(index_->layout().dim);
  }

  Napi::Value build_graph_sync(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const GraphBuildOptions o = graph_args(info);
      index_->set_graph(std::make_shared<const Graph>(build_graph(*index_->forest(), o)));
      return info.Env().Undefined();
    });
  }

  // Builds over the forest snapshot on a libuv worker; searches go on meanwhile, without the graph.
  class GraphWorker final : public IndexWorker {
   public:
    GraphWorker(Napi::Env env, IndexWrap* wrap, std::shared_ptr<const Forest> forest, const GraphBuildOptions& options)
        : IndexWorker(env, "canopy-graph-build", wrap), forest_(std::move(forest)), options_(options) {}

   protected:
    void work() override {
      graph_ = std::make_shared<const Graph>(build_graph(*forest_, options_));
      forest_.reset();
    }
    void finish() override { wrap_->index_->set_graph(std::move(graph_)); }  // refused if unloaded meanwhile

   private:
    std::shared_ptr<const Forest> forest_;
    GraphBuildOptions options_;
    std::shared_ptr<const Graph> graph_;
  };

  Napi::Value build_graph_async(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const GraphBuildOptions options = graph_args(info);
      auto* worker = new GraphWorker(info.Env(), this, index_->forest(), options);
      worker->Queue();
      return worker->promise();
    });
  }

  Napi::Value has_graph(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), index_->graph() != nullptr); }

  // saveGraph(path): a sidecar holding the graph (section kind 5), tied to this forest.
  Napi::Value save_graph(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const std::string path = string_arg(info[0], "path");
      const std::shared_ptr<const Forest> forest = index_->forest();
      const std::shared_ptr<const Graph> graph = index_->graph();
      if (!graph) throw Error(ErrorCode::BadState, "cannot save a neighbour graph: the index has none (buildGraph first)");
      write_sidecar(path, ForestIdentity::of(*forest), {graph_section(*graph)});
      return info.Env().Undefined();
    });
  }

  // loadGraph(path, prefault): maps a sidecar of this forest and attaches its graph.
  Napi::Value load_graph(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const std::string path = string_arg(info[0], "path");
      const std::shared_ptr<const Forest> forest = index_->forest();
      std::shared_ptr<const Graph> graph =
          graph_of_sidecar(Sidecar::load(path, ForestIdentity::of(*forest), info[1].ToBoolean().Value()), *forest);
      if (!graph) throw bad_sidecar(path, "has no neighbour graph section");
      index_->set_graph(std::move(graph));
      return info.Env().Undefined();
    });
  }

  // saveCodes(path, seed?): writes the sidecar of codes, then searches through it.
  Napi::Value save_codes(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const std::string path = string_arg(info[0], "path");
      const uint64_t seed = info[1].IsUndefined() ? kDefaultCodeSeed : static_cast<uint64_t>(integer_arg(info[1], "seed", 0, int64_t{1} << 53));
      index_->save_codes(path, seed);
      return info.Env().Undefined();
    });
  }

  // loadCodes(path, prefault): maps a sidecar of codes beside the forest; refused ones throw BAD_FILE.
  Napi::Value load_codes(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      index_->load_codes(string_arg(info[0], "path"), info[1].ToBoolean().Value());
      return info.Env().Undefined();
    });
  }

  Napi::Value has_codes(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), index_->codes() != nullptr); }

  // (k, searchK?, ef?, exact?, rerank?) from info[1..5].
  static SearchSpec spec_args(const Napi::CallbackInfo& info) {
    return {k_arg(info[1]), search_k_arg(info[2]), ef_arg(info[3]), exact_arg(info[4]), rerank_arg(info[5])};
  }

  // searchSync(vector, k, searchK?, ef?, exact?, rerank?)
  Napi::Value search_sync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const SearchSpec spec = spec_args(info);
      const Searchable target(*index_, spec);
      VectorArg v;
      read_vector(info[0], static_cast<size_t>(target.forest->layout().dim), "query vector", false, &v);
      return sync_result(env, *target.forest, spec.k, [&](int32_t* ids, float* d) { return target.run(spec, v.data, -1, ids, d); });
    });
  }

  Napi::Value search_item_sync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const SearchSpec spec = spec_args(info);
      const Searchable target(*index_, spec);
      const int32_t item = item_arg(info[0], "item");
      return sync_result(env, *target.forest, spec.k, [&](int32_t* ids, float* d) { return target.run(spec, nullptr, item, ids, d); });
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
      const SearchSpec spec = spec_args(info);
      Searchable target(*index_, spec);
      const std::shared_ptr<const Forest> forest = target.forest;
      auto* addon = env.GetInstanceData<AddonData>();
      auto job = std::make_unique<SearchJob>(env, addon, std::move(target), spec);
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

  // searchBatch(Float32Array n*dim | Vector[], k, searchK?, ef?, exact?, rerank?)
  Napi::Value search_batch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const SearchSpec spec = spec_args(info);
      Searchable target(*index_, spec);
      const size_t dim = static_cast<size_t>(target.forest->layout().dim);
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
      auto batch = std::make_unique<BatchJob>(env, addon, std::move(target), n, spec);
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
