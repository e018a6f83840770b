// A tiny test harness: TEST(name) { ... } registers a case; CHECK(cond) records a failure and goes on;
// REQUIRE_THROWS_CODE(expr, code) checks that expr throws canopy::Error with that code.
// main() (in test_main.cc) runs every case and exits 1 if any check failed.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "error.h"

namespace canopy_test {

struct Case {
  const char* name;
  std::function<void()> body;
};

std::vector<Case>& registry();
void record_failure(const char* file, int line, const std::string& what);

struct Registrar {
  Registrar(const char* name, std::function<void()> body) { registry().push_back({name, std::move(body)}); }
};

// A fresh directory under $TMPDIR, removed at exit.
std::string temp_dir();

}  // namespace canopy_test

#define CANOPY_CAT2(a, b) a##b
#define CANOPY_CAT(a, b) CANOPY_CAT2(a, b)
#define TEST(name)                                                                                 \
  static void CANOPY_CAT(test_, name)();                                                           \
  static canopy_test::Registrar CANOPY_CAT(registrar_, name)(#name, CANOPY_CAT(test_, name));      \
  static void CANOPY_CAT(test_, name)()

#define CHECK(cond)                                                         \
  do {                                                                      \
    if (!(cond)) canopy_test::record_failure(__FILE__, __LINE__, #cond);    \
  } while (0)

#define REQUIRE_THROWS_CODE(expr, expected_code)                                                          \
  do {                                                                                                    \
    bool thrown_ = false;                                                                                 \
    try {                                                                                                 \
      (void)(expr);                                                                                       \
    } catch (const canopy::Error& e_) {                                                                   \
      thrown_ = true;                                                                                     \
      if (e_.code() != (expected_code)) {                                                                 \
        canopy_test::record_failure(__FILE__, __LINE__,                                                   \
                                    std::string(#expr " threw ") + canopy::error_code_name(e_.code()) + \
                                        ": " + e_.what());                                                \
      }                                                                                                   \
    }                                                                                                     \
    if (!thrown_) canopy_test::record_failure(__FILE__, __LINE__, #expr " did not throw");               \
  } while (0)
