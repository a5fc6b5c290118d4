// Cell lists against a brute-force search over periodic images, orthogonal and triclinic.

#include "anisoflow/atomistic/cell_list.hpp"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

namespace anisoflow::atomistic {
namespace {

// All neighbours of atom i closer than rc, over the 27 images of the nearest reduced image.
std::size_t brute_force_count(const Box& box, const std::vector<Vec3>& x, std::size_t i,
                              double rc) {
    std::size_t count = 0;
    for (std::size_t j = 0; j < x.size(); ++j) {
        if (j == i) {
            continue;
        }
        Vec3 s = box.reduced_separation({x[j][0] - x[i][0], x[j][1] - x[i][1], x[j][2] - x[i][2]});
        for (double& v : s) {
            v -= std::round(v);
        }
        double best = INFINITY;
        for (int a = -1; a <= 1; ++a) {
            for (int b = -1; b <= 1; ++b) {
                for (int c = -1; c <= 1; ++c) {
                    const Vec3 d = box.cartesian_separation({s[0] + a, s[1] + b, s[2] + c});
                    best = std::min(best, d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
                }
            }
        }
        count += best < rc * rc ? 1 : 0;
    }
    return count;
}

void check_against_brute_force(const Box& box, double rc) {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> u(-0.2, 1.2);  // some atoms outside the box
    std::vector<Vec3> x(600);
    for (Vec3& p : x) {
        p = box.from_reduced({u(rng), u(rng), u(rng)});
    }
    auto cells = CellList::build(box, x, rc);
    ASSERT_TRUE(cells) << cells.error().message;
    for (std::size_t i = 0; i < x.size(); ++i) {
        std::size_t count = 0;
        cells->for_each_neighbour(i, [&](std::size_t j, const Vec3& d, double r2) {
            EXPECT_NE(j, i);
            EXPECT_NEAR(r2, d[0] * d[0] + d[1] * d[1] + d[2] * d[2], 1e-12);
            ++count;
        });
        ASSERT_EQ(count, brute_force_count(box, x, i, rc)) << "atom " << i;
    }
}

TEST(CellList, FindsTheSameNeighboursAsBruteForceInAnOrthogonalBox) {
    auto box = Box::create({-3.0, 1.0, 0.5}, {10.0, 12.0, 9.0});
    ASSERT_TRUE(box);
    check_against_brute_force(*box, 2.2);
    check_against_brute_force(*box, 4.4);  // two cells along x and z: no neighbour twice
}

TEST(CellList, FindsTheSameNeighboursAsBruteForceInATriclinicBox) {
    auto box = Box::create({0.0, 0.0, 0.0}, {10.0, 11.0, 12.0}, 4.0, -3.0, 2.5);
    ASSERT_TRUE(box);
    ASSERT_TRUE(box->triclinic());
    check_against_brute_force(*box, 2.3);
}

TEST(CellList, RefusesACutoffOfHalfTheBoxOrMore) {
    auto box = Box::create({0.0, 0.0, 0.0}, {10.0, 10.0, 10.0}, 5.0, 0.0, 0.0);
    ASSERT_TRUE(box);
    const std::vector<Vec3> x{{1.0, 1.0, 1.0}};
    // The tilt narrows the x slab: its width is 10 / sqrt(1.25) = 8.9.
    EXPECT_FALSE(CellList::build(*box, x, 4.6));
    EXPECT_TRUE(CellList::build(*box, x, 4.4));
    EXPECT_FALSE(CellList::build(*box, x, 0.0));
}

}  // namespace
}  // namespace anisoflow::atomistic
