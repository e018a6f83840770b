// hash64: a fast 64-bit non-cryptographic hash that ties a sidecar to its forest and detects damaged
// bytes. Not a defence against a deliberate forgery (the manifest's sha256 is); its exact definition is
// in docs/sidecar-format.md so other tools can compute it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace canopy {

// Hashes `size` bytes, read as little-endian 64-bit words; about 10 GB/s on one core.
uint64_t hash64(const void* data, size_t size, uint64_t seed = 0);

}  // namespace canopy
