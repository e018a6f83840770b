// The code sections' layouts (docs/sidecar-format.md, kinds 1, 2, 4 and 6), shared by the builder, the
// checks at load and the search. Every section starts 64-byte aligned.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "rotation.h"

namespace canopy {

inline size_t pad64(size_t n) { return (n + 63) / 64 * 64; }
inline size_t pad4(size_t n) { return (n + 3) / 4 * 4; }

// Angular codes see vectors scaled to unit length (its distance ignores length); zero stays zero.
inline void scale_to_unit_length(float* v, int dim) {
  double sq = 0;
  for (int j = 0; j < dim; ++j) sq += static_cast<double>(v[j]) * v[j];
  if (sq > 0) {
    const float inv = static_cast<float>(1.0 / std::sqrt(sq));
    for (int j = 0; j < dim; ++j) v[j] *= inv;
  }
}

// params[] of each kind.
namespace rotation_params { enum : int { kPadded = 0, kRounds = 1, kSeedLow = 2, kSeedHigh = 3 }; }
namespace binary_params { enum : int { kPadded = 0, kWords = 1, kRecordBytes = 2 }; }
namespace scalar_params { enum : int { kDim = 0, kRecordBytes = 1, kUniformScale = 2 }; }
namespace split_params { enum : int { kDim = 0, kRecordBytes = 1, kSplits = 2, kRoots = 3 }; }

// Binary codes: centroid[padded] f32, then per item this record followed by words u64 of sign bits.
// estimate = add + scale * (2 * sum_{bit j set} v[j] - sum_j v[j]) + a per-query constant, within
// error * |v| * kBinaryConfidence of the true distance with high probability.
struct BinaryRecord {
  float add;    // +inf for a hole (an id with no item)
  float scale;
  float error;
  float reserved;  // 0
};
constexpr float kBinaryConfidence = 1.9f;  // RaBitQ's epsilon_0
inline size_t binary_record_bytes(int words) { return sizeof(BinaryRecord) + 8 * static_cast<size_t>(words); }

// Records are packed, or padded with zeros to whole cache lines when that costs less than a third of
// their bytes and saves at least an eighth of the lines a packed one touches. Packed (4-byte aligned,
// anywhere in a line), a record of whole - w bytes touches one line more than whole / 64 with
// chance (60 - w) / 64: a 100-byte record touches three lines half the time, padded to 128 always two.
// A 144-byte record touches three either way; a 784-byte one 13.2 on average against 13 padded, not
// worth 48 bytes an item.
inline size_t line_padded(size_t packed) {
  const size_t whole = pad64(packed);
  const size_t waste = whole - packed;
  const bool saves_lines = waste <= 60 && 8 * (60 - waste) >= whole;  // (60 - w) / 64 >= lines / 8
  return 3 * waste < packed && saves_lines ? whole : packed;
}
// What a reader accepts: either size, whichever rule the writer followed.
inline bool readable_record_size(size_t size, size_t packed) { return size == packed || size == pad64(packed); }

// Scalar codes: offset[dim] f32 and scale[dim] f32 (each padded to 64 bytes), then per item a record
// of dim u8 codes, zero-padded to a multiple of 4 and then maybe to whole lines (line_padded): value
// j ~ offset[j] + scale[j] * code[j]. Nothing else: at dim 128 a record is two whole cache lines,
// which a per-item factor would make three.
inline size_t packed_scalar_record_bytes(int dim) { return pad4(static_cast<size_t>(dim)); }
inline size_t scalar_record_bytes(int dim) { return line_padded(packed_scalar_record_bytes(dim)); }

// Splits: root references i32[n_roots] (padded to 64 bytes), then per split node this record followed
// by dim int8 normal components, zero-padded to a multiple of 4 and then maybe to whole lines
// (line_padded). margin = offset + scale * (normal . q).
// A reference r >= 0 is split record r; r < 0 is forest node -r - 1, an item or a bucket.
struct SplitRecord {
  int32_t children[2];
  float offset;
  float scale;
};
inline size_t packed_split_record_bytes(int dim) { return sizeof(SplitRecord) + pad4(static_cast<size_t>(dim)); }
inline size_t split_record_bytes(int dim) { return line_padded(packed_split_record_bytes(dim)); }
inline int32_t leaf_reference(int32_t node) { return -node - 1; }
inline int32_t leaf_node(int32_t reference) { return -reference - 1; }

// Views of the checked sections of one sidecar (into its mapping).
struct CodeViews {
  std::unique_ptr<Rotation> rotation;  // with binary codes only

  const float* centroid = nullptr;  // nullptr: no binary codes
  const uint8_t* binary_records = nullptr;
  int words = 0;
  size_t binary_record_size = 0;

  const float* scalar_offset = nullptr;  // nullptr: no scalar codes
  const float* scalar_scale = nullptr;
  const uint8_t* scalar_records = nullptr;
  size_t scalar_record_size = 0;

  const int32_t* roots = nullptr;  // nullptr: no splits
  int32_t n_roots = 0;
  const uint8_t* split_records = nullptr;
  int32_t n_splits = 0;
  size_t split_record_size = 0;

  const BinaryRecord* binary(int32_t item) const {
    return reinterpret_cast<const BinaryRecord*>(binary_records + binary_record_size * static_cast<size_t>(item));
  }
  const uint8_t* scalar(int32_t item) const { return scalar_records + scalar_record_size * static_cast<size_t>(item); }
  const SplitRecord* split(int32_t index) const {
    return reinterpret_cast<const SplitRecord*>(split_records + split_record_size * static_cast<size_t>(index));
  }
};

// Asks for every cache line of [p, p + bytes): a packed record may straddle one more line than its
// size in lines.
inline void prefetch_lines(const void* p, size_t bytes) {
  const uintptr_t start = reinterpret_cast<uintptr_t>(p);
  for (uintptr_t line = start & ~uintptr_t{63}; line < start + bytes; line += 64) __builtin_prefetch(reinterpret_cast<const void*>(line));
}

template <class Record, class T>
inline const T* record_payload(const Record* r) {
  return reinterpret_cast<const T*>(reinterpret_cast<const uint8_t*>(r) + sizeof(Record));
}

}  // namespace canopy
