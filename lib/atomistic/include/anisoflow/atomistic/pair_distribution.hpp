#pragma once
// Pair distribution functions of a configuration: g(r), and g0(r), g2(r) about a loading axis in
// the SPEC 4 normalisation g(r, psi) = g0(r) + sqrt5 g2(r) P2(cos psi), globally, per atom or
// averaged over groups of atoms (e.g. D2_min bins).

#include <cstddef>
#include <span>
#include <vector>

#include "anisoflow/atomistic/box.hpp"
#include "anisoflow/core/result.hpp"
#include "anisoflow/physics/curves.hpp"

namespace anisoflow::atomistic {

struct PairDistributionOptions {
    double r_max = 10.0;      ///< upper end of the histogram (length unit of the positions)
    double bin_width = 0.02;  ///< histogram bin width
    Vec3 loading_axis{0.0, 0.0, 1.0};  ///< direction psi is measured from (normalised inside)
};

/// g0 and g2 on the bin centres r_k = (k + 1/2) bin_width. Variances: Poisson, from the number
/// of pairs (and of P2^2-weighted pairs) in each bin.
struct PairDistribution {
    physics::RCurve g0;  ///< the ordinary isotropic g(r)
    physics::RCurve g2;  ///< SPEC 4: sqrt5 times the P2-weighted histogram, normalised as g0
    std::size_t atoms = 0;
};

/// g0 and g2 over all atoms. number density rho0 = N / V.
Result<PairDistribution> pair_distribution(const Box& box, std::span<const Vec3> positions,
                                           const PairDistributionOptions& options);

/// g0 and g2 of the atoms of each group (group[i] in [0, n_groups); a negative group leaves
/// atom i out as a centre, it still counts as a neighbour): the per-atom functions averaged over
/// the group. Groups with no atom have empty-count curves (values 0).
Result<std::vector<PairDistribution>> grouped_pair_distribution(
    const Box& box, std::span<const Vec3> positions, std::span<const int> group,
    std::size_t n_groups, const PairDistributionOptions& options);

/// Per-atom g2_i(r) = sqrt5 sum_j P2(cos psi_ij) / (rho0 V_shell(r)), row-major [atom][bin],
/// single precision (N x n_bins floats; 40,000 atoms x 500 bins = 80 MB).
struct PerAtomG2 {
    std::vector<double> r;  ///< bin centres
    std::vector<float> g2;
    std::size_t atoms = 0;
    [[nodiscard]] float at(std::size_t atom, std::size_t bin) const {
        return g2[atom * r.size() + bin];
    }
};
Result<PerAtomG2> per_atom_g2(const Box& box, std::span<const Vec3> positions,
                              const PairDistributionOptions& options);

/// The first minimum of g(r) after its first peak (the default D2_min and bond cutoff): the
/// lowest point between the first peak (the maximum of g0 over r where g0 first exceeds 1, up to
/// where it drops below 1 again) and the next crossing of 1 from below, on g0 smoothed over
/// 5 bins. Error when g0 has no such peak and minimum.
Result<double> first_minimum(const physics::RCurve& g0);

}  // namespace anisoflow::atomistic
