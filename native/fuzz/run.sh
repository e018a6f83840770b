#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan), replays every kept regression input, then fuzzes
# each target for the given seconds (default 60), starting from corpus/ and the inputs earlier runs
# found (bin/corpus-*). Exits non-zero on a crash, a sanitizer report, a leak or a hang; the failing
# input is written to bin/crashes/. Usage: native/fuzz/run.sh [seconds-per-target]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
CXX="${CXX:-clang++}"
out=bin
mkdir -p "$out/obj" "$out/crashes"
# clang's libFuzzer runtime is a separate Debian package that apt installs only as a recommendation.
if ! echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
  "$CXX" -x c++ -fsanitize=fuzzer - -o "$out/probe" 2>/dev/null; then
  echo "native/fuzz: $CXX cannot link -fsanitize=fuzzer; install the libFuzzer runtime (Debian: libclang-rt-14-dev)" >&2
  exit 2
fi
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all -I../src)

# The core is instrumented for coverage once and linked into each target.
objs=()
for src in ../src/*.cc; do
  obj="$out/obj/$(basename "${src%.cc}").o"
  "$CXX" "${flags[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
  objs+=("$obj")
done

targets=(load query graph codes)
for t in "${targets[@]}"; do
  "$CXX" "${flags[@]}" -fsanitize=fuzzer "${t}_fuzzer.cc" "${objs[@]}" -pthread -o "$out/${t}_fuzzer"
done

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "${targets[@]}"; do
  shopt -s nullglob
  kept=(regressions/"$t"/*)
  shopt -u nullglob
  if [ ${#kept[@]} -gt 0 ]; then
    echo "== $t: replaying ${#kept[@]} regression inputs"
    "$out/${t}_fuzzer" "${kept[@]}"
  fi
done
for t in "${targets[@]}"; do
  echo "== $t: fuzzing for ${seconds}s"
  mkdir -p "$out/corpus-$t"
  "$out/${t}_fuzzer" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$out/crashes/$t-" "$out/corpus-$t" "corpus/$t"
done
