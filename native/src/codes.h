// Compact codes of a forest's items and splits, kept in its sidecar (sidecar.h), and the search that
// uses them (issue #13; bytes in docs/sidecar-format.md).
//
// The search walks the same trees as the exact one (one priority queue over all roots, search_k
// candidates), but over compact split records (int8 normals) instead of the forest's full nodes. The
// unique candidates are then scored on 1-bit codes taken after a random rotation (RaBitQ-style
// estimates) where that filter pays on the index's data (BinaryStep below), the likely ones (or all)
// scored on 8-bit codes, and the best `rerank` re-ranked with exact float distances read from the
// forest: returned distances are exact, only which candidates reach the last step is approximate.
// Manhattan has no 1-bit codes (its distance is not kept by a rotation); hamming has no codes and
// searches exactly.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "forest.h"
#include "sidecar.h"

namespace canopy {

struct CodeViews;
class CodedForest;

// Sections of a sidecar for `forest` (none for hamming). Reads every item and split once; `seed`
// draws the rotation. Throws Error InvalidArgument for dimensions above kMaxCodedDim.
std::vector<SectionData> build_code_sections(const Forest& forest, uint64_t seed);

// Which 1-bit codes a sidecar keeps: only where searches would use them (the calibration of
// CodedForest::BinaryStep, run on the written file; without them a sidecar is 16 + D/8 bytes an item
// smaller), or always (to test the 1-bit step on any data).
enum class BinaryCodes { WhereUsed, Always };

// build_code_sections, written to `path` (see write_sidecar), and that file loaded as
// CodedForest::load does with BinaryStep::Calibrate: a caller serving the codes needs no second load.
std::shared_ptr<const CodedForest> write_codes(const std::shared_ptr<const Forest>& forest, const std::string& path, uint64_t seed,
                                               BinaryCodes binary = BinaryCodes::WhereUsed);

constexpr int kMaxCodedDim = 65536;  // keeps 8-bit dot products inside int32
constexpr uint64_t kDefaultCodeSeed = 0x5eed'c0de'5eed'c0deULL;

// A forest with its checked codes. Immutable and thread-safe; holds the forest and the sidecar's
// mapping alive for as long as it is held.
class CodedForest {
 public:
  virtual ~CodedForest() = default;

  // Whether searches score candidates on 1-bit codes before the 8-bit ones. Calibrate: only if, on a
  // sample of the forest's own items as queries, the 1-bit filter keeps at most half of the
  // candidates it tests from the 8-bit step (kMaxBinaryPassShare). Each candidate it scores costs
  // its 1-bit record, each it filters out saves an 8-bit record; around one global centroid, clustered
  // data (a mixture of many clusters) gets estimates too coarse to filter: 64-82% passed at 128 to 512
  // dimensions, and those queries ran 20-25% faster without the step, where MNIST's digits passed 2%
  // and ran 25-33% faster with it.
  enum class BinaryStep { Calibrate, Use, Skip };
  static constexpr double kMaxBinaryPassShare = 0.5;
  static constexpr int kCalibrationQueries = 16;
  static constexpr int64_t kCalibrationSearchKPerTree = 40;  // 2,000 on 50 trees: recall ~0.95 on the bench sets

  // Loads `path` as the sidecar of `forest` (Sidecar::load), then checks its code sections: the
  // parameters each kind needs, sizes, finite factors, split references in range and acyclic.
  // Throws Error BadFile naming the file (IoError when it cannot be read).
  static std::shared_ptr<const CodedForest> load(std::shared_ptr<const Forest> forest, const std::string& path, bool prefault,
                                                 BinaryStep binary_step = BinaryStep::Calibrate);

  // As Forest::search_vector, through the codes. rerank: candidates re-ranked exactly (<= 0: the
  // default, kDefaultRerankPerK * k, at least kMinRerank; never fewer than k). Throws Error BadFile if
  // the forest or the sidecar changed on disk meanwhile.
  virtual size_t search_vector(const float* query, size_t k, int64_t search_k, int64_t rerank, int32_t* ids,
                               float* distances) const = 0;
  virtual size_t search_item(int32_t item, size_t k, int64_t search_k, int64_t rerank, int32_t* ids,
                             float* distances) const = 0;

  // The checked sections, into the sidecar's mapping (for the graph search: graph_search.h).
  virtual const CodeViews& views() const = 0;
  virtual bool uses_binary_step() const = 0;
  const std::shared_ptr<const Forest>& forest() const { return forest_; }
  const Sidecar& sidecar() const { return *sidecar_; }

  static constexpr size_t kDefaultRerankPerK = 2;
  static constexpr size_t kMinRerank = 10;

 protected:
  CodedForest(std::shared_ptr<const Forest> forest, std::shared_ptr<const Sidecar> sidecar)
      : forest_(std::move(forest)), sidecar_(std::move(sidecar)) {}

  void check_intact(bool saw_bad_reference) const;

  std::shared_ptr<const Forest> forest_;
  std::shared_ptr<const Sidecar> sidecar_;
};

}  // namespace canopy
