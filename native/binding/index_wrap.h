// The JS class NativeIndex: one core Index per object; methods translate arguments and results.
#pragma once

#include <napi.h>

namespace canopy::binding {

// The NativeIndex constructor, with the static load().
Napi::Function define_index_class(Napi::Env env);

}  // namespace canopy::binding
