#include "node_buffer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "error.h"

namespace canopy {

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
