// D2_min (Falk & Langer 1998): zero for an affine deformation, concentrated at a shear inclusion.

#include "anisoflow/atomistic/d2min.hpp"

#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>

#include "anisoflow/atomistic/pair_distribution.hpp"

#include "packing.hpp"

namespace anisoflow::atomistic {
namespace {

using testing::shared_packing;

// Positions of order 30 carry ~3e-15 of rounding; ~15 neighbours give D2 ~ 1e-28. Anything
// above 1e-20 is a real non-affine displacement.
constexpr double kRoundingD2 = 1e-20;
constexpr double kRoundingJ = 1e-12;  // J entries from a well conditioned 3x3 solve
// 1.2 x the first minimum of g(r) of the test packing (~1.5): every atom then has at least 4
// neighbours spanning 3D, so J is determined everywhere.
constexpr double kCutoff = 1.8;

Mat3 uniaxial(double eps, double nu) {
    return {1.0 + nu * eps, 0.0, 0.0, 0.0, 1.0 + nu * eps, 0.0, 0.0, 0.0, 1.0 - eps};
}

void expect_matrix_near(const Mat3& a, const Mat3& b, double tolerance, std::size_t atom) {
    for (std::size_t k = 0; k < 9; ++k) {
        ASSERT_NEAR(a[k], b[k], tolerance) << "atom " << atom << " entry " << k;
    }
}

double distance(const Box& box, const Vec3& a, const Vec3& b) {
    const Vec3 d = box.minimum_image({a[0] - b[0], a[1] - b[1], a[2] - b[2]});
    return std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
}

TEST(D2Min, CutoffAtTheFirstMinimumOfGr) {
    const auto& p = shared_packing();
    auto pd = pair_distribution(p.box, p.position, {4.0, 0.02, {0.0, 0.0, 1.0}});
    ASSERT_TRUE(pd);
    auto r_min = first_minimum(pd->g0);
    ASSERT_TRUE(r_min) << r_min.error().message;
    EXPECT_GT(*r_min, 1.2);
    EXPECT_LT(*r_min, kCutoff);
}

TEST(D2Min, AffineUniaxialStrainGivesZeroAndTheAppliedTransform) {
    const auto& p = shared_packing();
    const Mat3 f = uniaxial(0.01, 0.37);
    const auto deformed = testing::deform(p.box, p.position, f);
    auto result = compute_d2min(p.box, p.position, p.box.deformed(f), deformed, {kCutoff});
    ASSERT_TRUE(result) << result.error().message;
    ASSERT_EQ(result->d2min.size(), p.position.size());
    for (std::size_t i = 0; i < p.position.size(); ++i) {
        ASSERT_GE(result->neighbour_count[i], 3) << "atom " << i;
        ASSERT_LT(result->d2min[i], kRoundingD2) << "atom " << i;
        expect_matrix_near(result->affine[i], f, kRoundingJ, i);
    }
}

TEST(D2Min, SimpleShearOfATiltedBoxWithWrappedPositionsIsAffine) {
    // F = 1 + 0.08 e_x e_z: the deformed box is triclinic (xz = 0.08 Lz) and positions are
    // wrapped back into it, so pairs cross the boundary differently than in the reference.
    const auto& p = shared_packing();
    const Mat3 f{1.0, 0.0, 0.08, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0};
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
    auto result = compute_d2min(p.box, p.position, box, deformed, {kCutoff});
    ASSERT_TRUE(result) << result.error().message;
    for (std::size_t i = 0; i < p.position.size(); ++i) {
        ASSERT_LT(result->d2min[i], kRoundingD2) << "atom " << i;
        expect_matrix_near(result->affine[i], f, kRoundingJ, i);
    }
}

TEST(D2Min, LocalShearInclusionConcentratesD2MinAtItsBoundary) {
    // Background: the uniaxial strain F. Inside a sphere of radius R (reference positions):
    // an extra shear gamma, x' = F x + gamma (z - z_c) e_x, locally affine with J = F + gamma
    // e_x e_z. Only atoms with neighbours on both sides of the sphere's surface, within one
    // cutoff of it, see a non-affine neighbourhood.
    const auto& p = shared_packing();
    const Mat3 f = uniaxial(0.01, 0.37);
    constexpr double kRadius = 5.0;
    constexpr double kGamma = 0.05;
    const Vec3 centre = p.box.from_reduced({0.5, 0.5, 0.5});
    auto deformed = testing::deform(p.box, p.position, f);
    for (std::size_t i = 0; i < p.position.size(); ++i) {
        if (distance(p.box, p.position[i], centre) < kRadius) {
            deformed[i][0] += kGamma * (p.position[i][2] - centre[2]);
        }
    }
    auto result = compute_d2min(p.box, p.position, p.box.deformed(f), deformed, {kCutoff});
    ASSERT_TRUE(result) << result.error().message;
    Mat3 inside = f;
    inside[2] += kGamma;
    std::size_t shell_atoms = 0;
    std::size_t shell_nonaffine = 0;
    double shell_sum = 0.0;
    for (std::size_t i = 0; i < p.position.size(); ++i) {
        const double r = distance(p.box, p.position[i], centre);
        const double d2 = result->d2min[i];
        if (r > kRadius + kCutoff) {
            ASSERT_LT(d2, kRoundingD2) << "atom " << i << " outside, r = " << r;
            expect_matrix_near(result->affine[i], f, kRoundingJ, i);
        } else if (r < kRadius - kCutoff) {
            ASSERT_LT(d2, kRoundingD2) << "atom " << i << " inside, r = " << r;
            expect_matrix_near(result->affine[i], inside, kRoundingJ, i);
        } else {
            ++shell_atoms;
            shell_sum += d2;
            shell_nonaffine += d2 > kRoundingD2 ? 1 : 0;
        }
    }
    // Every shell atom whose neighbours straddle the surface is non-affine: most of the shell.
    EXPECT_GT(static_cast<double>(shell_nonaffine), 0.6 * static_cast<double>(shell_atoms));
    // Scale: a neighbour across the surface misses by ~gamma |dz| ~ 0.05 x 0.7: D2 ~ 1e-3.
    EXPECT_GT(shell_sum / static_cast<double>(shell_atoms), 1e-4);
}

TEST(D2Min, RefusesMismatchedConfigurationsAndTooLargeCutoffs) {
    const auto& p = shared_packing();
    const std::vector<Vec3> fewer(p.position.begin(), p.position.end() - 1);
    EXPECT_FALSE(compute_d2min(p.box, p.position, p.box, fewer, {kCutoff}));
    auto too_large = compute_d2min(p.box, p.position, p.box, p.position, {20.0});
    ASSERT_FALSE(too_large);
    EXPECT_NE(too_large.error().message.find("half the smallest box width"), std::string::npos);
}

}  // namespace
}  // namespace anisoflow::atomistic
