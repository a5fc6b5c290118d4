#!/usr/bin/env bash
# Installs every Debian 12 package anisoflow needs to build, test and run. Idempotent: when all
# packages are present it changes nothing and needs no network. Runs as root (or via sudo).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  # libraries (docs/dependencies.md says why each is here)
  libexpected-dev libfmt-dev libspdlog-dev libcli11-dev nlohmann-json3-dev
  libhdf5-dev libtiff-dev
  libxrl-dev libfftw3-dev libeigen3-dev libtomlplusplus-dev
  libboost-dev libzmq3-dev cppzmq-dev libprotobuf-dev protobuf-compiler prometheus-cpp-dev
  liblz4-dev libcbor-dev libsodium-dev
  # HDF5 compression filters (LZ4, bitshuffle) so archives open in h5py/silx; bitshuffle's own
  # Python module and h5py are the independent references the codec tests compare against
  hdf5-filter-plugin bitshuffle python3-h5py
  # tests and benchmarks; PyYAML reads docker-compose.yml in tests/deploy; pyzmq and Python
  # Protobuf drive run control from Python as a Bluesky plan would (tests/deploy)
  libgtest-dev libgmock-dev libbenchmark-dev python3-yaml python3-zmq python3-protobuf
  # monitoring: promtool validates deploy/prometheus (config, alert rules and their unit tests)
  # and the Prometheus server scrapes a running demo in tests/deploy (docs/monitoring.md)
  prometheus
  # formatting and lint (sanitizer builds use g++); clang with its libFuzzer runtime builds the
  # fuzz targets (tests/fuzz, docs/fuzzing.md): --no-install-recommends leaves the runtime out
  clang-format clang-tidy clang libclang-rt-14-dev
  # the dashboard: built with Node.js and npm (web/, docs/dashboard.md), tested in headless
  # Chromium (tests/browser); npm is added below only where Node.js does not bring its own
  nodejs chromium
)
if ! command -v npm >/dev/null 2>&1; then
  packages+=(npm)
fi

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "install-deps: missing packages (${missing[*]}) and not root; run as root" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
"${as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
