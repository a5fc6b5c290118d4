#pragma once
// Non-affine displacement D2_min and the best local affine transformation per atom
// (Falk & Langer, Phys. Rev. E 57, 7192 (1998); formulas in docs/atomistic.md).

#include <span>
#include <vector>

#include "anisoflow/atomistic/box.hpp"
#include "anisoflow/core/result.hpp"

namespace anisoflow::atomistic {

struct D2MinOptions {
    /// Neighbours of atom i are the atoms closer than this in the reference configuration
    /// (typically the first minimum of g(r), first_minimum()).
    double cutoff = 0.0;
};

struct D2MinResult {
    /// D2_min_i = sum_j |d'_ij - J_i d_ij|^2 over the reference neighbours j (length^2, a sum
    /// as in Falk & Langer, not a mean). NaN where J_i is undetermined (fewer than 3 neighbours
    /// or neighbours in a plane).
    std::vector<double> d2min;
    /// J_i = X_i Y_i^-1, X = sum d' d^T, Y = sum d d^T: the affine map that best carries the
    /// reference separations d onto the deformed ones d' (the identity for no deformation).
    std::vector<Mat3> affine;
    std::vector<int> neighbour_count;  ///< reference neighbours per atom
};

/// D2_min between a reference and a deformed configuration of the same atoms in the same order
/// (Snapshot sorts by id). Separations are minimum images in the reference box; the deformed
/// separation of the same pair is the image of j closest to it in reduced coordinates, so
/// wrapped and unwrapped coordinates and a deformed box give the same result. Errors: sizes that
/// differ, a cutoff the reference box cannot hold (CellList::build).
Result<D2MinResult> compute_d2min(const Box& reference_box, std::span<const Vec3> reference,
                                  const Box& deformed_box, std::span<const Vec3> deformed,
                                  const D2MinOptions& options);

}  // namespace anisoflow::atomistic
