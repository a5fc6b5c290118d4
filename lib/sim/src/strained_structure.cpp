#include "anisoflow/sim/strained_structure.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace anisoflow::sim {

namespace {

// c = 2(1 + nu)/3 of SPEC 7: the P2 part of a uniaxial strain's radial stretch
// (docs/physics-simulator.md).
double strain_factor(double poisson_ratio) { return 2.0 * (1.0 + poisson_ratio) / 3.0; }

// eps(r) - eps_aff has fallen to this fraction of eps_aff where the S2 quadrature may stop.
constexpr double kSettledFraction = 1e-15;

// Q range over which the rotation amplitude is matched to the affine one: the first peak and
// the oscillations a detector records, not the Q -> 0 limit where both vanish.
constexpr double kMatchQMin = 0.5;
constexpr double kMatchQMax = 20.0;
constexpr double kMatchQStep = 0.01;

std::vector<double> q_grid(double q_max, double step) {
    // Two points past q_max so the cubic interpolation never reaches the end of the table.
    const auto n = static_cast<std::size_t>(std::ceil(q_max / step)) + 3;
    std::vector<double> q(n);
    for (std::size_t i = 0; i < n; ++i) {
        q[i] = static_cast<double>(i) * step;
    }
    return q;
}

Result<void> check_q_max(double q_max) {
    if (!(q_max > 0.0) || !std::isfinite(q_max)) {
        return fail(ErrorCode::kInvalidArgument, "S2 table: Q max {} 1/A is not positive", q_max);
    }
    return {};
}

}  // namespace

double RadialStrainProfile::eps(double r) const {
    const double x = (r - step_centre_angstrom) / step_width_angstrom;
    // 1/(1 + e^x) written so that neither branch overflows.
    const double inner = x > 0.0 ? std::exp(-x) / (1.0 + std::exp(-x)) : 1.0 / (1.0 + std::exp(x));
    return eps_aff * (1.0 - inner_drop * inner);
}

double RadialStrainProfile::deps_dr_per_angstrom(double r) const {
    // d/dr [1/(1 + e^x)] = -e^x/(1 + e^x)^2 / w = -1/(4 w cosh^2(x/2)).
    const double x = (r - step_centre_angstrom) / step_width_angstrom;
    const double ch = std::cosh(0.5 * x);
    return eps_aff * inner_drop / (4.0 * step_width_angstrom * ch * ch);
}

double RadialStrainProfile::settled_beyond_angstrom() const {
    if (inner_drop == 0.0 || eps_aff == 0.0) {
        return 0.0;
    }
    // |eps - eps_aff| = |eps_aff drop| / (1 + e^x) < |eps_aff drop| e^-x.
    return step_centre_angstrom +
           step_width_angstrom * std::max(0.0, std::log(std::abs(inner_drop) / kSettledFraction));
}

double BondRotation::taper(double r) const {
    if (r <= taper_start_angstrom) {
        return 1.0;
    }
    if (r >= taper_end_angstrom) {
        return 0.0;
    }
    const double t = (r - taper_start_angstrom) / (taper_end_angstrom - taper_start_angstrom);
    return 0.5 * (1.0 + std::cos(std::numbers::pi * t));
}

double BondRotation::beta_matching_affine(const HardSphereStructure& structure,
                                          const IsotropicPairDistribution& g0, double eps,
                                          double poisson_ratio, double amplitude,
                                          const BondRotation& shape) {
    BondRotation unit = shape;
    unit.beta = 1.0;
    const std::vector<double> g2 = bond_rotation_g2(g0, unit);
    std::vector<double> q;
    for (double value = kMatchQMin; value <= kMatchQMax; value += kMatchQStep) {
        q.push_back(value);
    }
    const std::vector<double> s2 =
        l2_transform(g2, g0.r_step_angstrom(), g0.number_density_per_cubic_angstrom(), q);
    double rotation_peak = 0.0;
    double affine_peak = 0.0;  // max |Q dS0/dQ|
    for (std::size_t i = 0; i < q.size(); ++i) {
        rotation_peak = std::max(rotation_peak, std::abs(s2[i]));
        affine_peak = std::max(affine_peak, std::abs(q[i] * structure.ds_dq(q[i])));
    }
    const double affine_s2_peak = strain_factor(poisson_ratio) * eps / std::sqrt(5.0) * affine_peak;
    return amplitude * affine_s2_peak / rotation_peak;
}

HarmonicTable::HarmonicTable(double q_step_inv_angstrom, std::vector<double> s2)
    : q_step_(q_step_inv_angstrom), s2_(std::move(s2)) {}

double HarmonicTable::q_max_inv_angstrom() const {
    return s2_.empty() ? 0.0 : static_cast<double>(s2_.size() - 1) * q_step_;
}

double HarmonicTable::at(double q_inv_angstrom) const {
    if (s2_.size() < 4) {
        return 0.0;
    }
    const double x = std::abs(q_inv_angstrom) / q_step_;
    const auto i = static_cast<std::size_t>(x);
    const double t = x - static_cast<double>(i);
    if (i + 2 >= s2_.size()) {
        // The last interval linearly, nothing beyond: tables reach past the Q a caller asks.
        return i + 1 < s2_.size() ? s2_[i] + t * (s2_[i + 1] - s2_[i]) : 0.0;
    }
    // Catmull-Rom through i-1 .. i+2; S2 is even in Q, so the point before Q = 0 is S2(step).
    const double p0 = i == 0 ? s2_[1] : s2_[i - 1];
    const double p1 = s2_[i];
    const double p2 = s2_[i + 1];
    const double p3 = s2_[i + 2];
    return p1 + 0.5 * t *
                    (p2 - p0 +
                     t * (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3 + t * (3.0 * (p1 - p2) + p3 - p0)));
}

std::vector<double> radial_strain_g2(const IsotropicPairDistribution& g0,
                                     const RadialStrainProfile& profile, double poisson_ratio) {
    const double scale = strain_factor(poisson_ratio) / std::sqrt(5.0);
    const auto& r = g0.r_angstrom();
    std::vector<double> g2(r.size());
    for (std::size_t k = 0; k < r.size(); ++k) {
        // r d[eps g0]/dr = r (eps' g0 + eps g0'), with dg0/dr from the transform.
        g2[k] = scale * r[k] *
                (profile.deps_dr_per_angstrom(r[k]) * g0.g0()[k] +
                 profile.eps(r[k]) * g0.dg0_dr_per_angstrom()[k]);
    }
    return g2;
}

Result<HarmonicTable> radial_strain_s2(const HardSphereStructure& structure,
                                       const IsotropicPairDistribution& g0,
                                       const RadialStrainProfile& profile, double poisson_ratio,
                                       double q_max_inv_angstrom) {
    if (auto checked = check_q_max(q_max_inv_angstrom); !checked) {
        return tl::unexpected(checked.error());
    }
    if (!(profile.step_width_angstrom > 0.0) || !std::isfinite(profile.step_centre_angstrom) ||
        !std::isfinite(profile.inner_drop) || !std::isfinite(profile.eps_aff)) {
        return fail(ErrorCode::kInvalidArgument,
                    "radial strain: step width {} A must be positive and centre {} A, inner drop "
                    "{} and eps {} finite",
                    profile.step_width_angstrom, profile.step_centre_angstrom, profile.inner_drop,
                    profile.eps_aff);
    }
    const double r_max = g0.r_angstrom().back();
    if (profile.settled_beyond_angstrom() > r_max) {
        return fail(ErrorCode::kInvalidArgument,
                    "radial strain: the step at {} A of width {} A settles only at {:.1f} A, "
                    "beyond the pair grid's {} A",
                    profile.step_centre_angstrom, profile.step_width_angstrom,
                    profile.settled_beyond_angstrom(), r_max);
    }
    // The short-ranged part: eps - eps_aff in place of eps (same eps' ).
    const double scale = strain_factor(poisson_ratio) / std::sqrt(5.0);
    const auto& r = g0.r_angstrom();
    std::vector<double> rest(r.size());
    for (std::size_t k = 0; k < r.size(); ++k) {
        rest[k] = scale * r[k] *
                  (profile.deps_dr_per_angstrom(r[k]) * g0.g0()[k] +
                   (profile.eps(r[k]) - profile.eps_aff) * g0.dg0_dr_per_angstrom()[k]);
    }
    const std::vector<double> q = q_grid(q_max_inv_angstrom, kHarmonicTableStepInvAngstrom);
    std::vector<double> s2 =
        l2_transform(rest, g0.r_step_angstrom(), g0.number_density_per_cubic_angstrom(), q);
    for (std::size_t i = 0; i < q.size(); ++i) {
        s2[i] -= scale * profile.eps_aff * q[i] * structure.ds_dq(q[i]);
    }
    return HarmonicTable(kHarmonicTableStepInvAngstrom, std::move(s2));
}

std::vector<double> bond_rotation_g2(const IsotropicPairDistribution& g0,
                                     const BondRotation& rotation) {
    const auto& r = g0.r_angstrom();
    std::vector<double> g2(r.size());
    for (std::size_t k = 0; k < r.size(); ++k) {
        g2[k] = rotation.beta * (g0.g0()[k] - 1.0) * rotation.taper(r[k]);
    }
    return g2;
}

Result<HarmonicTable> bond_rotation_s2(const IsotropicPairDistribution& g0,
                                       const BondRotation& rotation, double q_max_inv_angstrom) {
    if (auto checked = check_q_max(q_max_inv_angstrom); !checked) {
        return tl::unexpected(checked.error());
    }
    if (!(rotation.taper_start_angstrom > 0.0 &&
          rotation.taper_end_angstrom > rotation.taper_start_angstrom) ||
        !std::isfinite(rotation.beta)) {
        return fail(ErrorCode::kInvalidArgument,
                    "bond rotation: the taper must run from a positive start ({} A) to a larger "
                    "end ({} A), beta {} finite",
                    rotation.taper_start_angstrom, rotation.taper_end_angstrom, rotation.beta);
    }
    if (rotation.taper_end_angstrom > g0.r_angstrom().back()) {
        return fail(ErrorCode::kInvalidArgument,
                    "bond rotation: the taper ends at {} A, beyond the pair grid's {} A",
                    rotation.taper_end_angstrom, g0.r_angstrom().back());
    }
    const std::vector<double> q = q_grid(q_max_inv_angstrom, kHarmonicTableStepInvAngstrom);
    return HarmonicTable(kHarmonicTableStepInvAngstrom,
                         l2_transform(bond_rotation_g2(g0, rotation), g0.r_step_angstrom(),
                                      g0.number_density_per_cubic_angstrom(), q));
}

StrainedStructure StrainedStructure::isotropic(HardSphereStructure structure) {
    return StrainedStructure(Kind::kIsotropic, std::move(structure));
}

StrainedStructure StrainedStructure::affine(HardSphereStructure structure, UniaxialStrain strain) {
    StrainedStructure model(Kind::kAffine, std::move(structure));
    model.strain_ = strain;
    return model;
}

StrainedStructure StrainedStructure::harmonic(HardSphereStructure structure, HarmonicTable s2) {
    StrainedStructure model(Kind::kHarmonic, std::move(structure));
    model.s2_ = std::move(s2);
    return model;
}

StrainedStructure StrainedStructure::tabulated(HarmonicTable s0_minus_one, HarmonicTable s2) {
    StrainedStructure model(Kind::kTabulated, HardSphereStructure{});
    model.s0_minus_one_ = std::move(s0_minus_one);
    model.s2_ = std::move(s2);
    return model;
}

double StrainedStructure::s(double q_inv_angstrom, double cos_psi) const {
    switch (kind_) {
        case Kind::kTabulated: {
            const double p2 = 0.5 * (3.0 * cos_psi * cos_psi - 1.0);
            return 1.0 + s0_minus_one_.at(q_inv_angstrom) +
                   std::sqrt(5.0) * s2_.at(q_inv_angstrom) * p2;
        }
        case Kind::kAffine:
            return affine_structure_factor(structure_, q_inv_angstrom, cos_psi, strain_);
        case Kind::kHarmonic: {
            const double p2 = 0.5 * (3.0 * cos_psi * cos_psi - 1.0);
            return structure_.s(q_inv_angstrom) + std::sqrt(5.0) * s2_.at(q_inv_angstrom) * p2;
        }
        case Kind::kIsotropic:
            break;
    }
    return structure_.s(q_inv_angstrom);
}

}  // namespace anisoflow::sim
