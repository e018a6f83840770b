// Argument checks shared by every binding method (one helper per kind of argument), and the shape
// of a search result ({ids: Int32Array, distances: Float32Array}). Failures throw EngineErrors.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace canopy::binding {

double number_arg(const Napi::Value& v, const char* name);
int64_t integer_arg(const Napi::Value& v, const char* name, int64_t min, int64_t max);
// An item id: a non-negative int32 (OUT_OF_RANGE beyond).
int32_t item_arg(const Napi::Value& v, const char* name);
std::string string_arg(const Napi::Value& v, const char* name);
// search_k: undefined or <= 0 means Annoy's default (n_trees * k).
int64_t search_k_arg(const Napi::Value& v);
size_t k_arg(const Napi::Value& v);
// ef: undefined, null or 0 means no graph search (Annoy's forest search).
int ef_arg(const Napi::Value& v);
// exact: undefined or null means false.
bool exact_arg(const Napi::Value& v);
// rerank: undefined or null means the default (-1).
int64_t rerank_arg(const Napi::Value& v);
void check_finite(Napi::Env env, const float* p, size_t n, const char* what);

// A vector argument: a Float32Array read in place, or a number[] copied. `copy` forces a private
// copy (async work must not read JS memory that may change or be detached meanwhile).
struct VectorArg {
  const float* data = nullptr;
  std::vector<float> owned;
};

void read_vector(const Napi::Value& v, size_t dim, const char* what, bool copy, VectorArg* out);

// {ids, distances} viewing `count` results from `offset` in the two buffers.
Napi::Object make_result(Napi::Env env, Napi::ArrayBuffer ids, Napi::ArrayBuffer dists, size_t offset, size_t count);

}  // namespace canopy::binding
