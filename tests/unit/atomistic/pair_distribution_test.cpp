// g0/g2 from atoms against the affine model of SPEC 7 in the normalisation of SPEC 4.

#include "anisoflow/atomistic/pair_distribution.hpp"

#include <cmath>

#include <gtest/gtest.h>

#include "anisoflow/physics/affine_fit.hpp"

#include "packing.hpp"

namespace anisoflow::atomistic {
namespace {

using testing::shared_packing;

constexpr double kNu = 0.37;      // Poisson ratio of the applied strain (a metallic glass)
constexpr double kEpsAff = 0.01;  // compression along the loading axis z, SPEC 7 sign
constexpr double kFitRMin = 0.8;  // from below the first peak (g0 rises from 0 near 0.85)
constexpr double kFitRMax = 1.7;  // to past the first minimum of g(r) (~1.5)
// Measured on this packing: 0.97, 0.89, 0.95 of the expected alpha along x, y, z (mean 0.94);
// with a jitter of 0.08 instead of 0.05: 0.89, 1.09, 0.87. The scatter (5-10 %) is the shot noise
// of pairs crossing bin edges, and the mean's shortfall is within it (not established as a
// bias; O(eps) terms are ~1 %). The tolerances still catch a wrong factor (sqrt5, 2l+1 = 5).
constexpr double kAlphaTolerance = 0.15;
constexpr double kMeanAlphaTolerance = 0.10;

PairDistributionOptions options() {
    PairDistributionOptions o;
    o.r_max = 4.0;
    o.bin_width = 0.02;
    o.loading_axis = {0.0, 0.0, 1.0};
    return o;
}

TEST(PairDistribution, HasAFirstPeakAndMinimumForTheTestPacking) {
    const auto& p = shared_packing();
    auto pd = pair_distribution(p.box, p.position, options());
    ASSERT_TRUE(pd) << pd.error().message;
    auto r_min = first_minimum(pd->g0);
    ASSERT_TRUE(r_min) << r_min.error().message;
    EXPECT_GT(*r_min, 1.2);
    EXPECT_LT(*r_min, 2.0);
    // g0 -> 1 at large r: the number density normalisation (rho0 = N / V).
    double tail = 0.0;
    for (std::size_t k = 175; k < 200; ++k) {
        tail += pd->g0.value[k] / 25.0;
    }
    EXPECT_NEAR(tail, 1.0, 0.02);
}

TEST(PairDistribution, AffineStrainGivesG2EqualAlphaRDg0Dr) {
    // SPEC 7 (in the SPEC 4 normalisation): g2 = alpha r dg0/dr with alpha = 2 (1 + nu) eps /
    // (3 sqrt5), i.e. eps = 3 sqrt5 alpha / (2 (1 + nu)), eps > 0 for compression.
    const double expected = 2.0 * (1.0 + kNu) * kEpsAff / (3.0 * std::sqrt(5.0));
    EXPECT_NEAR(physics::alpha_from_eps_aff(kEpsAff, kNu), expected, 1e-15);
    const auto& p = shared_packing();
    physics::AffineFitOptions fit;
    fit.nu = kNu;
    fit.r_fit_min = kFitRMin;  // fit_alpha checks that the default range lies in the grid
    fit.r_fit_max = kFitRMax;
    fit.window_angstrom = 0.5;  // r_c windows are unused here, but must fit in the range
    // The first shell carries the signal: there r dg0/dr ~ 10 dwarfs its noise (~0.5), so the
    // plain fit is not attenuated (over the weak outer shells it would be, by ~10 %; the
    // errors-in-variables correction needs g0's variance, and pair counts of a dense packing
    // are sub-Poissonian, so the Poisson variance over-corrects by as much).
    fit.errors_in_variables = false;
    // The loading axis along x, y and z in turn (three nearly independent estimates).
    double mean_alpha = 0.0;
    for (std::size_t axis = 0; axis < 3; ++axis) {
        Mat3 f{1.0 + kNu * kEpsAff, 0.0, 0.0, 0.0, 1.0 + kNu * kEpsAff, 0.0, 0.0, 0.0,
               1.0 + kNu * kEpsAff};
        f[4 * axis] = 1.0 - kEpsAff;
        PairDistributionOptions o = options();
        o.r_max = 2.0;  // the fit range and a little more: 8x fewer pairs than r_max = 4
        o.loading_axis = {0.0, 0.0, 0.0};
        o.loading_axis[axis] = 1.0;
        const auto deformed = testing::deform(p.box, p.position, f);
        auto ref = pair_distribution(p.box, p.position, o);
        auto def = pair_distribution(p.box.deformed(f), deformed, o);
        ASSERT_TRUE(ref && def);
        // The change of g2 on straining: the same pairs, so the packing's own l = 2 fluctuation
        // cancels and what is left is the shot noise of pairs crossing bin edges.
        physics::RCurve dg2 = def->g2;
        // Its variance is roughly the same in every bin of the fit range (the pairs within
        // eps r of an edge): an unweighted fit. Poisson weights of the counts would favour the
        // foot of the first peak, where the binned derivative is least accurate.
        for (std::size_t k = 0; k < dg2.size(); ++k) {
            dg2.value[k] -= ref->g2.value[k];
            dg2.variance[k] = 1.0;
        }
        auto alpha = physics::fit_alpha(ref->g0, dg2, fit, kFitRMin, kFitRMax);
        ASSERT_TRUE(alpha) << alpha.error().message;
        EXPECT_NEAR(alpha->slope / expected, 1.0, kAlphaTolerance)
            << "axis " << axis << ": alpha " << alpha->slope << ", expected " << expected;
        mean_alpha += alpha->slope / 3.0;
    }
    EXPECT_NEAR(mean_alpha / expected, 1.0, kMeanAlphaTolerance) << mean_alpha;
    EXPECT_NEAR(physics::eps_aff_from_alpha(mean_alpha, kNu), kEpsAff,
                kMeanAlphaTolerance * kEpsAff);
}

TEST(PairDistribution, PerAtomG2AveragesToTheGlobalG2) {
    const auto& p = shared_packing();
    PairDistributionOptions o = options();
    o.r_max = 2.0;
    auto global = pair_distribution(p.box, p.position, o);
    auto per_atom = per_atom_g2(p.box, p.position, o);
    ASSERT_TRUE(global && per_atom);
    ASSERT_EQ(per_atom->r.size(), global->g2.size());
    for (std::size_t k = 0; k < per_atom->r.size(); ++k) {
        double mean = 0.0;
        for (std::size_t i = 0; i < per_atom->atoms; ++i) {
            mean += per_atom->at(i, k);
        }
        mean /= static_cast<double>(per_atom->atoms);
        // float storage: 1e-7 relative per atom value of order 10-100.
        EXPECT_NEAR(mean, global->g2.value[k], 1e-5) << "bin " << k;
    }
}

TEST(PairDistribution, GroupsSplitTheCentresAndAverageBackToTheWhole) {
    const auto& p = shared_packing();
    std::vector<int> group(p.position.size());
    for (std::size_t i = 0; i < group.size(); ++i) {
        group[i] = static_cast<int>(i % 3);
    }
    PairDistributionOptions o = options();
    o.r_max = 2.0;
    auto whole = pair_distribution(p.box, p.position, o);
    auto parts = grouped_pair_distribution(p.box, p.position, group, 3, o);
    ASSERT_TRUE(whole && parts);
    for (std::size_t k = 0; k < whole->g0.size(); ++k) {
        double g0 = 0.0;
        double g2 = 0.0;
        for (const auto& part : *parts) {
            const double w = static_cast<double>(part.atoms) / static_cast<double>(whole->atoms);
            g0 += w * part.g0.value[k];
            g2 += w * part.g2.value[k];
        }
        EXPECT_NEAR(g0, whole->g0.value[k], 1e-12);
        EXPECT_NEAR(g2, whole->g2.value[k], 1e-12);
    }
}

TEST(PairDistribution, RefusesBadOptions) {
    const auto& p = shared_packing();
    PairDistributionOptions o = options();
    o.loading_axis = {0.0, 0.0, 0.0};
    EXPECT_FALSE(pair_distribution(p.box, p.position, o));
    o = options();
    o.r_max = 20.0;  // more than half the box
    EXPECT_FALSE(pair_distribution(p.box, p.position, o));
}

}  // namespace
}  // namespace anisoflow::atomistic
