// Tests of bond breaking and bond orientation (issue 7): what an affine strain must and must not
// break, breaking concentrated at a shear inclusion and rising with D2_min, and Delta P(phi)
// against its analytic value for an isotropic distribution under uniaxial compression.

#include "anisoflow/atomistic/bonds.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>

#include <gtest/gtest.h>

#include "anisoflow/atomistic/d2min.hpp"

#include "packing.hpp"

namespace anisoflow::atomistic {
namespace {

// 4,000 unit spheres at packing fraction 0.33 (as the shared packing, smaller: these tests need
// bonds, not a smooth g(r)); ~12,000 bonds at the cutoff below.
constexpr std::size_t kAtoms = 4000;
constexpr double kPhi = 0.33;
constexpr double kJitter = 0.05;
// The first minimum of g(r) of this packing is ~1.5 diameters (d2min_test).
constexpr double kCutoff = 1.5;
constexpr double kNu = 0.37;

const testing::Packing& packing() {
    static const testing::Packing p = testing::random_packing(kAtoms, kPhi, kJitter, 7);
    return p;
}

Mat3 uniaxial(double eps, double nu) {
    return {1.0 + nu * eps, 0.0, 0.0, 0.0, 1.0 + nu * eps, 0.0, 0.0, 0.0, 1.0 - eps};
}

Vec3 map_by(const Mat3& f, const Vec3& d) {
    return {f[0] * d[0] + f[1] * d[1] + f[2] * d[2], f[3] * d[0] + f[4] * d[1] + f[5] * d[2],
            f[6] * d[0] + f[7] * d[1] + f[8] * d[2]};
}

double length(const Vec3& d) { return std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]); }

TEST(Bonds, FindsEveryPairBelowTheCutoffOnce) {
    const auto& p = packing();
    auto bonds = find_bonds(p.box, p.position, kCutoff);
    ASSERT_TRUE(bonds) << bonds.error().message;
    // Brute force over the first 200 atoms: every partner within the cutoff, by minimum image.
    std::size_t expected = 0;
    std::size_t found = 0;
    for (std::size_t i = 0; i < 200; ++i) {
        for (std::size_t j = i + 1; j < p.position.size(); ++j) {
            const Vec3 d = p.box.minimum_image({p.position[j][0] - p.position[i][0],
                                                p.position[j][1] - p.position[i][1],
                                                p.position[j][2] - p.position[i][2]});
            expected += length(d) < kCutoff ? 1 : 0;
        }
    }
    for (const auto& [i, j] : bonds->atoms) {
        ASSERT_LT(i, j);
        found += i < 200 ? 1 : 0;
    }
    EXPECT_EQ(found, expected);
    // Coordination ~6 at the first minimum of a phi = 0.33 packing: ~3 bonds per atom.
    EXPECT_GT(bonds->size(), 2 * kAtoms);
    EXPECT_LT(bonds->size(), 5 * kAtoms);
}

TEST(BondBreaking, AffineStrainBreaksExactlyTheBondsItStretchesAcrossTheCutoff) {
    // Uniaxial compression: the largest stretch is 1 + nu eps (in the x-y plane), so no bond
    // shorter than cutoff / (1 + nu eps) can break, and with break_factor 1 + nu eps none does.
    const auto& p = packing();
    constexpr double kEps = 0.02;
    const Mat3 f = uniaxial(kEps, kNu);
    const auto deformed = testing::deform(p.box, p.position, f);
    const Box def_box = p.box.deformed(f);
    auto result = compute_bond_breaking(p.box, p.position, def_box, deformed, {kCutoff, 1.0});
    ASSERT_TRUE(result) << result.error().message;
    auto bonds = find_bonds(p.box, p.position, kCutoff);
    ASSERT_TRUE(bonds);
    std::size_t expected = 0;
    for (const Vec3& d : bonds->separation) {
        if (length(map_by(f, d)) >= kCutoff) {
            ++expected;
            EXPECT_GE(length(d), kCutoff / (1.0 + kNu * kEps));
        }
    }
    EXPECT_EQ(result->total_bonds, bonds->size());
    EXPECT_EQ(result->total_broken, expected);
    EXPECT_GT(expected, 0U) << "the test needs bonds near the cutoff";
    std::size_t per_atom = 0;
    for (std::size_t i = 0; i < p.position.size(); ++i) {
        per_atom += static_cast<std::size_t>(result->broken[i]);
    }
    EXPECT_EQ(per_atom, 2 * expected);  // a bond counts at both ends

    auto margin = compute_bond_breaking(p.box, p.position, def_box, deformed,
                                        {kCutoff, 1.0 + kNu * kEps + 1e-9});
    ASSERT_TRUE(margin);
    EXPECT_EQ(margin->total_broken, 0U);
}

TEST(BondBreaking, WrappedPositionsInATiltedBoxAreFollowedAsTheAffineImage) {
    // Simple shear F = 1 + 0.08 e_x e_z: the deformed box is triclinic and positions are wrapped
    // back into it, so many bonds cross its boundary differently than in the reference. Every
    // followed separation must still be F d, and only bonds F stretches past the cutoff break.
    const auto& p = packing();
    constexpr double kGamma = 0.08;
    const Mat3 f{1.0, 0.0, kGamma, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0};
    const Box box = p.box.deformed(f);
    ASSERT_TRUE(box.triclinic());
    auto deformed = testing::deform(p.box, p.position, f);
    for (Vec3& x : deformed) {
        Vec3 s = box.to_reduced(x);
        for (double& v : s) {
            v -= std::floor(v);
        }
        x = box.from_reduced(s);
    }
    auto bonds = find_bonds(p.box, p.position, kCutoff);
    ASSERT_TRUE(bonds);
    auto followed = follow_bonds(p.box, *bonds, box, deformed);
    ASSERT_TRUE(followed) << followed.error().message;
    std::size_t stretched = 0;
    for (std::size_t k = 0; k < bonds->size(); ++k) {
        const Vec3 expected = map_by(f, bonds->separation[k]);
        for (std::size_t c = 0; c < 3; ++c) {
            ASSERT_NEAR((*followed)[k][c], expected[c], 1e-9) << "bond " << k;
        }
        stretched += length(expected) >= kCutoff ? 1 : 0;
    }
    auto result = compute_bond_breaking(p.box, p.position, box, deformed, {kCutoff, 1.0});
    ASSERT_TRUE(result);
    EXPECT_EQ(result->total_broken, stretched);
    EXPECT_GT(stretched, 0U);
    // The largest principal stretch of a simple shear: gamma / 2 + sqrt(1 + gamma^2 / 4).
    const double stretch = kGamma / 2.0 + std::sqrt(1.0 + kGamma * kGamma / 4.0);
    auto none = compute_bond_breaking(p.box, p.position, box, deformed, {kCutoff, stretch});
    ASSERT_TRUE(none);
    EXPECT_EQ(none->total_broken, 0U);
}

// Background compression, a sphere of radius 5 sheared by gamma inside it (reference
// coordinates, as d2min_test) and a small noise everywhere, so D2_min is positive for all atoms.
struct Inclusion {
    Box box;
    std::vector<Vec3> deformed;
    std::vector<double> distance_from_centre;
};

Inclusion shear_inclusion(double gamma) {
    const auto& p = packing();
    constexpr double kRadius = 5.0;
    constexpr double kNoise = 0.005;
    const Mat3 f = uniaxial(0.01, kNu);
    Inclusion out{p.box.deformed(f), testing::deform(p.box, p.position, f), {}};
    const Vec3 centre = p.box.from_reduced({0.5, 0.5, 0.5});
    std::mt19937_64 rng(11);
    std::normal_distribution<double> noise(0.0, kNoise);
    for (std::size_t i = 0; i < p.position.size(); ++i) {
        const Vec3 d =
            p.box.minimum_image({p.position[i][0] - centre[0], p.position[i][1] - centre[1],
                                 p.position[i][2] - centre[2]});
        out.distance_from_centre.push_back(length(d));
        if (length(d) < kRadius) {
            out.deformed[i][0] += gamma * d[2];
        }
        for (double& v : out.deformed[i]) {
            v += noise(rng);
        }
    }
    return out;
}

TEST(BondBreaking, ShearInclusionBreaksBondsAtItsSurfaceAndTheFractionRisesWithD2Min) {
    // gamma = 0.1: the affine stretch inside is at most ~1 + gamma / 2 = 1.05, below the break
    // factor 1.06; bonds across the surface slip by gamma |z - z_c|, up to 0.5 diameters.
    constexpr double kGamma = 0.1;
    constexpr double kBreakFactor = 1.06;
    constexpr double kSurface = 5.0;
    const auto& p = packing();
    const Inclusion inc = shear_inclusion(kGamma);
    auto breaking =
        compute_bond_breaking(p.box, p.position, inc.box, inc.deformed, {kCutoff, kBreakFactor});
    ASSERT_TRUE(breaking) << breaking.error().message;
    ASSERT_GT(breaking->total_broken, 20U);
    for (std::size_t i = 0; i < p.position.size(); ++i) {
        if (breaking->broken[i] > 0) {
            EXPECT_NEAR(inc.distance_from_centre[i], kSurface, kCutoff) << "atom " << i;
        }
    }
    auto d2 = compute_d2min(p.box, p.position, inc.box, inc.deformed, {kCutoff});
    ASSERT_TRUE(d2);
    auto binning = bin_values(d2->d2min, 5, BinScheme::kQuantile);
    ASSERT_TRUE(binning) << binning.error().message;
    auto bins = bin_bond_breaking(*breaking, d2->d2min, *binning);
    ASSERT_TRUE(bins) << bins.error().message;
    ASSERT_EQ(bins->size(), 5U);
    // The top fifth by D2_min holds the inclusion's surface; the lower bins hold the noise only.
    EXPECT_EQ(bins->front().broken, 0U);
    // Only bonds near the poles of the inclusion slip far enough: ~1 % of the top bin's bonds.
    EXPECT_GT(bins->back().fraction_mean, 0.005);
    for (std::size_t k = 0; k + 1 < bins->size(); ++k) {
        EXPECT_LE((*bins)[k].fraction_mean, bins->back().fraction_mean) << "bin " << k;
        EXPECT_LE((*bins)[k].upper, (*bins)[k + 1].lower + 1e-300);
    }
    auto fit = fit_bond_breaking(*bins);
    ASSERT_TRUE(fit) << fit.error().message;
    EXPECT_EQ(fit->n_points, 5U);
    EXPECT_GT(fit->slope, 3.0 * fit->slope_stderr);  // significantly positive

    // No inclusion: the noise breaks nothing, the fit's slope is zero within its error.
    const Inclusion none = shear_inclusion(0.0);
    auto quiet =
        compute_bond_breaking(p.box, p.position, none.box, none.deformed, {kCutoff, kBreakFactor});
    ASSERT_TRUE(quiet);
    EXPECT_EQ(quiet->total_broken, 0U);
}

TEST(BinValues, QuantileBinsHoldEqualNumbersAndUniformBinsEqualWidths) {
    std::vector<double> v;
    v.reserve(101);
    for (int i = 0; i < 100; ++i) {
        v.push_back(std::exp(0.1 * i));  // heavy-tailed, as D2_min is
    }
    v.push_back(std::numeric_limits<double>::quiet_NaN());
    auto q = bin_values(v, 4, BinScheme::kQuantile);
    ASSERT_TRUE(q) << q.error().message;
    std::vector<int> counts(4, 0);
    for (std::size_t i = 0; i < 100; ++i) {
        ++counts[static_cast<std::size_t>(q->bin[i])];
    }
    EXPECT_EQ(q->bin.back(), -1);
    for (const int c : counts) {
        EXPECT_EQ(c, 25);
    }
    auto u = bin_values(v, 4, BinScheme::kUniform);
    ASSERT_TRUE(u);
    EXPECT_DOUBLE_EQ(u->edges.front(), 1.0);
    EXPECT_DOUBLE_EQ(u->edges.back(), std::exp(9.9));
    EXPECT_NEAR(u->edges[2] - u->edges[1], u->edges[1] - u->edges[0], 1e-9 * u->edges.back());
    EXPECT_EQ(u->bin[99], 3);  // the largest value is in the last bin
    EXPECT_EQ(u->bin[0], 0);

    EXPECT_FALSE(bin_values(v, 0, BinScheme::kQuantile));
    EXPECT_FALSE(bin_values(std::vector<double>(10, 1.0), 2, BinScheme::kUniform));
    std::vector<double> ties(50, 0.0);
    ties.push_back(1.0);
    auto tied = bin_values(ties, 3, BinScheme::kQuantile);
    ASSERT_FALSE(tied);
    EXPECT_NE(tied.error().message.find("coincide"), std::string::npos);
}

TEST(FitLine, RecoversALineAndTheTextbookStandardErrors) {
    // y = 2 + 3 x exactly, unit variances at x = 0, 1, 2: var(slope) = S / Delta = 3 / 6,
    // var(intercept) = Sxx / Delta = 5 / 6 (Bevington eq. 6.21).
    const std::vector<double> x{0.0, 1.0, 2.0};
    const std::vector<double> y{2.0, 5.0, 8.0};
    const std::vector<double> var{1.0, 1.0, 1.0};
    auto fit = fit_line(x, y, var);
    ASSERT_TRUE(fit) << fit.error().message;
    EXPECT_NEAR(fit->slope, 3.0, 1e-12);
    EXPECT_NEAR(fit->intercept, 2.0, 1e-12);
    EXPECT_NEAR(fit->slope_stderr, std::sqrt(0.5), 1e-12);
    EXPECT_NEAR(fit->intercept_stderr, std::sqrt(5.0 / 6.0), 1e-12);
    EXPECT_NEAR(fit->covariance, -3.0 / 6.0, 1e-12);
    EXPECT_NEAR(fit->reduced_chi2, 0.0, 1e-20);
    // A point off the line with a tiny weight barely moves it; a NaN point is left out.
    auto weighted = fit_line(
        std::vector<double>{0.0, 1.0, 2.0, 3.0, 4.0},
        std::vector<double>{2.0, 5.0, 8.0, 100.0, 1.0},
        std::vector<double>{1.0, 1.0, 1.0, 1e12, std::numeric_limits<double>::quiet_NaN()});
    ASSERT_TRUE(weighted);
    EXPECT_EQ(weighted->n_points, 4U);
    EXPECT_NEAR(weighted->slope, 3.0, 1e-6);
    EXPECT_FALSE(fit_line(std::vector<double>{1.0, 1.0}, std::vector<double>{1.0, 2.0},
                          std::vector<double>{1.0, 1.0}));
    EXPECT_FALSE(
        fit_line(std::vector<double>{1.0}, std::vector<double>{1.0}, std::vector<double>{1.0}));
}

// The analytic P'(phi) bin averages of an isotropic distribution of directions under
// F = diag(a, a, c): a direction at phi goes to phi' with tan phi' = (a / c) tan phi, so the
// deformed bin [phi'_1, phi'_2] holds the directions of [phi_1, phi_2], tan phi = (c / a) tan phi',
// a fraction cos phi_1 - cos phi_2 of the sphere (folded), over its own solid angle.
double isotropic_deformed_p(double lo_deg, double hi_deg, double a, double c) {
    const auto back = [&](double deg) {
        if (deg >= 90.0) {
            return std::numbers::pi / 2.0;
        }
        return std::atan(c / a * std::tan(deg * std::numbers::pi / 180.0));
    };
    const double lo = lo_deg * std::numbers::pi / 180.0;
    const double hi = hi_deg * std::numbers::pi / 180.0;
    return (std::cos(back(lo_deg)) - std::cos(back(hi_deg))) / (std::cos(lo) - std::cos(hi));
}

Mat3 uniaxial_along(std::size_t axis, double eps, double nu) {
    Mat3 f{};
    for (std::size_t k = 0; k < 3; ++k) {
        f[4 * k] = k == axis ? 1.0 - eps : 1.0 + nu * eps;
    }
    return f;
}

TEST(BondOrientation, TrackedBondsUnderCompressionFollowTheAnalyticAffineChange) {
    // Compression (eps = 8 %) along x, y and z in turn, averaged: bonds turn away from the
    // axis. To first order Delta P = -2 eps (1 + nu) P2(cos phi): -0.22 at phi = 0, +0.11 at 90.
    const auto& p = packing();
    constexpr double kEps = 0.08;
    constexpr std::size_t kBins = 9;
    constexpr std::size_t kAxes = 3;
    std::vector<double> mean_delta(kBins, 0.0);
    OrientationHistogram reference;
    for (std::size_t axis = 0; axis < kAxes; ++axis) {
        const Mat3 f = uniaxial_along(axis, kEps, kNu);
        const auto deformed = testing::deform(p.box, p.position, f);
        BondOrientationOptions o;
        o.cutoff = kCutoff;
        o.n_bins = kBins;
        o.bond_set = BondSet::kTracked;
        o.loading_axis = {0.0, 0.0, 0.0};
        o.loading_axis[axis] = 1.0;
        auto change =
            bond_orientation_change(p.box, p.position, p.box.deformed(f), deformed, {}, o);
        ASSERT_TRUE(change) << change.error().message;
        ASSERT_EQ(change->delta_p.size(), kBins);
        EXPECT_EQ(change->reference.total, change->deformed.total);
        for (std::size_t k = 0; k < kBins; ++k) {
            mean_delta[k] += change->delta_p[k] / static_cast<double>(kAxes);
            // The reference is isotropic within its Poisson errors: P ~ 1 per unit solid angle
            // (a histogram per phi bin instead would go as sin phi and fail here).
            EXPECT_NEAR(change->reference.p[k], 1.0,
                        4.0 * std::sqrt(change->reference.p_variance[k]))
                << "axis " << axis << " phi bin " << k;
        }
        reference = change->reference;
    }
    const double a = 1.0 + kNu * kEps;
    const double c = 1.0 - kEps;
    const auto total = static_cast<double>(reference.total);
    const auto back_deg = [&](double deg) {
        return deg >= 90.0 ? 90.0
                           : std::atan(c / a * std::tan(deg * std::numbers::pi / 180.0)) * 180.0 /
                                 std::numbers::pi;
    };
    const auto cos_deg = [](double deg) { return std::cos(deg * std::numbers::pi / 180.0); };
    for (std::size_t k = 0; k < kBins; ++k) {
        const double lo = reference.phi_edges_deg[k];
        const double hi = reference.phi_edges_deg[k + 1];
        const double expected = isotropic_deformed_p(lo, hi, a, c) - 1.0;
        // The same bonds on both sides: Delta P moves only by the bonds crossing the bin's
        // edges, N (cos phi - cos phi_back) of them at each edge for an isotropic distribution;
        // their Poisson noise over N dOmega, averaged over the 3 axes, with 3.5 sigma.
        const double crossing = total * (std::abs(cos_deg(back_deg(lo)) - cos_deg(lo)) +
                                         std::abs(cos_deg(back_deg(hi)) - cos_deg(hi)));
        const double sigma = std::sqrt(crossing) / (total * (cos_deg(lo) - cos_deg(hi))) /
                             std::sqrt(static_cast<double>(kAxes));
        EXPECT_NEAR(mean_delta[k], expected, 3.5 * sigma) << "phi bin " << k;
    }
    EXPECT_LT(mean_delta.front(), -0.15);  // depleted along the axis
    EXPECT_GT(mean_delta.back(), 0.07);    // gathered perpendicular to it
}

TEST(BondOrientation, OwnBondsAddTheBondsTheStrainBringsInsideTheCutoff) {
    // Each configuration's own bonds: compression along z also brings pairs along z inside the
    // cutoff. To first order the turning's -2 eps (1 + nu) P2 is scaled by
    // 1 - 4 pi rho0 g(r_c) r_c^3 / (3 Z) (Z: bonds per atom; docs/atomistic.md). At this
    // packing's shallow minimum (g(1.5) ~ 0.95, Z ~ 8.5) the factor is ~0: the two effects
    // cancel and the own bonds barely turn, while the tracked ones do. (Glasses, with
    // g(r_min) ~ 0.2, keep most of the tracked change.) The factor is computed from the packing.
    const auto& p = packing();
    constexpr double kEps = 0.05;
    const Mat3 f = uniaxial(kEps, kNu);
    const auto deformed = testing::deform(p.box, p.position, f);
    BondOrientationOptions o;
    o.cutoff = kCutoff;
    o.n_bins = 3;
    o.bond_set = BondSet::kOwn;
    auto own = bond_orientation_change(p.box, p.position, p.box.deformed(f), deformed, {}, o);
    o.bond_set = BondSet::kTracked;
    auto tracked = bond_orientation_change(p.box, p.position, p.box.deformed(f), deformed, {}, o);
    ASSERT_TRUE(own && tracked);
    // g(r_c) from the pairs in [r_c - 0.05, r_c + 0.05].
    constexpr double kHalf = 0.05;
    auto shell = find_bonds(p.box, p.position, kCutoff + kHalf);
    ASSERT_TRUE(shell);
    std::size_t in_shell = 0;
    for (const Vec3& d : shell->separation) {
        in_shell += length(d) >= kCutoff - kHalf ? 1 : 0;
    }
    const double n = static_cast<double>(kAtoms);
    const double rho = n / p.box.volume();
    const double shell_volume = 4.0 / 3.0 * std::numbers::pi *
                                (std::pow(kCutoff + kHalf, 3) - std::pow(kCutoff - kHalf, 3));
    const double g_rc = 2.0 * static_cast<double>(in_shell) / (n * rho * shell_volume);
    const double z = 2.0 * static_cast<double>(own->reference.total) / n;
    const double factor =
        1.0 - 4.0 * std::numbers::pi * rho * g_rc * std::pow(kCutoff, 3) / (3.0 * z);
    // Three bins of 30 deg: compare the difference of the outer bins, which cancels the
    // isotropic part; second-order terms (eps = 5 %) and crossing noise: 0.3 of the tracked.
    const double tracked_span = tracked->delta_p.back() - tracked->delta_p.front();
    const double own_span = own->delta_p.back() - own->delta_p.front();
    EXPECT_NEAR(own_span, factor * tracked_span, 0.3 * std::abs(tracked_span))
        << "g(r_c) = " << g_rc << ", Z = " << z << ", factor = " << factor;
    EXPECT_GT(own->deformed.total, own->reference.total);  // compression: more pairs inside
}

TEST(BondOrientation, TypePairsSelectTheBondsJoiningThoseTypes) {
    const auto& p = packing();
    std::vector<int> types(p.position.size());
    for (std::size_t i = 0; i < types.size(); ++i) {
        types[i] = 1 + static_cast<int>(i % 3 == 0);  // a third of type 2
    }
    auto bonds = find_bonds(p.box, p.position, kCutoff);
    ASSERT_TRUE(bonds);
    std::size_t mixed = 0;
    for (const auto& [i, j] : bonds->atoms) {
        mixed += types[i] != types[j] ? 1 : 0;
    }
    BondOrientationOptions o;
    o.cutoff = kCutoff;
    o.type_pairs = {{2, 1}};
    auto change = bond_orientation_change(p.box, p.position, p.box, p.position, types, o);
    ASSERT_TRUE(change) << change.error().message;
    EXPECT_EQ(change->reference.total, mixed);
    EXPECT_EQ(change->deformed.total, mixed);
    for (const double d : change->delta_p) {
        EXPECT_EQ(d, 0.0);  // the same configuration twice
    }
    auto missing = bond_orientation_change(p.box, p.position, p.box, p.position, {}, o);
    EXPECT_FALSE(missing);
}

TEST(BondBreaking, RefusesMismatchedConfigurationsAndBreakFactorsBelowOne) {
    const auto& p = packing();
    const std::vector<Vec3> fewer(p.position.begin(), p.position.end() - 1);
    EXPECT_FALSE(compute_bond_breaking(p.box, p.position, p.box, fewer, {kCutoff, 1.0}));
    auto low = compute_bond_breaking(p.box, p.position, p.box, p.position, {kCutoff, 0.9});
    ASSERT_FALSE(low);
    EXPECT_NE(low.error().message.find("break factor"), std::string::npos);
    EXPECT_FALSE(compute_bond_breaking(p.box, p.position, p.box, p.position, {100.0, 1.0}));
    BondOrientationOptions o;
    o.cutoff = kCutoff;
    o.loading_axis = {0.0, 0.0, 0.0};
    EXPECT_FALSE(bond_orientation_change(p.box, p.position, p.box, p.position, {}, o));
}

}  // namespace
}  // namespace anisoflow::atomistic
