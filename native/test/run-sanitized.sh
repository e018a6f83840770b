#!/usr/bin/env bash
# Builds the C++ core and its tests with AddressSanitizer + UndefinedBehaviorSanitizer and runs them.
# Exits non-zero on any failed check or sanitizer report; warnings are errors here (-Werror), so CI keeps
# the core warning-free while user installs of the addon never fail on a newer compiler's new warning.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=native/test/bin
mkdir -p "$out"
CXX="${CXX:-g++}"
"$CXX" -std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
  -Wall -Wextra -Werror -Wno-unused-parameter -Inative/src native/src/*.cc native/test/*.cc -pthread -o "$out/engine_test"
# handle_sigbus=0: the engine's own SIGBUS handler (mapping_guard.cc) is under test; ASan's would take it.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:handle_sigbus=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$out/engine_test"
