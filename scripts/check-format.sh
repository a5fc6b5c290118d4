#!/usr/bin/env bash
# Fails when a tracked C++ file differs from what clang-format (the repo's .clang-format) wants.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
while IFS= read -r file; do
  if ! clang-format --dry-run --Werror "$file" >/dev/null 2>&1; then
    echo "check-format: $file is not clang-formatted (run: clang-format -i $file)" >&2
    status=1
  fi
done < <(git ls-files '*.cpp' '*.hpp' '*.h')
[ "$status" -eq 0 ] && echo "check-format: all files formatted"
exit "$status"
