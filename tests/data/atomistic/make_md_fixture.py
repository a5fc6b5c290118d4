#!/usr/bin/env python3
"""Writes the `anisoflow md` test fixture: reference.dump and deformed.dump (LAMMPS text dumps).

2000 atoms of diameter 2.5 A placed by random sequential addition at packing fraction 0.33 in a
periodic cube (edge ~36.7 A), jittered by a Gaussian of 0.1 A; a third of them (at random) are
type 2, the rest type 1. The deformed configuration is the reference compressed affinely by
eps = 2 % along z with a Poisson expansion nu = 0.37 in x and y (the box deforms with it), plus
a shear inclusion (every atom within 7 A of the box centre moves by gamma (z - z_c) e_x,
gamma = 0.15, in reference coordinates) and a Gaussian noise of 0.03 A per coordinate; its
positions are wrapped into the deformed box and its lines shuffled (the reader sorts by id).
Python's random.Random(seed) sequence is fixed across versions, so the files are reproducible:

    python3 tests/data/atomistic/make_md_fixture.py tests/data/atomistic
"""

import math
import random
import sys
from pathlib import Path

N_ATOMS = 2000
DIAMETER_A = 2.5
PACKING_FRACTION = 0.33
JITTER_A = 0.1
TYPE2_FRACTION = 1.0 / 3.0
EPS = 0.02  # compression along z
NU = 0.37
INCLUSION_RADIUS_A = 7.0
GAMMA = 0.15
NOISE_A = 0.03
SEED = 20261124


def rsa(rng, n, length, diameter):
    cells_per_edge = int(length // diameter)
    cell = length / cells_per_edge
    cells = {}
    points = []
    d2 = diameter * diameter
    while len(points) < n:
        x = (rng.random() * length, rng.random() * length, rng.random() * length)
        c = tuple(int(v / cell) % cells_per_edge for v in x)
        ok = True
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for dz in (-1, 0, 1):
                    key = ((c[0] + dx) % cells_per_edge, (c[1] + dy) % cells_per_edge,
                           (c[2] + dz) % cells_per_edge)
                    for j in cells.get(key, ()):
                        r2 = 0.0
                        for k in range(3):
                            d = points[j][k] - x[k]
                            d -= length * round(d / length)
                            r2 += d * d
                        if r2 < d2:
                            ok = False
                            break
                    if not ok:
                        break
                if not ok:
                    break
            if not ok:
                break
        if ok:
            cells.setdefault(c, []).append(len(points))
            points.append(x)
    return points


def write_dump(path, timestep, lo, lengths, ids, types, positions):
    lines = ["ITEM: TIMESTEP", str(timestep), "ITEM: NUMBER OF ATOMS", str(len(ids)),
             "ITEM: BOX BOUNDS pp pp pp"]
    for k in range(3):
        lines.append(f"{lo[k]:.6f} {lo[k] + lengths[k]:.6f}")
    lines.append("ITEM: ATOMS id type x y z")
    for i, t, x in zip(ids, types, positions):
        lines.append(f"{i} {t} {x[0]:.4f} {x[1]:.4f} {x[2]:.4f}")
    Path(path).write_text("\n".join(lines) + "\n")


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
    rng = random.Random(SEED)
    volume = N_ATOMS * math.pi / 6.0 * DIAMETER_A ** 3 / PACKING_FRACTION
    length = volume ** (1.0 / 3.0)
    lo = (-0.5 * length,) * 3
    points = rsa(rng, N_ATOMS, length, DIAMETER_A)
    ref = [tuple(lo[k] + p[k] + rng.gauss(0.0, JITTER_A) for k in range(3)) for p in points]
    types = [2 if rng.random() < TYPE2_FRACTION else 1 for _ in ref]
    ids = list(range(1, N_ATOMS + 1))

    scale = (1.0 + NU * EPS, 1.0 + NU * EPS, 1.0 - EPS)
    centre = tuple(lo[k] + 0.5 * length for k in range(3))
    def_lengths = tuple(length * s for s in scale)
    deformed = []
    for x in ref:
        d = [x[k] - centre[k] for k in range(3)]
        d = [v - length * round(v / length) for v in d]  # minimum image from the centre
        y = [lo[k] + scale[k] * (x[k] - lo[k]) for k in range(3)]
        if math.sqrt(sum(v * v for v in d)) < INCLUSION_RADIUS_A:
            y[0] += GAMMA * d[2]
        y = [y[k] + rng.gauss(0.0, NOISE_A) for k in range(3)]
        y = [lo[k] + (y[k] - lo[k]) % def_lengths[k] for k in range(3)]  # wrap into the box
        deformed.append(y)
    # Reference positions wrapped too (the jitter may push an atom just outside).
    ref = [tuple(lo[k] + (x[k] - lo[k]) % length for k in range(3)) for x in ref]

    write_dump(out / "reference.dump", 0, lo, (length,) * 3, ids, types, ref)
    order = list(range(N_ATOMS))
    rng.shuffle(order)
    write_dump(out / "deformed.dump", 10000, lo, def_lengths, [ids[i] for i in order],
               [types[i] for i in order], [deformed[i] for i in order])


if __name__ == "__main__":
    main()
