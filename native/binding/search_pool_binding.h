// The process-wide search pool as JS sees it: created on first use with the settings
// configureSearchPool() gave, shared by every environment (worker thread) of the process.
#pragma once

#include <napi.h>

#include "search_pool.h"

namespace canopy::binding {

// The pool, started on first use. Never destroyed: workers may outlive any one environment.
SearchPool& pool();

// A QUEUE_FULL EngineError saying how full the queue is.
Napi::Error queue_full(Napi::Env env);

// configureSearchPool(threads | undefined, maxQueue | undefined, maxQueueWaitMs | undefined): only
// before the pool starts.
Napi::Value configure_search_pool(const Napi::CallbackInfo& info);
// searchPoolStats(): {threads, queued, running, maxQueue, maxQueueWaitMs, meanSearchMs, queuedWaitMs}.
Napi::Value search_pool_stats(const Napi::CallbackInfo& info);

}  // namespace canopy::binding
