#!/usr/bin/env bash
# Builds the libFuzzer targets (the fuzz preset: clang, ASan+UBSan), replays every stored crash
# input (tests/fuzz/regressions/<target>/), then fuzzes each target for N seconds (default 60)
# on a copy of its seed corpus, two targets at a time, and prints one line per target: runs
# executed, corpus size, crashes. Exits non-zero on any crash, naming the crash input.
# Usage: scripts/fuzz.sh [seconds] [target ...]   docs/fuzzing.md
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
jobs="${ANISOFLOW_FUZZ_JOBS:-2}"
build=build/fuzz
work="$build/run"
# Leaks inside third-party libraries are not findings (tests/fuzz/lsan.supp says which).
export LSAN_OPTIONS="suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0"

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

# 2. Fuzz each target on a fresh copy of its seed corpus; new inputs stay in $work only.
rm -rf "$work"
mkdir -p "$work"
run_target() {
  local target="$1" seconds="$2" work="$3" build="$4"
  local corpus="$work/$target/corpus" artifacts="$work/$target/artifacts/"
  mkdir -p "$corpus" "$artifacts"
  if [ -d "tests/fuzz/corpus/$target" ]; then
    cp -r "tests/fuzz/corpus/$target/." "$corpus/"
  fi
  local options=(-max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048
    -print_final_stats=1 -artifact_prefix="$artifacts")
  if [ -f "tests/fuzz/dictionaries/$target.dict" ]; then
    options+=(-dict="tests/fuzz/dictionaries/$target.dict")
  fi
  "$build/tests/fuzz/$target" "${options[@]}" "$corpus" >"$work/$target/log" 2>&1 || true
}
export -f run_target
start=$(date +%s)
printf '%s\n' "${targets[@]}" |
  xargs -P "$jobs" -I{} bash -c 'run_target "$@"' _ {} "$seconds" "$work" "$build"
elapsed=$(( $(date +%s) - start ))

# 3. The table, and the crash inputs.
printf '%-24s %12s %8s %16s %8s\n' target runs "runs/s" "corpus files/size" crashes
crashes_total=0
for target in "${targets[@]}"; do
  log="$work/$target/log"
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  runs="${runs:-0}"
  files=$(find "$work/$target/corpus" -type f | wc -l)
  bytes=$(find "$work/$target/corpus" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
  kib=$(( (bytes + 1023) / 1024 ))
  mapfile -t found < <(find "$work/$target/artifacts" -type f \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
  crashes="${#found[@]}"
  # A target that died without printing its statistics crashed too, even without an artifact.
  if [ "$crashes" -eq 0 ] && ! grep -q '^stat::number_of_executed_units' "$log"; then
    crashes=1
    found=("$log (no statistics: the target did not finish)")
  fi
  printf '%-24s %12s %8s %16s %8s\n' "$target" "$runs" "$((runs / seconds))" \
    "$files/${kib}KiB" "$crashes"
  for input in "${found[@]}"; do
    echo "  crash input: $input (log: $log)"
  done
  crashes_total=$((crashes_total + crashes))
done
echo "fuzz: ${#targets[@]} targets x ${seconds} s in ${elapsed} s, $crashes_total crash(es)"
[ "$crashes_total" -eq 0 ]
