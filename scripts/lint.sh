#!/usr/bin/env bash
# clang-tidy (the repo's .clang-tidy, warnings as errors) over the library, tools, services and
# benchmarks, using the dev build's compile database. Usage: scripts/lint.sh [files...]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/dev/compile_commands.json ] || bash scripts/build.sh dev
# Generated Protobuf headers must exist before clang-tidy parses the files that include them.
cmake --build build/dev --target anisoflow_proto >/dev/null
if [ "$#" -gt 0 ]; then files=("$@"); else mapfile -t files < <(git ls-files 'lib/*.cpp' 'apps/*.cpp' 'services/*.cpp' 'bench/*.cpp'); fi
status=0
for file in "${files[@]}"; do
  # clang-tidy exits non-zero on findings; keep its output and decide from that.
  output=$(clang-tidy -p build/dev --quiet "$file" 2>/dev/null || true)
  if grep -qE "(error|warning):" <<<"$output"; then
    grep -E "(error|warning):" <<<"$output"
    status=1
  fi
done
if [ "$status" -eq 0 ]; then
  echo "lint: clang-tidy clean on ${#files[@]} files"
else
  echo "lint: clang-tidy found problems (above)" >&2
fi
exit "$status"
