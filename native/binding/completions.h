// Completions back on the JS thread: pool threads post finished work through one thread-safe function
// per environment, referenced only while work is pending so it never keeps the process alive.
#pragma once

#include <napi.h>

#include <vector>

#include "search_pool.h"

namespace canopy::binding {

// Work that finished on another thread and settles its Promise on the JS thread.
class Completion {
 public:
  virtual ~Completion() = default;
  virtual void settle(Napi::Env env) = 0;
};

class AddonData;
void deliver(Napi::Env env, Napi::Function, AddonData* data, Completion* c);
using CompletionTsfn = Napi::TypedThreadSafeFunction<AddonData, Completion, deliver>;

// Per-environment state of the addon (its instance data).
class AddonData {
 public:
  explicit AddonData(Napi::Env env);

  Napi::FunctionReference error_class;
  Napi::FunctionReference index_class;

  // Called on a pool thread when a task finished; settle() will run on the JS thread.
  void post(Completion* c);
  // JS thread: hand tasks to the pool, keeping the completion channel referenced while any are out.
  // False when the pool's queue refused them (nothing was submitted).
  bool submit(Napi::Env env, const std::vector<SearchTask*>& tasks);
  void settled(Napi::Env env);

 private:
  CompletionTsfn tsfn_;
  size_t pending_ = 0;  // JS thread only
};

}  // namespace canopy::binding
