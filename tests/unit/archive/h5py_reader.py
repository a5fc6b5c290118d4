#!/usr/bin/python3
"""Independent reader of anisoflow archive files for archive_test (h5py + HDF5 filter plugins).

  h5py_reader.py dump OUT.json FILE...   every object of each closed FILE, decoded, as JSON
  h5py_reader.py swmr FILE               opens FILE as a SWMR reader, then serves stdin commands:
                                         "dump OUT.json" (refresh, then dump) and "quit"

Pixels are decoded by the filter plugins (LZ4 from Debian's hdf5-filter-plugin, bitshuffle
registered by `import bitshuffle.h5`), never by anisoflow's codec. NaN becomes null.
"""
import json
import math
import sys

import bitshuffle.h5  # noqa: F401  registers HDF5 filter 32008 with h5py
import h5py
import numpy as np


def plain(value):
    """JSON-ready copy: arrays to nested lists, bytes to str, NaN to None."""
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value] if value.ndim > 0 else plain(value[()])
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def describe(obj):
    entry = {"attrs": {key: plain(value) for key, value in obj.attrs.items()}}
    if not isinstance(obj, h5py.Dataset):
        entry["kind"] = "group"
        return entry
    entry["kind"] = "dataset"
    entry["shape"] = list(obj.shape)
    entry["value"] = plain(obj[()])
    enum = h5py.check_enum_dtype(obj.dtype)
    if enum is not None:
        entry["enum"] = {name: int(number) for name, number in enum.items()}
    plist = obj.id.get_create_plist()
    entry["filters"] = [
        [int(code), int(flags), [int(v) for v in values]]
        for code, flags, values, _name in (plist.get_filter(i) for i in range(plist.get_nfilters()))
    ]
    if obj.chunks is not None and obj.name == "/entry/data/data":
        entry["chunk_masks"] = [
            int(obj.id.get_chunk_info(i).filter_mask) for i in range(obj.id.get_num_chunks())
        ]
    return entry


def dump(handle, datasets=None):
    out = {}

    def visit(name, obj):
        if datasets is not None and isinstance(obj, h5py.Dataset):
            obj = datasets.setdefault(obj.name, obj)
            obj.refresh()
        out["/" + name] = describe(obj)

    handle.visititems(visit)
    out["/"] = {"kind": "group", "attrs": {k: plain(v) for k, v in handle.attrs.items()}}
    return out


def main(argv):
    if len(argv) >= 3 and argv[1] == "dump":
        files = {}
        for path in argv[3:]:
            with h5py.File(path, "r") as handle:
                files[path] = dump(handle)
        with open(argv[2], "w", encoding="utf-8") as out:
            json.dump(files, out)
        return 0
    if len(argv) == 3 and argv[1] == "swmr":
        datasets = {}
        with h5py.File(argv[2], "r", libver="latest", swmr=True) as handle:
            print("opened", flush=True)
            for line in sys.stdin:
                words = line.split()
                if words[:1] == ["dump"] and len(words) == 2:
                    with open(words[1], "w", encoding="utf-8") as out:
                        json.dump({argv[2]: dump(handle, datasets)}, out)
                    print("dumped", flush=True)
                elif words == ["quit"]:
                    break
                else:
                    print("unknown command:", line.strip(), flush=True)
                    return 2
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
