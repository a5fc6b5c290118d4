// The simulator's real-space side and its radial and rotation strain modes against analytic
// cases: g0 by its own transform, the l = 2 transform and its sign (SPEC 4, 6), the first-order
// affine limit of the radial mode, and the rotation model by independent quadrature.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "anisoflow/sim/pair_distribution.hpp"
#include "anisoflow/sim/strained_structure.hpp"
#include "anisoflow/sim/structure_model.hpp"

namespace anisoflow::sim {
namespace {

using ::testing::HasSubstr;

constexpr double kPi = std::numbers::pi;
constexpr double kRho = 0.0553;  // the default glass' rho0, /A^3
constexpr double kNu = 0.37;
constexpr double kC = 2.0 * (1.0 + kNu) / 3.0;  // SPEC 7's c

const HardSphereStructure& glass() {
    static const HardSphereStructure structure = *HardSphereStructure::create({});
    return structure;
}

// g0 - 1 of the eta = 0.55 glass decays by e every ~6 A (1e-5 at 60 A, 1e-11 near 150 A): this
// grid holds it all, so its transforms are not truncated.
const IsotropicPairDistribution& long_g0() {
    static const IsotropicPairDistribution g = *IsotropicPairDistribution::create(
        glass(), PairGrid{.r_max_angstrom = 160.0, .r_step_angstrom = 0.01});
    return g;
}

// The default grid (40 A), what `anisoflow simulate` uses for the default modes.
const IsotropicPairDistribution& default_g0() {
    static const IsotropicPairDistribution g = *IsotropicPairDistribution::create(glass());
    return g;
}

// 8-point Gauss-Legendre on [a, b]: an integrator independent of the library's trapezoid rule.
template <class F>
double gauss_legendre(F f, double a, double b) {
    static constexpr double kNodes[4] = {0.1834346424956498, 0.5255324099163290, 0.7966664774136267,
                                         0.9602898564975363};
    static constexpr double kWeights[4] = {0.3626837833783620, 0.3137066458778873,
                                           0.2223810344533745, 0.1012285362903763};
    const double mid = 0.5 * (a + b);
    const double half = 0.5 * (b - a);
    double sum = 0.0;
    for (int i = 0; i < 4; ++i) {
        sum += kWeights[i] * (f(mid + half * kNodes[i]) + f(mid - half * kNodes[i]));
    }
    return half * sum;
}

template <class F>
double integrate_panels(F f, double a, double b, int panels) {
    double sum = 0.0;
    const double width = (b - a) / panels;
    for (int p = 0; p < panels; ++p) {
        sum += gauss_legendre(f, a + p * width, a + (p + 1) * width);
    }
    return sum;
}

double max_abs(const std::vector<double>& values) {
    double m = 0.0;
    for (const double v : values) {
        m = std::max(m, std::abs(v));
    }
    return m;
}

// ---------------------------------------------------------------------------------------------
// g0 by the simulator's own sine transform.

TEST(IsotropicPairDistribution, VanishesInsideTheCoreAndTendsToOneFarOut) {
    const IsotropicPairDistribution& g = long_g0();
    const double sigma = glass().diameter_angstrom();
    double most_negative = 0.0;
    for (std::size_t k = 0; k < g.r_angstrom().size(); ++k) {
        const double r = g.r_angstrom()[k];
        most_negative = std::min(most_negative, g.g0()[k]);
        if (r < 0.5 * sigma) {
            // The hard core smoothed by a 3-D Gaussian of sqrt2 sigma_DW = 0.21 A: half a
            // diameter inside contact is 6 widths, exp(-(sigma/2)^2 / (4 sigma_DW^2)) ~ 1e-9 of
            // the contact value.
            ASSERT_LT(std::abs(g.g0()[k]), 1e-8) << "r = " << r;
        }
        if (r > 60.0) {
            ASSERT_LT(std::abs(g.g0()[k] - 1.0), 2e-5) << "r = " << r;
        }
    }
    // g0 is the damped hard-sphere g smoothed by a positive kernel: never negative beyond the
    // quadrature's rounding.
    EXPECT_GT(most_negative, -1e-12);
    // The first shell: a contact peak above 2 just beyond sigma.
    double peak = 0.0;
    double peak_r = 0.0;
    for (std::size_t k = 0; k < g.r_angstrom().size() && g.r_angstrom()[k] < 4.0; ++k) {
        if (g.g0()[k] > peak) {
            peak = g.g0()[k];
            peak_r = g.r_angstrom()[k];
        }
    }
    EXPECT_GT(peak, 2.0);
    EXPECT_GT(peak_r, sigma);
    EXPECT_LT(peak_r, sigma + 0.3);
}

TEST(IsotropicPairDistribution, BackTransformRecoversS) {
    // S(Q) - 1 = 4 pi rho0 Int r^2 [g0(r) - 1] j0(Qr) dr, on the same r grid (trapezoid rule).
    const IsotropicPairDistribution& g = long_g0();
    const double dr = g.r_step_angstrom();
    double worst = 0.0;
    for (double q = 0.3; q <= 20.0; q += 0.1) {
        double sum = 0.0;
        for (std::size_t k = 1; k < g.r_angstrom().size(); ++k) {
            const double r = g.r_angstrom()[k];
            sum += r * r * (g.g0()[k] - 1.0) * std::sin(q * r) / (q * r);
        }
        const double s = 1.0 + 4.0 * kPi * kRho * dr * sum;
        worst = std::max(worst, std::abs(s - glass().s(q)));
    }
    std::printf("back-transform of g0: max |S - S_PY| = %.2e over Q in [0.3, 20]\n", worst);
    // Round trip through two quadratures; the tail beyond 160 A is ~1e-9 of S.
    EXPECT_LT(worst, 1e-6);
}

TEST(IsotropicPairDistribution, DerivativeIsTheDerivativeOfG0) {
    const IsotropicPairDistribution& g = default_g0();
    constexpr double kStep = 1e-4;
    for (const double r : {2.3, 2.5, 2.7, 3.3, 4.1, 5.0, 8.5}) {
        const double difference = (g.g0_at(r + kStep) - g.g0_at(r - kStep)) / (2.0 * kStep);
        // Centred difference error ~ step^2 g0''' / 6 ~ 1e-7 at the contact peak.
        EXPECT_NEAR(g.dg0_dr_at(r), difference, 1e-6 * std::max(1.0, std::abs(difference)))
            << "r = " << r;
    }
    // The tabulated values are the same transform.
    EXPECT_DOUBLE_EQ(g.g0()[270], g.g0_at(g.r_angstrom()[270]));
    EXPECT_DOUBLE_EQ(g.dg0_dr_per_angstrom()[270], g.dg0_dr_at(g.r_angstrom()[270]));
}

TEST(IsotropicPairDistribution, RefusesAnUndampedStructure) {
    auto sharp = *HardSphereStructure::create(HardSphereParameters{0.0553, 0.55, 0.01});
    auto g = IsotropicPairDistribution::create(sharp);
    ASSERT_FALSE(g.has_value());
    EXPECT_THAT(g.error().message, HasSubstr("Debye-Waller width 0.01 A"));
}

// ---------------------------------------------------------------------------------------------
// The l = 2 transform and its sign.

TEST(L2Transform, SphericalBesselJ2MatchesTheStandardLibrary) {
    for (double x = 1e-3; x < 60.0; x *= 1.07) {
        ASSERT_NEAR(spherical_bessel_j2(x), std::sph_bessel(2, x), 1e-12) << "x = " << x;
    }
    EXPECT_EQ(spherical_bessel_j2(0.0), 0.0);
}

TEST(L2Transform, SpecSixInverseRecoversG2WithItsSign) {
    // A smooth shell g2(r) = exp(-(r - 3)^2 / 0.08): its S2 decays like a Gaussian, so SPEC 6's
    // inverse g2(r) = -1/(2 pi^2 rho0) Int Q^2 S2 j2(Qr) dQ converges and must give it back,
    // sign included, if S2 = -4 pi rho0 Int r^2 g2 j2 dr is its inverse.
    constexpr double kDr = 0.01;
    std::vector<double> g2(1001);
    for (std::size_t k = 0; k < g2.size(); ++k) {
        const double r = static_cast<double>(k) * kDr;
        g2[k] = std::exp(-(r - 3.0) * (r - 3.0) / 0.08);
    }
    std::vector<double> q;
    for (double value = 0.0; value <= 40.0; value += 0.01) {
        q.push_back(value);
    }
    const std::vector<double> s2 = l2_transform(g2, kDr, kRho, q);
    // Near the shell S2 is negative at low Q: -4 pi rho0 times a positive integral.
    EXPECT_LT(s2[50], 0.0);
    double worst = 0.0;
    for (const double r : {2.0, 2.6, 3.0, 3.3, 4.0}) {
        double sum = 0.0;
        for (std::size_t i = 0; i < q.size(); ++i) {
            sum += q[i] * q[i] * s2[i] * std::sph_bessel(2, q[i] * r);
        }
        const double back = -0.01 * sum / (2.0 * kPi * kPi * kRho);
        // Both quadratures are spectrally accurate here (1.6e-14 seen).
        EXPECT_NEAR(back, std::exp(-(r - 3.0) * (r - 3.0) / 0.08), 1e-10) << "r = " << r;
        worst = std::max(worst, std::abs(back - std::exp(-(r - 3.0) * (r - 3.0) / 0.08)));
    }
    std::printf("S2 -> SPEC 6 inverse -> g2 of a unit shell: max error %.1e\n", worst);
}

TEST(L2Transform, OfRTimesDg0DrIsMinusQTimesDS0DQ) {
    // Integration by parts with (x^3 j2)' = x^3 j1 and j0' = -j1:
    //   -4 pi rho0 Int r^3 g0'(r) j2(Qr) dr = -Q dS0/dQ,
    // so the affine g2 = (c eps/sqrt5) r dg0/dr has S2 = -(c eps/sqrt5) Q dS0/dQ. This checks the
    // g0 transform, its derivative, the l = 2 transform and its sign against dS/dQ of the closed
    // form at once.
    const IsotropicPairDistribution& g = long_g0();
    std::vector<double> g2(g.r_angstrom().size());
    for (std::size_t k = 0; k < g2.size(); ++k) {
        g2[k] = g.r_angstrom()[k] * g.dg0_dr_per_angstrom()[k];
    }
    std::vector<double> q;
    for (double value = 0.2; value <= 20.0; value += 0.02) {
        q.push_back(value);
    }
    const std::vector<double> s2 = l2_transform(g2, g.r_step_angstrom(), kRho, q);
    double worst = 0.0;
    double largest = 0.0;
    for (std::size_t i = 0; i < q.size(); ++i) {
        const double expected = -q[i] * glass().ds_dq(q[i]);
        largest = std::max(largest, std::abs(expected));
        worst = std::max(worst, std::abs(s2[i] - expected));
    }
    std::printf("l=2 transform of r dg0/dr vs -Q dS0/dQ: max error %.2e of max %.3g (%.1e)\n",
                worst, largest, worst / largest);
    EXPECT_GT(largest, 40.0);  // Q dS/dQ at the first peak
    // Truncation at 160 A (r^2 |h| ~ 3e-7) and dS/dQ's five-point difference (~1e-8).
    EXPECT_LT(worst, 2e-8 * largest);
}

// ---------------------------------------------------------------------------------------------
// Radial strain.

TEST(RadialStrainProfile, IsTheIssuesLogisticStep) {
    const RadialStrainProfile profile{};  // eps_aff 0.006, step at 11 A, width 0.5 A, drop 0.5
    EXPECT_NEAR(profile.eps(0.0), 0.003, 1e-12);
    EXPECT_NEAR(profile.eps(11.0), 0.0045, 1e-15);
    EXPECT_NEAR(profile.eps(40.0), 0.006, 1e-15);
    for (const double r : {9.0, 10.7, 11.0, 11.4, 13.0}) {
        const double expected = 0.006 * (1.0 - 0.5 / (1.0 + std::exp((r - 11.0) / 0.5)));
        EXPECT_NEAR(profile.eps(r), expected, 1e-15);
        const double difference = (profile.eps(r + 1e-5) - profile.eps(r - 1e-5)) / 2e-5;
        EXPECT_NEAR(profile.deps_dr_per_angstrom(r), difference, 1e-9);
    }
    EXPECT_GT(profile.settled_beyond_angstrom(), 11.0 + 0.5 * 30.0);
    EXPECT_LT(profile.settled_beyond_angstrom(), 40.0);
}

TEST(RadialStrain, ConstantEpsIsTheFirstOrderAffineS2AndTheExactAffinesP2Part) {
    constexpr double kEps = 1e-4;
    const RadialStrainProfile constant{.eps_aff = kEps, .inner_drop = 0.0};
    auto table = radial_strain_s2(glass(), default_g0(), constant, kNu, 15.0);
    ASSERT_TRUE(table.has_value()) << table.error().message;
    const StrainedStructure radial = StrainedStructure::harmonic(glass(), *table);
    const StrainedStructure affine = StrainedStructure::affine(glass(), UniaxialStrain{kEps, kNu});
    double largest = 0.0;
    double worst_first_order = 0.0;
    double worst_exact = 0.0;
    // Off the table's 0.002 1/A nodes, so that its interpolation is tested too.
    for (double q = 1.0007; q <= 12.0; q += 0.0493) {
        const double first_order = -(kC * kEps / std::sqrt(5.0)) * q * glass().ds_dq(q);
        largest = std::max(largest, std::abs(first_order));
        worst_first_order = std::max(worst_first_order, std::abs(table->at(q) - first_order));
        // P2 projection (SPEC 4: S2 = (sqrt5/2) Int_{-1}^{1} S P2 dmu) of both models.
        const auto projection = [&](const StrainedStructure& model) {
            const auto integrand = [&](double mu) {
                return model.s(q, mu) * 0.5 * (3.0 * mu * mu - 1.0);
            };
            return std::sqrt(5.0) / 2.0 * integrate_panels(integrand, -1.0, 1.0, 16);
        };
        const double radial_s2 = projection(radial);
        worst_exact = std::max(worst_exact, std::abs(radial_s2 - projection(affine)));
        // The harmonic model's own projection is its table (Gauss-Legendre is exact on P2^2).
        ASSERT_NEAR(radial_s2, table->at(q), 1e-12) << "Q = " << q;
    }
    std::printf("radial, constant eps: vs first order %.1e, vs exact affine P2 %.1e of max %.3g\n",
                worst_first_order / largest, worst_exact / largest, largest);
    // Table interpolation (Catmull-Rom, 0.002 1/A steps) only: 5e-7 seen.
    EXPECT_LT(worst_first_order, 1e-5 * largest);
    // Second order in eps: relative ~eps Q S''/S' ~ 1e-3 at the first peak.
    EXPECT_LT(worst_exact, 2e-3 * largest);
}

TEST(RadialStrain, StepProfileS2EqualsTheFullTransformOfItsG2) {
    // radial_strain_s2 transforms only r d[(eps - eps_aff) g0]/dr and adds the affine part in
    // closed form; the untruncated transform of the whole g2 on the 160 A grid must agree.
    const RadialStrainProfile step{};
    auto table = radial_strain_s2(glass(), default_g0(), step, kNu, 15.0);
    ASSERT_TRUE(table.has_value()) << table.error().message;
    const std::vector<double> g2 = radial_strain_g2(long_g0(), step, kNu);
    std::vector<double> q;
    for (double value = 0.3; value <= 15.0; value += 0.037) {
        q.push_back(value);
    }
    const std::vector<double> full = l2_transform(g2, long_g0().r_step_angstrom(), kRho, q);
    double worst = 0.0;
    for (std::size_t i = 0; i < q.size(); ++i) {
        worst = std::max(worst, std::abs(table->at(q[i]) - full[i]));
    }
    std::printf("radial step: split vs full transform %.1e of max %.3g\n", worst / max_abs(full),
                max_abs(full));
    EXPECT_LT(worst, 1e-5 * max_abs(full));
    // The inner strain is half the affine one: below the step g2 is half the affine g2.
    const auto& g = long_g0();
    const std::size_t k = 280;  // r = 2.8 A, the first peak
    const double inner_affine =
        0.5 * kC * 0.006 / std::sqrt(5.0) * g.r_angstrom()[k] * g.dg0_dr_per_angstrom()[k];
    // The step's tail there (e^-16 of it in eps and eps') is 3e-7 of g2.
    EXPECT_NEAR(g2[k], inner_affine, 1e-6 * std::abs(inner_affine));
}

TEST(RadialStrain, RefusesAStepThatDoesNotSettleWithinTheGrid) {
    const RadialStrainProfile far{.step_centre_angstrom = 30.0, .step_width_angstrom = 1.0};
    auto table = radial_strain_s2(glass(), default_g0(), far, kNu, 15.0);
    ASSERT_FALSE(table.has_value());
    EXPECT_THAT(table.error().message, HasSubstr("beyond the pair grid"));
}

// ---------------------------------------------------------------------------------------------
// Bond rotation.

TEST(BondRotation, S2IsTheL2TransformOfBetaTimesG0MinusOneTapered) {
    const BondRotation rotation{.beta = -0.05};
    auto table = bond_rotation_s2(default_g0(), rotation, 15.0);
    ASSERT_TRUE(table.has_value()) << table.error().message;
    EXPECT_EQ(rotation.taper(6.9), 1.0);
    EXPECT_NEAR(rotation.taper(8.0), 0.5, 1e-15);
    EXPECT_EQ(rotation.taper(9.0), 0.0);
    // Direct quadrature, independent of the library's: Gauss-Legendre panels with breaks at the
    // taper's ends (where T'' jumps), g0 from the transform at each node, j2 from <cmath>.
    const auto& g = default_g0();
    double worst = 0.0;
    // Off the table's nodes (0.002 1/A apart), so its interpolation counts too.
    for (const double q : {0.8013, 2.5007, 2.7011, 3.1003, 5.0009, 9.3005}) {
        const auto integrand = [&](double r) {
            return r * r * rotation.beta * (g.g0_at(r) - 1.0) * rotation.taper(r) *
                   std::sph_bessel(2, q * r);
        };
        const double direct = -4.0 * kPi * kRho *
                              (integrate_panels(integrand, 0.0, 7.0, 140) +
                               integrate_panels(integrand, 7.0, 9.0, 40));
        // Trapezoid vs Gauss-Legendre (5e-11 on the nodes) and the table's cubic interpolation
        // (8e-9 of the maximum seen off the nodes).
        EXPECT_NEAR(table->at(q), direct, 1e-7 * max_abs(table->values())) << "Q = " << q;
        worst = std::max(worst, std::abs(table->at(q) - direct));
    }
    std::printf("rotation: table vs direct quadrature %.1e of max |S2| %.3g\n",
                worst / max_abs(table->values()), max_abs(table->values()));
    // Nonzero, largest near the first peak, and nothing of the kind at low Q.
    double peak_q = 0.0;
    double peak = 0.0;
    for (double q = 0.5; q <= 15.0; q += 0.01) {
        if (std::abs(table->at(q)) > peak) {
            peak = std::abs(table->at(q));
            peak_q = q;
        }
    }
    EXPECT_GT(peak, 0.05);
    EXPECT_GT(peak_q, 2.4);
    EXPECT_LT(peak_q, 3.0);
    // No bond-length change: g2 follows g0 - 1 itself, not its derivative.
    const std::vector<double> g2 = bond_rotation_g2(g, rotation);
    EXPECT_NEAR(g2[300], -0.05 * (g.g0()[300] - 1.0), 1e-15);
    EXPECT_EQ(g2[950], 0.0);
}

TEST(BondRotation, BetaMatchesTheAffinePeakAndGathersBondsAlongACompressedAxis) {
    constexpr double kEps = 0.006;
    const BondRotation shape{};
    const double beta =
        BondRotation::beta_matching_affine(glass(), default_g0(), kEps, kNu, 1.0, shape);
    EXPECT_GT(beta, 0.0);
    // Tension, the other way.
    EXPECT_NEAR(BondRotation::beta_matching_affine(glass(), default_g0(), -kEps, kNu, 1.0, shape),
                -beta, 1e-15);
    // Twice the amplitude, twice beta.
    EXPECT_NEAR(BondRotation::beta_matching_affine(glass(), default_g0(), kEps, kNu, 2.0, shape),
                2.0 * beta, 1e-15);
    auto table = bond_rotation_s2(default_g0(), BondRotation{.beta = beta}, 20.5);
    ASSERT_TRUE(table.has_value());
    double rotation_peak = 0.0;
    double affine_peak = 0.0;
    for (double q = 0.5; q <= 20.0; q += 0.01) {
        rotation_peak = std::max(rotation_peak, std::abs(table->at(q)));
        affine_peak =
            std::max(affine_peak, kC * kEps / std::sqrt(5.0) * q * std::abs(glass().ds_dq(q)));
    }
    EXPECT_NEAR(rotation_peak / affine_peak, 1.0, 1e-4);
    // More first-shell pairs along the axis: g2 > 0 at the first peak, as g0 - 1 (SPEC 7's
    // C_r = corr(g2, g0 - 1) is +1).
    const auto g2 = bond_rotation_g2(default_g0(), BondRotation{.beta = beta});
    EXPECT_GT(g2[280], 0.0);
}

TEST(StrainedStructure, HarmonicModelIsS0PlusSqrt5S2P2) {
    const HarmonicTable table(0.5, {0.0, 0.1, 0.2, 0.3, 0.4, 0.5});
    const StrainedStructure model = StrainedStructure::harmonic(glass(), table);
    EXPECT_EQ(model.kind(), StrainedStructure::Kind::kHarmonic);
    // Catmull-Rom is exact on a straight line, and S2(0.75) = 0.15.
    EXPECT_NEAR(model.s(0.75, 1.0), glass().s(0.75) + std::sqrt(5.0) * 0.15, 1e-12);
    EXPECT_NEAR(model.s(0.75, 0.0), glass().s(0.75) - 0.5 * std::sqrt(5.0) * 0.15, 1e-12);
    // The magic angle: P2 = 0.
    EXPECT_NEAR(model.s(0.75, 1.0 / std::sqrt(3.0)), glass().s(0.75), 1e-12);
    // Beyond the table S2 is zero; the isotropic model ignores psi.
    EXPECT_EQ(model.s(10.0, 1.0), glass().s(10.0));
    EXPECT_EQ(StrainedStructure::isotropic(glass()).s(2.7, 1.0), glass().s(2.7));
}

}  // namespace
}  // namespace anisoflow::sim
