#include "mapping_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <string>

#include "error.h"

namespace canopy {

namespace {

// One registered range. `seq` is odd while begin/end are being written, so the handler (which may
// interrupt a registration on its own thread) never matches a half-written range; end == 0: free.
struct Slot {
  std::atomic<uint32_t> seq{0};
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<bool> damaged{false};
};
static_assert(std::atomic<uintptr_t>::is_always_lock_free && std::atomic<uint32_t>::is_always_lock_free &&
                  std::atomic<bool>::is_always_lock_free,
              "the SIGBUS handler may only touch lock-free atomics");

Slot g_slots[MappingGuard::kMaxMappings];
std::mutex g_install_mu;
bool g_installed = false;               // under g_install_mu
struct sigaction g_previous;            // written once, before the handler can run
uintptr_t g_page_bytes = 4096;          // written once, before the handler can run

Slot* slot_containing(uintptr_t addr) {
  for (Slot& s : g_slots) {
    const uint32_t before = s.seq.load();
    if ((before & 1) != 0) continue;
    const uintptr_t begin = s.begin.load();
    const uintptr_t end = s.end.load();
    if (s.seq.load() != before) continue;
    if (addr >= begin && addr < end) return &s;
  }
  return nullptr;
}

// Replaces the page at `addr` with a private anonymous one (reads as zeros). mmap is a plain syscall
// on Linux: no locks, so it is safe here although POSIX does not list it.
bool map_zero_page(uintptr_t addr) {
  void* page = reinterpret_cast<void*>(addr & ~(g_page_bytes - 1));
  return ::mmap(page, g_page_bytes, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED;
}

// Not ours: whoever handled SIGBUS before us decides; with no one, the default action (core dump).
void forward(int sig, siginfo_t* info, void* context) {
  if ((g_previous.sa_flags & SA_SIGINFO) != 0 && g_previous.sa_sigaction != nullptr) {
    g_previous.sa_sigaction(sig, info, context);
    return;
  }
  if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  // A fault cannot be ignored: restore the default and re-raise (delivered once this handler returns;
  // a faulting access would also fault again).
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  ::raise(sig);
}

void on_sigbus(int sig, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  // BUS_ADRERR: the kernel found no file page behind the address (the file is shorter than the
  // mapping). A SIGBUS sent with kill() has no address and is never ours.
  if (info != nullptr && info->si_code == BUS_ADRERR) {
    const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
    if (Slot* s = slot_containing(addr)) {
      // Flag first: a thread that reads the zero page (after the mmap) then finds the flag set.
      s->damaged.store(true);
      if (map_zero_page(addr)) {
        errno = saved_errno;
        return;  // the access resumes, on zeros
      }
    }
  }
  errno = saved_errno;
  forward(sig, info, context);
}

void install_once(const char* path) {
  std::lock_guard<std::mutex> lock(g_install_mu);
  if (g_installed) return;
  const long page = ::sysconf(_SC_PAGESIZE);
  if (page > 0) g_page_bytes = static_cast<uintptr_t>(page);
  struct sigaction action = {};
  action.sa_sigaction = on_sigbus;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  if (::sigaction(SIGBUS, &action, &g_previous) != 0) {
    throw Error(ErrorCode::IoError, errno_message("cannot install the SIGBUS handler guarding", path, errno));
  }
  g_installed = true;
}

}  // namespace

int MappingGuard::add(const void* begin, size_t bytes, const char* path) {
  install_once(path);
  const uintptr_t b = reinterpret_cast<uintptr_t>(begin);
  for (size_t i = 0; i < kMaxMappings; ++i) {
    Slot& s = g_slots[i];
    uint32_t seq = s.seq.load();
    if ((seq & 1) != 0 || s.end.load() != 0) continue;
    if (!s.seq.compare_exchange_strong(seq, seq + 1)) continue;  // another thread took it meanwhile
    s.damaged.store(false);
    s.begin.store(b);
    s.end.store(b + bytes);
    s.seq.store(seq + 2);
    return static_cast<int>(i);
  }
  throw Error(ErrorCode::IoError, "cannot map '" + std::string(path) + "': " + std::to_string(kMaxMappings) +
                                      " index files are already mapped in this process");
}

void MappingGuard::remove(int slot) {
  if (slot == kNoSlot) return;
  Slot& s = g_slots[slot];
  const uint32_t seq = s.seq.load();
  s.seq.store(seq + 1);
  s.end.store(0);
  s.begin.store(0);
  s.damaged.store(false);
  s.seq.store(seq + 2);
}

bool MappingGuard::damaged(int slot) { return slot != kNoSlot && g_slots[slot].damaged.load(); }

}  // namespace canopy
