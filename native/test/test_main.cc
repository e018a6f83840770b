#include "test_main.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace canopy_test {

namespace {
int g_failures = 0;
std::string g_temp_dir;
}  // namespace

std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

void record_failure(const char* file, int line, const std::string& what) {
  ++g_failures;
  std::fprintf(stderr, "  FAILED %s:%d: %s\n", file, line, what.c_str());
}

std::string temp_dir() {
  if (g_temp_dir.empty()) {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/canopy-native-test-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      std::exit(2);
    }
    g_temp_dir = pattern;
  }
  return g_temp_dir;
}

}  // namespace canopy_test

int main() {
  using canopy_test::registry;
  for (const auto& c : registry()) {
    std::fprintf(stderr, "%s\n", c.name);
    try {
      c.body();
    } catch (const std::exception& e) {
      canopy_test::record_failure(__FILE__, __LINE__, std::string("unexpected exception: ") + e.what());
    }
  }
  if (!canopy_test::g_temp_dir.empty()) std::filesystem::remove_all(canopy_test::g_temp_dir);
  std::fprintf(stderr, "%zu cases, %d failed checks\n", registry().size(), canopy_test::g_failures);
  return canopy_test::g_failures == 0 ? 0 : 1;
}
