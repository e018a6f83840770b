#include "mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "error.h"

namespace canopy {

namespace {

// Closes a descriptor on scope exit.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;

 private:
  int fd_;
};

}  // namespace

MappedFile MappedFile::open_read_only(const std::string& path, bool prefault) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrorCode::IoError, errno_message("cannot open index file", path, errno));
  FdGuard guard(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) throw Error(ErrorCode::IoError, errno_message("cannot stat", path, errno));
  if (!S_ISREG(st.st_mode)) throw Error(ErrorCode::IoError, "index path '" + path + "' is not a regular file");
  MappedFile file;
  file.path_ = path;
  file.size_ = static_cast<size_t>(st.st_size);
  if (file.size_ == 0) return file;
  int flags = MAP_SHARED;
#ifdef MAP_POPULATE
  if (prefault) flags |= MAP_POPULATE;
#endif
  void* p = ::mmap(nullptr, file.size_, PROT_READ, flags, fd, 0);
  if (p == MAP_FAILED) throw Error(ErrorCode::IoError, errno_message("cannot mmap", path, errno));
  file.data_ = static_cast<uint8_t*>(p);
  file.prefaulted_ = prefault;
  file.guard_slot_ = MappingGuard::add(p, file.size_, path.c_str());  // on failure, ~MappedFile unmaps
  return file;  // the mapping outlives the descriptor
}

void MappedFile::release_pages() const {
  // Advice only: should it fail, the pages just stay resident.
  if (data_ != nullptr && !prefaulted_) ::madvise(data_, size_, MADV_DONTNEED);
}

void MappedFile::reset() {
  MappingGuard::remove(guard_slot_);  // before the range can be reused by another mapping
  guard_slot_ = MappingGuard::kNoSlot;
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
  prefaulted_ = false;
  path_.clear();
}

void MappedFile::swap(MappedFile& other) noexcept {
  std::swap(data_, other.data_);
  std::swap(size_, other.size_);
  std::swap(prefaulted_, other.prefaulted_);
  std::swap(path_, other.path_);
  std::swap(guard_slot_, other.guard_slot_);
}

}  // namespace canopy
