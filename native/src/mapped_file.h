// Read-only, shared memory mapping of a whole file (move-only RAII). Several processes mapping the
// same index share one copy in the page cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

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

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void reset();
  void swap(MappedFile& other) noexcept;

  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace canopy
