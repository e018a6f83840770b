#include "completions.h"

#include <memory>

#include "search_pool_binding.h"

namespace canopy::binding {

AddonData::AddonData(Napi::Env env) {
  tsfn_ = CompletionTsfn::New(env, "canopy-search-completions", 0, 1, this);
  tsfn_.Unref(env);
}

void AddonData::post(Completion* c) {
  if (tsfn_.NonBlockingCall(c) != napi_ok) delete c;  // the environment is shutting down
}

bool AddonData::submit(Napi::Env env, const std::vector<SearchTask*>& tasks) {
  if (!pool().try_submit(tasks)) return false;
  if (pending_++ == 0) tsfn_.Ref(env);
  return true;
}

void AddonData::settled(Napi::Env env) {
  if (--pending_ == 0) tsfn_.Unref(env);
}

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

}  // namespace canopy::binding
