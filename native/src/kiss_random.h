// KISS 64-bit generator (Marsaglia), the generator Annoy seeds its builds with. Same state update,
// same default seed, so a single-threaded build with a given seed draws the same numbers as Annoy.
#pragma once

#include <cstddef>
#include <cstdint>

namespace canopy {

class Kiss64Random {
 public:
  static constexpr uint64_t kDefaultSeed = 1234567890987654321ULL;

  explicit Kiss64Random(uint64_t seed = kDefaultSeed) : x_(seed) {}

  uint64_t next() {
    z_ = 6906969069ULL * z_ + 1234567ULL;
    y_ ^= y_ << 13;
    y_ ^= y_ >> 17;
    y_ ^= y_ << 43;
    const uint64_t t = (x_ << 58) + c_;
    c_ = x_ >> 6;
    x_ += t;
    c_ += (x_ < t);
    return x_ + y_ + z_;
  }

  int flip() { return static_cast<int>(next() & 1); }
  size_t index(size_t n) { return static_cast<size_t>(next() % n); }

 private:
  uint64_t x_;
  uint64_t y_ = 362436362436362436ULL;
  uint64_t z_ = 1066149217761810ULL;
  uint64_t c_ = 123456123456123456ULL;
};

}  // namespace canopy
