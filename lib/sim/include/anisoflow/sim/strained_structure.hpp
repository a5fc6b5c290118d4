#pragma once
// What the renderer samples: S(Q, psi) of a strained glass under one of the simulator's strain
// modes (issue 3). `affine` is exact, S(|F^T Q|); `radial` and `rotation` are first-order models
// written in SPEC 4's paper normalisation,
//   S(Q, psi) = S0(Q) + sqrt5 S2(Q) P2(cos psi),
// with S0 the isotropic hard-sphere S (the l = 0 part is unchanged to first order in eps) and S2
// the l = 2 transform of a model g2(r) (pair_distribution.hpp). The models are derived in
// docs/physics-simulator.md; the conventions are the simulator's own, not lib/physics'.

#include <utility>
#include <vector>

#include "anisoflow/core/result.hpp"
#include "anisoflow/sim/pair_distribution.hpp"
#include "anisoflow/sim/structure_model.hpp"

namespace anisoflow::sim {

/// Radially varying strain (SPEC 7's "pairs at separation r are strained by eps(r)"), a logistic
/// step from eps_aff (1 - inner_drop) at short range to eps_aff at long range:
///   eps(r) = eps_aff [1 - inner_drop / (1 + exp((r - r_c)/w))].
/// inner_drop = 0 is the affine strain; the defaults are the acceptance case.
struct RadialStrainProfile {
    double eps_aff = 0.006;  ///< long-range (affine) strain, > 0 for compression
    double step_centre_angstrom = 11.0;
    double step_width_angstrom = 0.5;
    double inner_drop = 0.5;  ///< fraction of eps_aff missing well inside the step

    [[nodiscard]] double eps(double r_angstrom) const;
    [[nodiscard]] double deps_dr_per_angstrom(double r_angstrom) const;
    /// Where eps(r) - eps_aff has fallen below 1e-15 eps_aff (the S2 quadrature must reach it).
    [[nodiscard]] double settled_beyond_angstrom() const;
};

/// Bond rotation without bond-length change: g2(r) = beta [g0(r) - 1] T(r), T = 1 below
/// taper_start, a raised cosine to 0 at taper_end. Following g0 - 1 (not g0) keeps the uniform
/// background of pairs isotropic; g0 T would add an anisotropic sphere of mean density whose S2
/// is largest below 1 1/A, nothing like a bond signal (docs/physics-simulator.md).
struct BondRotation {
    double beta = 0.0;  ///< > 0: more first-shell pairs along the loading axis
    double taper_start_angstrom = 7.0;
    double taper_end_angstrom = 9.0;

    [[nodiscard]] double taper(double r_angstrom) const;
    /// beta for a strain eps such that max |S2| over Q in [0.5, 20] 1/A is `amplitude` times
    /// that of the affine first-order S2 = -(c eps/sqrt5) Q dS0/dQ, c = 2(1 + nu)/3, with the sign
    /// of eps: compression gathers first-shell bonds along the axis (the bond-orientational
    /// anisotropy of stress-driven bond exchange), so g2 correlates positively with g0 - 1,
    /// which is what SPEC 7's classifier calls bond rotation (C_r >= 0.5). Tapers as in
    /// `shape`, beta of `shape` ignored.
    static double beta_matching_affine(const HardSphereStructure& structure,
                                       const IsotropicPairDistribution& g0, double eps,
                                       double poisson_ratio, double amplitude,
                                       const BondRotation& shape);
};

/// S2(Q) on a uniform grid from Q = 0, cubic (Catmull-Rom) interpolation; S2 is even in Q
/// (j2 is), which gives the point below 0. Zero beyond the table.
class HarmonicTable {
  public:
    HarmonicTable() = default;
    HarmonicTable(double q_step_inv_angstrom, std::vector<double> s2);
    [[nodiscard]] double at(double q_inv_angstrom) const;
    [[nodiscard]] double q_step_inv_angstrom() const { return q_step_; }
    [[nodiscard]] double q_max_inv_angstrom() const;
    [[nodiscard]] const std::vector<double>& values() const { return s2_; }

  private:
    double q_step_ = 0.0;
    std::vector<double> s2_;
};

/// Step of the S2 tables (cubic interpolation error ~1e-6 of the first-peak S2).
inline constexpr double kHarmonicTableStepInvAngstrom = 0.002;

/// g2(r) = (c/sqrt5) r d[eps(r) g0(r)]/dr, c = 2(1 + nu)/3, on g0's grid: SPEC 7's pair
/// conservation (derived in docs/physics-simulator.md).
std::vector<double> radial_strain_g2(const IsotropicPairDistribution& g0,
                                     const RadialStrainProfile& profile, double poisson_ratio);

/// S2(Q) of radial_strain_g2 on [0, q_max]. The constant part eps_aff r dg0/dr transforms exactly
/// to -(c eps_aff/sqrt5) Q dS0/dQ (integration by parts, docs/physics-simulator.md), which is used
/// as such; only the short-ranged rest r d[(eps - eps_aff) g0]/dr is integrated, so the slow decay
/// of g0 - 1 (e-fold ~6 A at eta = 0.55) cannot leak a truncation error into S2. Fails when the
/// step has not settled within g0's grid.
Result<HarmonicTable> radial_strain_s2(const HardSphereStructure& structure,
                                       const IsotropicPairDistribution& g0,
                                       const RadialStrainProfile& profile, double poisson_ratio,
                                       double q_max_inv_angstrom);

/// g2(r) = beta [g0(r) - 1] T(r) on g0's grid.
std::vector<double> bond_rotation_g2(const IsotropicPairDistribution& g0,
                                     const BondRotation& rotation);

/// S2(Q) of bond_rotation_g2 on [0, q_max]. Fails when the taper ends beyond g0's grid.
Result<HarmonicTable> bond_rotation_s2(const IsotropicPairDistribution& g0,
                                       const BondRotation& rotation, double q_max_inv_angstrom);

/// The structure a frame is rendered from: S(Q, cos psi), psi the angle between Q and the
/// loading axis (SPEC 3-4).
class StrainedStructure {
  public:
    enum class Kind { kIsotropic, kAffine, kHarmonic, kTabulated };

    /// No strain: S(Q).
    static StrainedStructure isotropic(HardSphereStructure structure);
    /// Exact affine deformation: S(|F^T Q|) (affine_structure_factor).
    static StrainedStructure affine(HardSphereStructure structure, UniaxialStrain strain);
    /// First-order model: S0(Q) + sqrt5 S2(Q) P2(cos psi), S0 the isotropic S.
    static StrainedStructure harmonic(HardSphereStructure structure, HarmonicTable s2);
    /// Both harmonics tabulated (e.g. diffraction from atoms, tabulated_structure.hpp):
    /// S = 1 + [S0 - 1](Q) + sqrt5 S2(Q) P2(cos psi). S0 - 1 and S2 are even in Q and 0 beyond
    /// their tables (S -> 1). isotropic_structure() is then a default HardSphereStructure.
    static StrainedStructure tabulated(HarmonicTable s0_minus_one, HarmonicTable s2);

    [[nodiscard]] Kind kind() const { return kind_; }
    [[nodiscard]] const HardSphereStructure& isotropic_structure() const { return structure_; }
    /// S(Q, cos psi).
    [[nodiscard]] double s(double q_inv_angstrom, double cos_psi) const;
    /// The tabulated S2 (kHarmonic and kTabulated; empty otherwise).
    [[nodiscard]] const HarmonicTable& s2_table() const { return s2_; }
    /// The tabulated S0 - 1 (kTabulated only; empty otherwise).
    [[nodiscard]] const HarmonicTable& s0_minus_one_table() const { return s0_minus_one_; }

  private:
    StrainedStructure(Kind kind, HardSphereStructure structure)
        : kind_(kind), structure_(std::move(structure)) {}

    Kind kind_;
    HardSphereStructure structure_;
    UniaxialStrain strain_;
    HarmonicTable s2_;
    HarmonicTable s0_minus_one_;
};

}  // namespace anisoflow::sim
