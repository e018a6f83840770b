#include "sidecar.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "hash64.h"

namespace canopy {
namespace {

constexpr char kMagic[8] = {'C', 'A', 'N', 'O', 'P', 'Y', 'S', 'C'};
constexpr uint32_t kFormatVersion = 1;
constexpr uint64_t kAlign = 64;

// The first 64 bytes of the file (little-endian, as every field below).
struct Header {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;  // 64
  uint32_t metric;        // MetricKind's order: angular 0, euclidean 1, manhattan 2, dot 3, hamming 4
  uint32_t dim;
  uint32_t n_items;
  uint32_t n_nodes;
  uint64_t forest_size;
  uint64_t forest_hash;
  uint32_t section_count;
  uint32_t reserved;
  uint64_t header_hash;  // hash64 of bytes 0..55 followed by the section table
};
static_assert(sizeof(Header) == 64 && offsetof(Header, forest_size) == 32 && offsetof(Header, header_hash) == 56,
              "the header layout is part of the file format");

// One entry of the section table, which follows the header.
struct TableEntry {
  uint32_t kind;
  uint32_t flags;
  uint64_t offset;
  uint64_t size;
  uint64_t hash;  // hash64 of the section's bytes
  uint32_t params[8];
};
static_assert(sizeof(TableEntry) == 64 && offsetof(TableEntry, params) == 32, "the table layout is part of the file format");

uint64_t align_up(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

uint64_t header_hash(const Header& header, const TableEntry* table, uint32_t count) {
  std::vector<uint8_t> bytes(offsetof(Header, header_hash) + sizeof(TableEntry) * count);
  std::memcpy(bytes.data(), &header, offsetof(Header, header_hash));
  if (count > 0) std::memcpy(bytes.data() + offsetof(Header, header_hash), table, sizeof(TableEntry) * count);
  return hash64(bytes.data(), bytes.size());
}

std::string hex(uint64_t v) {
  char text[20];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(v));
  return text;
}

std::string describe_forest(uint32_t metric, uint32_t dim) {
  const char* name = metric <= static_cast<uint32_t>(MetricKind::Hamming) ? metric_name(static_cast<MetricKind>(metric)) : "unknown metric";
  return std::string(name) + ", dim " + std::to_string(dim);
}

void write_all(int fd, const uint8_t* p, size_t left, const std::string& path) {
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(ErrorCode::IoError, errno_message("cannot write sidecar file", path, errno));
    p += n;
    left -= static_cast<size_t>(n);
  }
}

// Closes the temporary file and removes it unless commit() renamed it into place.
class TempFile {
 public:
  explicit TempFile(const std::string& target) : path_(target + ".tmp-" + std::to_string(::getpid())) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(ErrorCode::IoError, errno_message("cannot create sidecar file", path_, errno));
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  int fd() const { return fd_; }
  void commit(const std::string& target) {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw Error(ErrorCode::IoError, errno_message("cannot close sidecar file", path_, errno));
    if (::rename(path_.c_str(), target.c_str()) != 0) {
      throw Error(ErrorCode::IoError, errno_message("cannot rename sidecar file into place", target, errno));
    }
    committed_ = true;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

bool is_known_section_kind(uint32_t kind) {
  return kind >= static_cast<uint32_t>(SectionKind::Rotation) && kind <= static_cast<uint32_t>(SectionKind::ScalarCodes) &&
         !is_retired_section_kind(kind);
}

bool is_retired_section_kind(uint32_t kind) { return kind == static_cast<uint32_t>(SectionKind::ScalarCodesWithFactor); }

const char* section_kind_name(uint32_t kind) {
  switch (static_cast<SectionKind>(kind)) {
    case SectionKind::Rotation: return "rotation";
    case SectionKind::BinaryCodes: return "binary codes";
    case SectionKind::ScalarCodesWithFactor: return "scalar codes with factors";
    case SectionKind::ScalarCodes: return "scalar codes";
    case SectionKind::Splits: return "splits";
    case SectionKind::Graph: return "neighbour graph";
  }
  return "unknown";
}

Error bad_sidecar(const std::string& path, const std::string& what) {
  return Error(ErrorCode::BadFile, "sidecar file '" + path + "' " + what);
}

ForestIdentity ForestIdentity::of(const Forest& forest) {
  const NodeLayout& layout = forest.layout();
  const uint64_t size = layout.node_size * static_cast<uint64_t>(forest.n_nodes());
  const uint64_t hash = forest.content_hash();
  // Hashing read every page, and so may a build or check just before; a search reads fewer.
  forest.storage().mapping.release_pages();
  return {layout.metric, layout.dim, forest.n_items(), forest.n_nodes(), size, hash};
}

void write_sidecar(const std::string& path, const ForestIdentity& forest, const std::vector<SectionData>& sections) {
  Header header{};
  std::memcpy(header.magic, kMagic, sizeof kMagic);
  header.version = kFormatVersion;
  header.header_bytes = sizeof(Header);
  header.metric = static_cast<uint32_t>(forest.metric);
  header.dim = static_cast<uint32_t>(forest.dim);
  header.n_items = static_cast<uint32_t>(forest.n_items);
  header.n_nodes = static_cast<uint32_t>(forest.n_nodes);
  header.forest_size = forest.file_size;
  header.forest_hash = forest.file_hash;
  header.section_count = static_cast<uint32_t>(sections.size());
  std::vector<TableEntry> table(sections.size());
  uint64_t offset = align_up(sizeof(Header) + sizeof(TableEntry) * sections.size());
  for (size_t i = 0; i < sections.size(); ++i) {
    const SectionData& s = sections[i];
    table[i] = {s.kind, s.flags, offset, s.bytes.size(), hash64(s.bytes.data(), s.bytes.size()), {}};
    std::copy(s.params.begin(), s.params.end(), table[i].params);
    offset = align_up(offset + s.bytes.size());
  }
  header.header_hash = header_hash(header, table.data(), header.section_count);

  TempFile file(path);
  static const uint8_t kZeros[kAlign] = {};
  uint64_t written = 0;
  auto put = [&](const void* p, size_t n) {
    write_all(file.fd(), static_cast<const uint8_t*>(p), n, path);
    written += n;
  };
  auto pad = [&]() { put(kZeros, align_up(written) - written); };
  put(&header, sizeof header);
  put(table.data(), sizeof(TableEntry) * table.size());
  for (const SectionData& s : sections) {
    pad();
    put(s.bytes.data(), s.bytes.size());
  }
  pad();
  file.commit(path);
}

namespace {

void check_header(const std::string& path, const MappedFile& mapping, const ForestIdentity& forest, Header* out) {
  const size_t size = mapping.size();
  if (size < sizeof(Header)) {
    throw bad_sidecar(path, "is " + std::to_string(size) + " bytes, shorter than the 64-byte header (truncated?)");
  }
  Header& h = *out;
  std::memcpy(&h, mapping.data(), sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) throw bad_sidecar(path, "is not a Canopy sidecar (no CANOPYSC magic)");
  if (h.version != kFormatVersion) {
    throw bad_sidecar(path, "has format version " + std::to_string(h.version) + "; this build reads version " +
                                std::to_string(kFormatVersion));
  }
  if (h.header_bytes != sizeof(Header)) throw bad_sidecar(path, "has a header of " + std::to_string(h.header_bytes) + " bytes, not 64");
  const uint64_t table_end = sizeof(Header) + uint64_t{sizeof(TableEntry)} * h.section_count;
  if (table_end > size) {
    throw bad_sidecar(path, "is " + std::to_string(size) + " bytes, too short for its table of " + std::to_string(h.section_count) +
                                " sections (truncated?)");
  }
  const auto* table = reinterpret_cast<const TableEntry*>(mapping.data() + sizeof(Header));
  if (header_hash(h, table, h.section_count) != h.header_hash) throw bad_sidecar(path, "is corrupt: its header hash does not match");
  if (h.metric != static_cast<uint32_t>(forest.metric) || h.dim != static_cast<uint32_t>(forest.dim)) {
    throw bad_sidecar(path, "belongs to another forest (" + describe_forest(h.metric, h.dim) + "), not this one (" +
                                describe_forest(static_cast<uint32_t>(forest.metric), static_cast<uint32_t>(forest.dim)) + ")");
  }
  if (h.n_items != static_cast<uint32_t>(forest.n_items) || h.n_nodes != static_cast<uint32_t>(forest.n_nodes) ||
      h.forest_size != forest.file_size || h.forest_hash != forest.file_hash) {
    throw bad_sidecar(path, "is stale: written for a forest of " + std::to_string(h.n_items) + " items, " + std::to_string(h.n_nodes) +
                                " nodes, " + std::to_string(h.forest_size) + " bytes, hash " + hex(h.forest_hash) + "; this forest has " +
                                std::to_string(forest.n_items) + " items, " + std::to_string(forest.n_nodes) + " nodes, " +
                                std::to_string(forest.file_size) + " bytes, hash " + hex(forest.file_hash) + "; rebuild it (canopy codes)");
  }
}

std::vector<SectionView> check_sections(const std::string& path, const MappedFile& mapping, const Header& h) {
  const auto* table = reinterpret_cast<const TableEntry*>(mapping.data() + sizeof(Header));
  const uint64_t table_end = sizeof(Header) + uint64_t{sizeof(TableEntry)} * h.section_count;
  const uint64_t size = mapping.size();
  std::vector<SectionView> sections;
  for (uint32_t i = 0; i < h.section_count; ++i) {
    TableEntry e;
    std::memcpy(&e, &table[i], sizeof e);
    const std::string which = "section " + std::to_string(i) + " (" + section_kind_name(e.kind) + ", kind " + std::to_string(e.kind) + ")";
    if (e.offset % kAlign != 0) throw bad_sidecar(path, "is corrupt: " + which + " starts at " + std::to_string(e.offset) + ", not 64-byte aligned");
    if (e.offset < table_end) throw bad_sidecar(path, "is corrupt: " + which + " overlaps the section table");
    if (e.offset > size || e.size > size - e.offset) {
      throw bad_sidecar(path, "is truncated: " + which + " ends at byte " + std::to_string(e.offset + e.size) + " of a " +
                                  std::to_string(size) + "-byte file");
    }
    for (const SectionView& s : sections) {
      if (s.kind == e.kind) throw bad_sidecar(path, "is corrupt: " + which + " appears twice");
      const uint64_t s_offset = static_cast<uint64_t>(s.data - mapping.data());
      if (e.offset < s_offset + s.size && s_offset < e.offset + e.size) throw bad_sidecar(path, "is corrupt: " + which + " overlaps another section");
    }
    if (is_retired_section_kind(e.kind)) {
      throw bad_sidecar(path, "holds " + which + ", a layout this build no longer reads: rebuild the sidecar from its forest (canopy codes)");
    }
    if (!is_known_section_kind(e.kind) && (e.flags & kSectionRequired) != 0) {
      throw bad_sidecar(path, "needs " + which + ", which this build does not know (written by a newer Canopy?)");
    }
    if (hash64(mapping.data() + e.offset, e.size) != e.hash) throw bad_sidecar(path, "is corrupt: " + which + " does not match its hash");
    SectionView view{e.kind, e.flags, {}, mapping.data() + e.offset, e.size};
    std::copy(std::begin(e.params), std::end(e.params), view.params.begin());
    sections.push_back(view);
  }
  return sections;
}

}  // namespace

std::shared_ptr<const Sidecar> Sidecar::load(const std::string& path, const ForestIdentity& forest, bool prefault) {
  auto sidecar = std::make_shared<Sidecar>();
  sidecar->mapping_ = MappedFile::open_read_only(path, prefault);
  Header header;
  check_header(path, sidecar->mapping_, forest, &header);
  sidecar->sections_ = check_sections(path, sidecar->mapping_, header);
  if (sidecar->damaged()) throw bad_sidecar(path, "changed on disk while it was being read (truncated?)");
  sidecar->release_pages();  // hashing read every section; a search reads fewer
  return sidecar;
}

const SectionView* Sidecar::find(SectionKind kind) const {
  for (const SectionView& s : sections_) {
    if (s.kind == static_cast<uint32_t>(kind)) return &s;
  }
  return nullptr;
}

}  // namespace canopy
