#!/usr/bin/env bash
# The main job, end to end and live: build anisoflow (release), then `anisoflow demo` starts
# anisoflow-ingest, 2 x anisoflow-reduce, anisoflow-analyze and anisoflow-archive as child
# processes, streams a simulated creep run (P and N orientations of a strained metallic glass)
# into ingest, prints each live result of analyze (alpha +- stderr, eps_aff, r_c, mechanism), the
# final one and the archive file, and stops the services. docs/demo.md.
#
# Environment: ANISOFLOW_DEMO_OUT (default build/demo), ANISOFLOW_DEMO_ARGS (extra `anisoflow
# demo` flags, e.g. "--frames 40 --fps 10").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh release
out="${ANISOFLOW_DEMO_OUT:-build/demo}"
# The mission's detector: 2048x2048 pixels of 200 um at 0.35 m, 100 keV (~20 s on two cores).
# shellcheck disable=SC2086  # ANISOFLOW_DEMO_ARGS is a list of flags
exec build/release/apps/anisoflow/anisoflow demo --out-dir "$out" --frames 8 --fps 4 --reducers 2 \
  ${ANISOFLOW_DEMO_ARGS:-}
