// JS errors from engine errors: every core Error becomes an EngineError (the class src/engine
// registers at load) carrying the core's stable `code`; exceptions stop here.
#pragma once

#include <napi.h>

#include <string>
#include <utility>

#include "error.h"

namespace canopy::binding {

struct ErrorInfo {
  ErrorCode code = ErrorCode::InvalidArgument;
  std::string message;
};

// A JS EngineError (or a plain Error with `code` before the class is registered).
Napi::Value make_error(Napi::Env env, const ErrorInfo& e);

[[noreturn]] void throw_engine(Napi::Env env, ErrorCode code, const std::string& message);

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

// Inside a catch block: what was thrown, as an ErrorInfo (for work that settles later).
ErrorInfo capture_current_exception();

}  // namespace canopy::binding
