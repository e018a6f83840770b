#include "hash64.h"

#include <cstring>

namespace canopy {
namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kP3 = 0x165667B19E3779F9ULL;

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

inline uint64_t load64(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);  // the files are little-endian, as the hosts we run on
  return w;
}

// One lane step: four independent lanes keep the multiplier busy (one chain would be ~4x slower).
inline uint64_t mix_lane(uint64_t lane, uint64_t word) { return rotl(lane + word * kP2, 31) * kP1; }

inline uint64_t avalanche(uint64_t h) {
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

}  // namespace

uint64_t hash64(const void* data, size_t size, uint64_t seed) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  const uint8_t* end = p + size;
  uint64_t lanes[4] = {seed + kP1, seed + kP2, seed + kP3, seed};
  for (; end - p >= 32; p += 32) {
    for (int i = 0; i < 4; ++i) lanes[i] = mix_lane(lanes[i], load64(p + 8 * i));
  }
  uint64_t h = rotl(lanes[0], 1) + rotl(lanes[1], 7) + rotl(lanes[2], 12) + rotl(lanes[3], 18);
  h += static_cast<uint64_t>(size);
  for (; end - p >= 8; p += 8) h = rotl(h ^ (load64(p) * kP2), 27) * kP1 + kP3;
  if (p < end) {
    uint64_t tail = 0;
    std::memcpy(&tail, p, static_cast<size_t>(end - p));  // zero-padded
    h = rotl(h ^ (tail * kP1), 23) * kP2;
  }
  return avalanche(h);
}

}  // namespace canopy
