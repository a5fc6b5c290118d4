#pragma once
// A dense liquid-like test configuration: random sequential addition of unit spheres in a
// periodic cube, then a Gaussian jitter that smooths the contact step of g(r).

#include <cstddef>
#include <cstdint>
#include <vector>

#include "anisoflow/atomistic/box.hpp"

namespace anisoflow::atomistic::testing {

struct Packing {
    Box box;
    std::vector<Vec3> position;
};

/// n_atoms unit-diameter spheres at packing fraction `phi` (below ~0.36: RSA jams at 0.38 in 3D),
/// displaced by a Gaussian of standard deviation `jitter` per coordinate.
Packing random_packing(std::size_t n_atoms, double phi, double jitter, std::uint64_t seed);

/// x' = origin + F (x - origin): the affine image of positions in `box`.
std::vector<Vec3> deform(const Box& box, const std::vector<Vec3>& position, const Mat3& f);

/// The 20,000-atom packing the validation tests share (built once).
const Packing& shared_packing();

}  // namespace anisoflow::atomistic::testing
