#!/usr/bin/env bash
# The main job, end to end: build anisoflow (release), integrate the shared reference frame
# (2048x2048, 100 keV) into a (Q, chi) cake with both splitting kinds, and print a summary.
# Until the streaming services exist (issue 4) this is the offline path of the same library code.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh release
reference="${ANISOFLOW_SHARED_DIR:-../shared}/reference/integration"
if [ ! -f "$reference/frame.h5" ]; then
  echo "demo: $reference/frame.h5 not found; set ANISOFLOW_SHARED_DIR to the shared/ folder" >&2
  exit 1
fi
out="${ANISOFLOW_DEMO_OUT:-build/demo}"
mkdir -p "$out"
for split in none bbox; do
  build/release/apps/anisoflow/anisoflow integrate \
    --poni "$reference/geometry.poni" \
    --frames "$reference/frame.h5" \
    --mask "$reference/frame.h5::/entry/instrument/detector/pixel_mask" \
    --dark-level 100 --polarization 0.99 --n-q 1000 --n-chi 72 --q-min 0.5 --q-max 25 \
    --split "$split" --threads "$(nproc)" \
    --out "$out/cake_$split.h5" --iq-text "$out/iq_$split.dat"
done
echo "demo: cakes and I(Q) written to $out/"
