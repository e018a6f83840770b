#include "args.h"

#include <cmath>

#include "errors.h"

namespace canopy::binding {

double number_arg(const Napi::Value& v, const char* name) {
  if (!v.IsNumber()) throw_engine(v.Env(), ErrorCode::InvalidArgument, std::string(name) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t integer_arg(const Napi::Value& v, const char* name, int64_t min, int64_t max) {
  const double d = number_arg(v, name);
  if (!std::isfinite(d) || std::floor(d) != d) {
    throw_engine(v.Env(), ErrorCode::InvalidArgument, std::string(name) + " must be an integer, got " + std::to_string(d));
  }
  if (d < static_cast<double>(min) || d > static_cast<double>(max)) {
    throw_engine(v.Env(), ErrorCode::InvalidArgument,
                 std::string(name) + " must be between " + std::to_string(min) + " and " + std::to_string(max) +
                     ", got " + std::to_string(static_cast<int64_t>(d)));
  }
  return static_cast<int64_t>(d);
}

int32_t item_arg(const Napi::Value& v, const char* name) {
  const double d = number_arg(v, name);
  if (!std::isfinite(d) || std::floor(d) != d) {
    throw_engine(v.Env(), ErrorCode::InvalidArgument, std::string(name) + " must be an integer, got " + std::to_string(d));
  }
  if (d < 0 || d > 2147483646.0) {
    throw_engine(v.Env(), ErrorCode::OutOfRange, std::string(name) + " " + std::to_string(static_cast<int64_t>(d)) + " is out of range");
  }
  return static_cast<int32_t>(d);
}

std::string string_arg(const Napi::Value& v, const char* name) {
  if (!v.IsString() || v.As<Napi::String>().Utf8Value().empty()) {
    throw_engine(v.Env(), ErrorCode::InvalidArgument, std::string(name) + " must be a non-empty string");
  }
  return v.As<Napi::String>().Utf8Value();
}

int64_t search_k_arg(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return -1;
  return integer_arg(v, "searchK", INT64_MIN / 2, INT64_MAX / 2);
}

int ef_arg(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return 0;
  return static_cast<int>(integer_arg(v, "ef", 0, 1 << 20));
}

void check_finite(Napi::Env env, const float* p, size_t n, const char* what) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(p[i])) {
      throw_engine(env, ErrorCode::InvalidArgument,
                   std::string(what) + "[" + std::to_string(i) + "] is " + (std::isnan(p[i]) ? "NaN" : "infinite") +
                       "; vectors must be finite");
    }
  }
}

void read_vector(const Napi::Value& v, size_t dim, const char* what, bool copy, VectorArg* out) {
  Napi::Env env = v.Env();
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
    auto a = v.As<Napi::Float32Array>();
    if (a.ElementLength() != dim) {
      throw_engine(env, ErrorCode::InvalidArgument, std::string(what) + " has wrong length (expected " +
                                                        std::to_string(dim) + ", got " + std::to_string(a.ElementLength()) + ")");
    }
    check_finite(env, a.Data(), dim, what);
    if (copy) {
      out->owned.assign(a.Data(), a.Data() + dim);
      out->data = out->owned.data();
    } else {
      out->data = a.Data();
    }
    return;
  }
  if (!v.IsArray()) throw_engine(env, ErrorCode::InvalidArgument, std::string(what) + " must be a Float32Array or an array of numbers");
  auto a = v.As<Napi::Array>();
  if (a.Length() != dim) {
    throw_engine(env, ErrorCode::InvalidArgument, std::string(what) + " has wrong length (expected " + std::to_string(dim) +
                                                      ", got " + std::to_string(a.Length()) + ")");
  }
  out->owned.resize(dim);
  for (uint32_t i = 0; i < dim; ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) {
      throw_engine(env, ErrorCode::InvalidArgument, std::string(what) + "[" + std::to_string(i) + "] is not a number");
    }
    out->owned[i] = static_cast<float>(e.As<Napi::Number>().DoubleValue());
  }
  check_finite(env, out->owned.data(), dim, what);
  out->data = out->owned.data();
}

Napi::Object make_result(Napi::Env env, Napi::ArrayBuffer ids, Napi::ArrayBuffer dists, size_t offset, size_t count) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("ids", Napi::Int32Array::New(env, count, ids, offset * sizeof(int32_t)));
  r.Set("distances", Napi::Float32Array::New(env, count, dists, offset * sizeof(float)));
  return r;
}

size_t k_arg(const Napi::Value& v) { return static_cast<size_t>(integer_arg(v, "k", 1, INT32_MAX)); }

bool exact_arg(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return false;
  if (!v.IsBoolean()) throw_engine(v.Env(), ErrorCode::InvalidArgument, "exact must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

int64_t rerank_arg(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return -1;
  return integer_arg(v, "rerank", 1, INT32_MAX);
}

}  // namespace canopy::binding
