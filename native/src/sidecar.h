// A sidecar file: extra, derived data about one forest (compact codes, compact splits, later a
// neighbour graph), kept beside the Annoy file (shard-0003.ann -> shard-0003.codes) and mapped
// read-only. Byte layout: docs/sidecar-format.md.
//
// The file is a 64-byte header, a table of sections (kind, flags, offset, size, hash, eight u32
// parameters) and the sections, each 64-byte aligned. The header names the forest it was derived
// from (metric, dim, item and node counts, file size and hash64 of its bytes), so a stale or foreign
// sidecar is refused instead of used. A new kind of section is added by giving it a new kind number:
// readers skip kinds they do not know unless the section is marked required.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "forest.h"
#include "mapped_file.h"

namespace canopy {

// Section kinds. Numbers are never reused; a reader skips an unknown kind unless it is required.
enum class SectionKind : uint32_t {
  Rotation = 1,     // random rotation of the codes (signs of a Walsh-Hadamard transform)
  BinaryCodes = 2,  // 1-bit codes and estimate factors per item
  ScalarCodesWithFactor = 3,  // retired: 8-bit records led by a float factor (see ScalarCodes)
  Splits = 4,       // compact split records and the roots, for the tree walk
  Graph = 5,        // neighbour rows per item (graph_section.h)
  ScalarCodes = 6,  // 8-bit codes per item, per-dimension scale and offset
};

// True for the kinds this build can read.
bool is_known_section_kind(uint32_t kind);
// True for kinds an earlier build wrote and this one no longer reads: a sidecar holding one is
// refused with a hint to rebuild it from its forest, which a sidecar can always be.
bool is_retired_section_kind(uint32_t kind);
const char* section_kind_name(uint32_t kind);

constexpr uint32_t kSectionRequired = 1;  // flags bit 0: a reader that does not know the kind refuses the file
using SectionParams = std::array<uint32_t, 8>;

// The forest a sidecar belongs to, as the header records it.
struct ForestIdentity {
  MetricKind metric;
  int32_t dim;
  int32_t n_items;
  int32_t n_nodes;
  uint64_t file_size;  // bytes of the Annoy file: n_nodes * node_size
  uint64_t file_hash;  // hash64 of those bytes

  // Hashes the forest's bytes (about 0.1 s per GB), then releases the pages it read
  // (MappedFile::release_pages): the process does not keep the whole forest resident for it.
  static ForestIdentity of(const Forest& forest);
};

// One section to write.
struct SectionData {
  uint32_t kind;
  uint32_t flags;
  SectionParams params;
  std::vector<uint8_t> bytes;
};

// Writes the sidecar to a temporary file beside `path`, then renames it over `path`, so a reader
// mapping the old file keeps it. Throws Error IoError naming the path.
void write_sidecar(const std::string& path, const ForestIdentity& forest, const std::vector<SectionData>& sections);

// One section of a loaded sidecar: a view into the mapping.
struct SectionView {
  uint32_t kind;
  uint32_t flags;
  SectionParams params;
  const uint8_t* data;  // 64-byte aligned
  uint64_t size;
};

// A mapped, checked sidecar. Immutable; thread-safe.
class Sidecar {
 public:
  // Maps `path` and checks everything the header and table promise: magic, version, that it belongs
  // to `forest` (metric, dim, counts, file size and hash), every section inside the file, 64-byte
  // aligned, not overlapping, of a distinct kind, with bytes matching its hash, and no required kind
  // this build does not know. Throws Error BadFile naming the file and the reason (IoError when it
  // cannot be read). Sections' contents are checked by their readers.
  static std::shared_ptr<const Sidecar> load(const std::string& path, const ForestIdentity& forest, bool prefault);

  // The section of that kind, or nullptr.
  const SectionView* find(SectionKind kind) const;
  const std::vector<SectionView>& sections() const { return sections_; }
  const std::string& path() const { return mapping_.path(); }
  size_t size_bytes() const { return mapping_.size(); }
  // True once the file shrank under the mapping (see mapping_guard.h).
  bool damaged() const { return mapping_.damaged(); }
  // After a check that read whole sections: see MappedFile::release_pages.
  void release_pages() const { mapping_.release_pages(); }

 private:
  MappedFile mapping_;
  std::vector<SectionView> sections_;
};

// "sidecar file 'PATH' WHAT": the BadFile error every check of a sidecar throws.
Error bad_sidecar(const std::string& path, const std::string& what);

}  // namespace canopy
