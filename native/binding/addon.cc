// The addon's entry point: registers NativeIndex and the module functions. The binding only
// translates between JS and the C++ core (native/src); its parts:
//
// - args.*: argument checks (one helper per kind) and result objects;
// - errors.*: core errors become the JS EngineError class (registered by src/engine at load) with a
//   stable `code`;
// - search_pool_binding.*, completions.*: async searches run on the engine's SearchPool; results come
//   back through one thread-safe function per environment, referenced only while searches are pending;
// - search_jobs.h: one search or a batch on the pool;
// - index_wrap.*: the NativeIndex class; async builds run on a libuv worker that pins the object.
#include <napi.h>

#include "completions.h"
#include "index_wrap.h"
#include "search_pool_binding.h"
#include "simd.h"

namespace canopy::binding {
namespace {

// setErrorClass(EngineError): errors are created as `new EngineError(message, code)`.
Napi::Value set_error_class(const Napi::CallbackInfo& info) {
  auto* data = info.Env().GetInstanceData<AddonData>();
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "setErrorClass needs a constructor");
  data->error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

void keep_addon_data(Napi::Env, AddonData*) {}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  // Never freed: pool threads may still post completions while an environment (a worker thread)
  // shuts down, and the thread-safe function tolerates that only while its owner exists.
  auto* data = new AddonData(env);
  env.SetInstanceData<AddonData, keep_addon_data>(data);
  Napi::Function index_class = define_index_class(env);
  data->index_class = Napi::Persistent(index_class);
  exports.Set("NativeIndex", index_class);
  exports.Set("setErrorClass", Napi::Function::New<set_error_class>(env, "setErrorClass"));
  exports.Set("configureSearchPool", Napi::Function::New<configure_search_pool>(env, "configureSearchPool"));
  exports.Set("searchPoolStats", Napi::Function::New<search_pool_stats>(env, "searchPoolStats"));
  exports.Set("simdLevel", Napi::String::New(env, simd::level_name(simd::kKernels.level)));
  return exports;
}

}  // namespace
}  // namespace canopy::binding

static Napi::Object InitCanopy(Napi::Env env, Napi::Object exports) { return canopy::binding::init(env, exports); }

NODE_API_MODULE(canopy, InitCanopy)