#include "search_pool_binding.h"

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include "args.h"
#include "errors.h"

namespace canopy::binding {
namespace {

struct PoolConfig {
  size_t threads = 0;  // 0: one per core
  SearchPoolLimits limits{SearchPool::kDefaultMaxQueue, std::chrono::nanoseconds(0)};
};

std::mutex g_pool_mu;
PoolConfig g_pool_config;
SearchPool* g_pool = nullptr;  // never destroyed: workers may outlive any one environment

std::string milliseconds(std::chrono::nanoseconds t) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f ms", static_cast<double>(t.count()) / 1e6);
  return text;
}

}  // namespace

SearchPool& pool() {
  std::lock_guard<std::mutex> lock(g_pool_mu);
  if (g_pool == nullptr) g_pool = new SearchPool(g_pool_config.threads, g_pool_config.limits);
  return *g_pool;
}

Napi::Error queue_full(Napi::Env env) {
  const SearchPoolStats s = pool().stats();
  std::string why = std::to_string(s.queued) + " of " + std::to_string(s.max_queue) + " pending";
  if (s.max_wait.count() > 0) why += ", the oldest waiting ~" + milliseconds(s.queued_wait) + ", target " + milliseconds(s.max_wait);
  return Napi::Error(env, make_error(env, {ErrorCode::QueueFull, "search queue is full (" + why + "); retry later"}));
}

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

}  // namespace canopy::binding
