#include "errors.h"

#include "completions.h"

namespace canopy::binding {

[[noreturn]] void throw_engine(Napi::Env env, ErrorCode code, const std::string& message) {
  throw Napi::Error(env, make_error(env, {code, message}));
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

Napi::Value make_error(Napi::Env env, const ErrorInfo& e) {
  AddonData* data = env.GetInstanceData<AddonData>();
  if (data != nullptr && !data->error_class.IsEmpty()) {
    return data->error_class.New({Napi::String::New(env, e.message), Napi::String::New(env, error_code_name(e.code))});
  }
  Napi::Error err = Napi::Error::New(env, e.message);
  err.Set("code", Napi::String::New(env, error_code_name(e.code)));
  return err.Value();
}

}  // namespace canopy::binding
