#!/usr/bin/env bash
# Builds the libFuzzer targets (the fuzz preset: clang, ASan+UBSan), replays every stored crash
# input (tests/fuzz/regressions/<target>/), then fuzzes each target for N seconds (default 60)
# on a copy of its seed corpus, two targets at a time, and prints one line per target: runs
# executed, corpus size, crashes. Exits non-zero on any crash in our code, naming the crash input.
# A crash or out-of-memory wholly inside a third-party library listed in tests/fuzz/third_party.txt
# is set aside (listed, not counted) and fuzzing of that target goes on.
# Usage: scripts/fuzz.sh [seconds] [target ...]   docs/fuzzing.md
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
jobs="${ANISOFLOW_FUZZ_JOBS:-2}"
build=build/fuzz
work="$build/run"
# Leaks inside third-party libraries are not findings (tests/fuzz/lsan.supp says which). An
# absurd malloc returns NULL as it would without ASan (libhdf5 asks for sizes read from a corrupt
# file); our own oversized allocations still end in an uncaught bad_alloc, a crash.
export LSAN_OPTIONS="suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

if ! command -v clang++ >/dev/null 2>&1 ||
  [ ! -f "$(clang++ --print-runtime-dir)/libclang_rt.fuzzer-$(uname -m).a" ]; then
  echo "fuzz: needs clang with libFuzzer (Debian 12: clang libclang-rt-14-dev)" >&2
  exit 1
fi
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$jobs"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(sed -n 's/^anisoflow_fuzzer(\(fuzz_[a-z0-9_]*\).*/\1/p' tests/fuzz/CMakeLists.txt)
fi

# 1. Every crash found so far must stay fixed: each stored input runs once, without fuzzing.
status=0
for target in "${targets[@]}"; do
  dir="tests/fuzz/regressions/$target"
  [ -d "$dir" ] || continue
  mapfile -t inputs < <(find "$dir" -type f | sort)
  [ "${#inputs[@]}" -gt 0 ] || continue
  if ! "$build/tests/fuzz/$target" -runs=1 "${inputs[@]}" >"$build/replay-$target.log" 2>&1; then
    echo "fuzz: $target crashes again on a stored regression input (log: $build/replay-$target.log)" >&2
    status=1
  fi
done
[ "$status" -eq 0 ] || exit "$status"
echo "fuzz: regression inputs replayed cleanly"

# Whether the crash report in log $1 lies wholly in a library of tests/fuzz/third_party.txt: in
# every stack of the report (the fault, and where the memory was allocated or freed), the first
# frame that is not the sanitizer's or libFuzzer's is in such a library. libFuzzer's own frames
# include `main` (the targets have none: libFuzzer brings it); a stack of libFuzzer's alone (its
# corpus, listed among the largest allocations of an rss-limit out-of-memory) decides nothing.
third_party_crash() {
  local pattern
  pattern=$(grep -v '^#' tests/fuzz/third_party.txt | grep -v '^ *$' | paste -sd'|')
  [ -n "$pattern" ] || return 1
  awk -v pattern="$pattern" '
    /^    #[0-9]+ / {
      if (!in_stack) { in_stack = 1; decided = 0 }
      if (!decided && $0 !~ /__interceptor_|__asan|__sanitizer|__ubsan|fuzzer::|__mem(cpy|move|set|cmp)_|__libc_start| in main \(| in (malloc|calloc|realloc|free|memcpy|memmove|memset|operator new|operator delete)/) {
        decided = 1
        if ($0 ~ pattern) { theirs++ } else { ours++ }
      }
      next
    }
    { in_stack = 0 }
    END { exit (theirs > 0 && ours == 0) ? 0 : 1 }' "$1"
}

# 2. Fuzz each target on a fresh copy of its seed corpus; new inputs stay in $work only.
rm -rf "$work"
mkdir -p "$work"
run_target() {
  local target="$1" seconds="$2" work="$3" build="$4"
  local dir="$work/$target"
  local corpus="$dir/corpus" artifacts="$dir/artifacts/" set_aside="$dir/third-party/"
  mkdir -p "$corpus" "$artifacts" "$set_aside"
  if [ -d "tests/fuzz/corpus/$target" ]; then
    cp -r "tests/fuzz/corpus/$target/." "$corpus/"
  fi
  local options=(-timeout=30 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts")
  if [ -f "tests/fuzz/dictionaries/$target.dict" ]; then
    options+=(-dict="tests/fuzz/dictionaries/$target.dict")
  fi
  local deadline=$(($(date +%s) + seconds)) round=0 left
  : >"$dir/log"
  while left=$((deadline - $(date +%s))) && [ "$left" -gt 0 ]; do
    round=$((round + 1))
    "$build/tests/fuzz/$target" "${options[@]}" -max_total_time="$left" "$corpus" \
      >"$dir/round-$round.log" 2>&1 || true
    cat "$dir/round-$round.log" >>"$dir/log"
    local found=()
    mapfile -t found < <(find "$artifacts" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'oom-*' \))
    if [ "${#found[@]}" -eq 0 ] || ! third_party_crash "$dir/round-$round.log"; then
      break
    fi
    mv "${found[@]}" "$set_aside"  # a known third-party bug: fuzzing goes on
    cp "$dir/round-$round.log" "$set_aside/$(basename "${found[0]}").log"
  done
}
export -f run_target third_party_crash
start=$(date +%s)
printf '%s\n' "${targets[@]}" |
  xargs -P "$jobs" -I{} bash -c 'run_target "$@"' _ {} "$seconds" "$work" "$build"
elapsed=$(($(date +%s) - start))

# 3. The table, and the crash inputs.
printf '%-24s %12s %8s %16s %8s %10s\n' target runs "runs/s" "corpus files/size" crashes \
  "3rd-party"
crashes_total=0
for target in "${targets[@]}"; do
  dir="$work/$target"
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | awk '{ s += $1 } END { print s + 0 }')
  files=$(find "$dir/corpus" -type f | wc -l)
  bytes=$(find "$dir/corpus" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
  kib=$(((bytes + 1023) / 1024))
  mapfile -t found < <(find "$dir/artifacts" -type f \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
  mapfile -t theirs < <(find "$dir/third-party" -type f ! -name '*.log' | sort)
  crashes="${#found[@]}"
  # A target that died without printing its statistics crashed too, even without an artifact.
  if [ "$crashes" -eq 0 ] && ! grep -q '^stat::number_of_executed_units' "$dir/log"; then
    crashes=1
    found=("$dir/log (no statistics: the target did not finish)")
  fi
  printf '%-24s %12s %8s %16s %8s %10s\n' "$target" "$runs" "$((runs / seconds))" \
    "$files/${kib}KiB" "$crashes" "${#theirs[@]}"
  for input in "${found[@]}"; do
    echo "  crash input: $input (log: $dir/log)"
    # CI keeps only what is printed: the report's first lines and a small input in base64 are
    # enough to reproduce the crash elsewhere (docs/fuzzing.md, "A crash becomes a regression").
    # The last round's log: earlier rounds end in crashes set aside as third-party ones.
    last_round=$(find "$dir" -maxdepth 1 -name 'round-*.log' -printf '%f\n' | sort -V | tail -1)
    grep -m 1 -A 12 -E '^==[0-9]+==ERROR|runtime error:|^SUMMARY|deadly signal' \
      "$dir/${last_round:-log}" | sed 's/^/    | /' || true
    if [ -f "$input" ] && [ "$(stat -c %s "$input")" -le 4096 ]; then
      echo "    input (base64; decode with base64 -d):"
      base64 -w 96 "$input" | sed 's/^/    /'
    fi
  done
  for input in "${theirs[@]}"; do
    echo "  third-party crash set aside: $input (report: $input.log)"
  done
  crashes_total=$((crashes_total + crashes))
done
echo "fuzz: ${#targets[@]} targets x ${seconds} s in ${elapsed} s, $crashes_total crash(es)"
[ "$crashes_total" -eq 0 ]
