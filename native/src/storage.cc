// MappedFile and NodeBuffer: the two owners of node bytes (read-only mapping, writable build buffer).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "error.h"
#include "mapped_file.h"
#include "node_buffer.h"

namespace canopy {

std::string errno_message(const std::string& what, const std::string& path, int err) {
  return what + " '" + path + "': " + std::strerror(err);
}

namespace {

// Closes a descriptor on scope exit unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  int release() { return std::exchange(fd_, -1); }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;

 private:
  int fd_;
};

}  // namespace

// ---- MappedFile ----

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
  return file;  // the mapping outlives the descriptor
}

void MappedFile::reset() {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
  path_.clear();
}

void MappedFile::swap(MappedFile& other) noexcept {
  std::swap(data_, other.data_);
  std::swap(size_, other.size_);
  std::swap(path_, other.path_);
}

// ---- NodeBuffer ----

NodeBuffer NodeBuffer::in_memory(size_t node_size) {
  NodeBuffer b;
  b.node_size_ = node_size;
  return b;
}

NodeBuffer NodeBuffer::on_disk(const std::string& path, size_t node_size) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(ErrorCode::IoError, errno_message("cannot create on-disk index", path, errno));
  NodeBuffer b;
  b.fd_ = fd;
  b.path_ = path;
  b.node_size_ = node_size;
  return b;
}

void NodeBuffer::reserve(size_t n_nodes) {
  if (n_nodes <= capacity_) return;
  const size_t grown = static_cast<size_t>(static_cast<double>(capacity_ + 1) * 1.3);
  set_capacity(n_nodes > grown ? n_nodes : grown);
}

void NodeBuffer::resize_exact(size_t n_nodes) {
  if (n_nodes != capacity_) set_capacity(n_nodes);
}

void NodeBuffer::set_capacity(size_t n_nodes) {
  const size_t old_bytes = capacity_ * node_size_;
  const size_t new_bytes = n_nodes * node_size_;
  if (fd_ < 0) {
    if (new_bytes == 0) {
      std::free(data_);
      data_ = nullptr;
    } else {
      void* p = std::realloc(data_, new_bytes);
      if (p == nullptr) throw Error(ErrorCode::IoError, "out of memory growing the index to " + std::to_string(n_nodes) + " nodes");
      data_ = static_cast<uint8_t*>(p);
      if (new_bytes > old_bytes) std::memset(data_ + old_bytes, 0, new_bytes - old_bytes);
    }
    capacity_ = n_nodes;
    return;
  }
  // On disk: the file's new bytes read as zero; remap the whole file.
  if (::ftruncate(fd_, static_cast<off_t>(new_bytes)) != 0)
    throw Error(ErrorCode::IoError, errno_message("cannot grow on-disk index", path_, errno));
  if (data_ != nullptr) ::munmap(data_, old_bytes);
  data_ = nullptr;
  capacity_ = 0;
  if (new_bytes > 0) {
    void* p = ::mmap(nullptr, new_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) throw Error(ErrorCode::IoError, errno_message("cannot mmap on-disk index", path_, errno));
    data_ = static_cast<uint8_t*>(p);
  }
  capacity_ = n_nodes;
}

void NodeBuffer::release() {
  if (fd_ >= 0) {
    if (data_ != nullptr) ::munmap(data_, capacity_ * node_size_);
    ::close(fd_);
  } else {
    std::free(data_);
  }
  data_ = nullptr;
  capacity_ = 0;
  fd_ = -1;
}

void NodeBuffer::swap(NodeBuffer& other) noexcept {
  std::swap(data_, other.data_);
  std::swap(node_size_, other.node_size_);
  std::swap(capacity_, other.capacity_);
  std::swap(fd_, other.fd_);
  std::swap(path_, other.path_);
}

}  // namespace canopy
