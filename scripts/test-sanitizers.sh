#!/usr/bin/env bash
# The tests under sanitizers (Debug builds, docs/development.md "Sanitizers"):
#   asan: the asan preset (ASan + UBSan, everything built) runs the unit tests, then the
#         end-to-end tests (CTest labels integration and faults: the fault suite, whose time
#         limits stretch under a sanitizer, docs/faults.md);
#   tsan: the tsan preset builds only those end-to-end tests and the binaries they start
#         (target anisoflow_e2e) and runs them under ThreadSanitizer.
# The services and `anisoflow` that the tests start as child processes are built with the same
# sanitizer. Usage: scripts/test-sanitizers.sh [asan|tsan]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
jobs="$(nproc)"
bash scripts/install-deps.sh

# The e2e presets send reports to <build>/<kind>-report.<pid> (log_path): the tests keep their
# children's stderr in files they delete, and a child that dies of a report may look like one the
# test killed. Any report file fails the run.
check_reports() {
  local found=0 file
  for file in "$@"; do
    [ -e "$file" ] || continue
    echo "=== sanitizer report: $file" >&2
    cat "$file" >&2
    found=1
  done
  return "$found"
}

status=0
if [ "$which" = all ] || [ "$which" = asan ]; then
  start=$SECONDS
  bash scripts/build.sh asan
  echo "sanitizers: asan build $((SECONDS - start)) s"
  start=$SECONDS
  ctest --preset asan-unit -j "$jobs"
  echo "sanitizers: asan unit tests $((SECONDS - start)) s"
  start=$SECONDS
  rm -f build/asan/asan-report.* build/asan/ubsan-report.*
  ctest --preset asan-e2e -j "$jobs" || status=1
  check_reports build/asan/asan-report.* build/asan/ubsan-report.* || status=1
  echo "sanitizers: asan e2e tests $((SECONDS - start)) s"
fi

if [ "$which" = all ] || [ "$which" = tsan ]; then
  start=$SECONDS
  cmake --preset tsan >/dev/null
  cmake --build --preset tsan-e2e -j "$jobs"
  echo "sanitizers: tsan build (anisoflow_e2e) $((SECONDS - start)) s"
  # GCC 12's TSan runtime aborts ("FATAL: ThreadSanitizer: unexpected memory mapping") where the
  # kernel randomises mmap over more bits than it knows (vm.mmap_rnd_bits > 28, the default of
  # some recent kernels). Without ASLR the layout always fits; children inherit the personality.
  # Where personality(2) is forbidden (some container seccomp profiles) run as is.
  no_aslr=()
  if setarch "$(uname -m)" -R true 2>/dev/null; then
    no_aslr=(setarch "$(uname -m)" -R)
  else
    echo "sanitizers: setarch -R not permitted here; running TSan with ASLR" >&2
  fi
  start=$SECONDS
  rm -f build/tsan/tsan-report.*
  "${no_aslr[@]}" ctest --preset tsan-e2e -j "$jobs" || status=1
  check_reports build/tsan/tsan-report.* || status=1
  echo "sanitizers: tsan e2e tests $((SECONDS - start)) s"
fi
exit "$status"
