// Read-only, shared memory mapping of a whole file (move-only RAII). Several processes mapping the
// same index share one copy in the page cache. Each mapping is registered with the MappingGuard, so a
// file truncated underneath it reads as zeros past its new end (instead of SIGBUS) and damaged() says so.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "mapping_guard.h"

namespace canopy {

class MappedFile {
 public:
  // Maps `path` read-only with MAP_SHARED; `prefault` adds MAP_POPULATE (reads every page now).
  // Throws Error IoError if the file cannot be opened, sized or mapped; an empty file maps to size 0.
  static MappedFile open_read_only(const std::string& path, bool prefault);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept { swap(other); }
  MappedFile& operator=(MappedFile&& other) noexcept {
    if (this != &other) {
      reset();
      swap(other);
    }
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() { reset(); }

  // Drops this process's page-table entries for the whole mapping (madvise MADV_DONTNEED): the pages
  // stay in the page cache and the next read maps them again, from memory. Loading checks every page
  // of a file once; without this all of them would stay resident in the process, though a search reads
  // only part of them. No-op for a prefaulted mapping (its owner asked for every page resident). The
  // bytes read stay the same, so it is safe while other threads search.
  void release_pages() const;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // True once the file shrank under the mapping and some pages now read as zeros. Thread-safe; check it
  // after reading, since the reads themselves are what finds out.
  bool damaged() const { return MappingGuard::damaged(guard_slot_); }

 private:
  void reset();
  void swap(MappedFile& other) noexcept;

  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool prefaulted_ = false;
  std::string path_;
  int guard_slot_ = MappingGuard::kNoSlot;
};

}  // namespace canopy
