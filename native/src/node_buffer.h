// Growable, writable node storage for building: either heap memory or a file grown with ftruncate
// and mapped MAP_SHARED (Annoy's on_disk_build), so large indexes are written straight to disk.
// New space is always zero-filled (holes must read as all-zero nodes). Move-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace canopy {

class NodeBuffer {
 public:
  static NodeBuffer in_memory(size_t node_size);
  // Creates or truncates `path`; throws Error IoError naming the path on failure.
  static NodeBuffer on_disk(const std::string& path, size_t node_size);

  NodeBuffer() = default;
  NodeBuffer(NodeBuffer&& other) noexcept { swap(other); }
  NodeBuffer& operator=(NodeBuffer&& other) noexcept {
    if (this != &other) {
      release();
      swap(other);
    }
    return *this;
  }
  NodeBuffer(const NodeBuffer&) = delete;
  NodeBuffer& operator=(const NodeBuffer&) = delete;
  ~NodeBuffer() { release(); }

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t node_size() const { return node_size_; }
  size_t capacity() const { return capacity_; }
  bool is_on_disk() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }

  // Makes room for at least `n_nodes` nodes, growing by 1.3x like Annoy to keep appends cheap.
  // Pointers into the buffer are invalidated when it grows.
  void reserve(size_t n_nodes);
  // Sets the capacity to exactly `n_nodes` (on disk: the file's final size).
  void resize_exact(size_t n_nodes);

 private:
  void set_capacity(size_t n_nodes);
  void release();
  void swap(NodeBuffer& other) noexcept;

  uint8_t* data_ = nullptr;
  size_t node_size_ = 0;
  size_t capacity_ = 0;  // in nodes
  int fd_ = -1;
  std::string path_;
};

}  // namespace canopy
