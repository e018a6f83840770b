// Reads fuzzer bytes as typed fields; past the end every field reads as zero, so any input is usable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace canopy_fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  template <class T>
  T take() {
    T value{};
    const size_t n = remaining() < sizeof(T) ? remaining() : sizeof(T);
    std::memcpy(&value, data_ + pos_, n);
    pos_ += n;
    return value;
  }

  const uint8_t* rest() const { return data_ + pos_; }
  size_t remaining() const { return size_ - pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace canopy_fuzz
