#!/usr/bin/python3
"""Writes the bitshuffle reference fixtures in tests/data/bitshuffle/ (run once, outputs committed).

Made with Debian's bitshuffle Python module (package python3-bitshuffle 0.3.5, linked against the
system liblz4 1.9.4) and numpy, both for the system python:

    /usr/bin/python3 tests/unit/codec/make_bitshuffle_fixtures.py tests/data/bitshuffle

For each case NAME (dtype, element count, block size in elements; 0 = the library default) it
writes three files:
    NAME.raw         the array, little-endian
    NAME.bitshuffle  bitshuffle.bitshuffle(arr, block_size): the blocked bit transpose
    NAME.bslz4       bitshuffle.compress_lz4(arr, block_size): the per-block [uint32 BE size][LZ4]
                     stream WITHOUT the 12-byte HDF5-filter header (the module never writes it)
The C++ tests (tests/unit/codec/bitshuffle_test.cpp) hold the same case list.
"""
import pathlib
import sys

import bitshuffle
import numpy as np

# name, dtype, element count, block size (elements, 0 = default: 8192 bytes / element size)
CASES = [
    ("u16_n4096_default", np.uint16, 4096, 0),  # exactly one default block (4096 elements)
    ("u16_n1003_default", np.uint16, 1003, 0),  # not a multiple of 8: 3 elements left over
    ("u16_n2500_b512", np.uint16, 2500, 512),  # 4 full blocks, a 448-element block, 4 left over
    ("u32_n1000_default", np.uint32, 1000, 0),  # one partial block (default is 2048 elements)
    ("u32_n2053_default", np.uint32, 2053, 0),  # one full default block and 5 left over
    ("u32_n777_b64", np.uint32, 777, 64),  # 12 full blocks, an 8-element block, 1 left over
    ("u8_n520_default", np.uint8, 520, 0),  # 1-byte elements
    ("u64_n203_b64", np.uint64, 203, 64),  # 8-byte elements: 3 blocks, an 8-element block, 3 left
]


def detector_like(dtype, n, seed):
    """Poisson counts on a smooth background, a few hot and saturated pixels: compressible but
    not trivial, like a diffraction frame."""
    rng = np.random.default_rng(seed)
    x = np.arange(n)
    background = 20.0 + 15.0 * np.sin(x / 37.0) ** 2
    values = rng.poisson(background).astype(np.uint64)
    hot = rng.choice(n, size=max(1, n // 100), replace=False)
    values[hot] = rng.integers(1000, 60000, size=hot.size)
    values[rng.choice(n, size=2, replace=False)] = np.iinfo(dtype).max  # saturated / no-data
    return values.astype(dtype)


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/bitshuffle")
    out.mkdir(parents=True, exist_ok=True)
    for seed, (name, dtype, n, block_size) in enumerate(CASES):
        arr = detector_like(dtype, n, seed).astype(np.dtype(dtype).newbyteorder("<"))
        (out / f"{name}.raw").write_bytes(arr.tobytes())
        (out / f"{name}.bitshuffle").write_bytes(bitshuffle.bitshuffle(arr, block_size).tobytes())
        compressed = bitshuffle.compress_lz4(arr, block_size)
        (out / f"{name}.bslz4").write_bytes(compressed.tobytes())
        back = bitshuffle.decompress_lz4(compressed, arr.shape, arr.dtype, block_size)
        assert np.array_equal(back, arr), name
        print(f"{name}: {arr.nbytes} raw bytes, {compressed.size} compressed")


if __name__ == "__main__":
    main()
