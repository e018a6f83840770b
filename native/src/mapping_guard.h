// Survives index files that shrink while mapped. A MAP_SHARED mapping of a file that someone truncates
// (or rewrites in place: `cp new.ann served.ann` truncates first) raises SIGBUS at the next access to a
// page past the new end, and SIGBUS kills the process. The guard's SIGBUS handler maps anonymous zero
// pages over the faulting page of a registered mapping, marks that mapping damaged and lets the access
// resume; callers check damaged() after reading and report the file instead of its zeros.
//
// Why zeros are safe to search (checked against search.h and Forest::load): every field a search reads
// is 4- or 8-byte aligned inside its node, so each one is either its original value or zero. A zero
// n_descendants reads as an empty bucket; zero child and bucket ids are node 0, which Forest::load
// requires to be a leaf (item 0, a hole or a bucket), so no zeroed reference can form a cycle; a zero
// hamming split tests bit 0; zero vectors give finite distances. A search over any zeroed pages thus
// terminates and reads only inside the mapping.
//
// A file rewritten in place may also show other bytes without any fault (cp truncates, then writes; no
// search may touch the mapping in between). The search checks each child and bucket id and each hamming
// split against the forest's size (a compare each), skips what load would have refused, and such a
// search fails with BadFile too. Not caught: a rewrite whose references all stay in range (a file of the
// same layout and size, say) answers from the new bytes; garbage whose splits form a cycle can loop.
//
// Linux-specific (si_addr of a SIGBUS from a file mapping). Process-wide and lock-free: the handler
// only reads and writes atomics and makes one mmap call.
#pragma once

#include <cstddef>
#include <cstdint>

namespace canopy {

class MappingGuard {
 public:
  static constexpr size_t kMaxMappings = 4096;
  static constexpr int kNoSlot = -1;

  // Registers [begin, begin + bytes); installs the handler on first use. Returns the slot, or throws
  // Error IoError naming `path` when every slot is taken or the handler cannot be installed.
  static int add(const void* begin, size_t bytes, const char* path);
  // Forgets a slot (before the range is unmapped); kNoSlot is ignored.
  static void remove(int slot);
  // True once a SIGBUS hit the slot's range: some of its pages now read as zeros.
  static bool damaged(int slot);
};

}  // namespace canopy
