#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds the dev preset (warnings as errors) and
# runs every CTest test (unit, integration and benchmark smoke runs). Needs ../shared beside the
# checkout for the pyFAI references.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh dev
ctest --preset dev -j "$(nproc)"
# The fault suite's figures (docs/faults.md): rounds, frames sent, lost, silently absent.
cat build/dev/tests/faults/fault_suite_figures.txt
