// Banded covariances of transformed noise (transform_covariance.hpp): against the exact
// Q-space sums, and against the scatter of the transforms' own output under simulated noise.

#include "anisoflow/physics/transform_covariance.hpp"

#include <cmath>
#include <cstddef>
#include <numbers>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "anisoflow/physics/curves.hpp"
#include "anisoflow/physics/transforms.hpp"

namespace anisoflow::physics {
namespace {

constexpr double kRho = 0.0553;
constexpr std::size_t kLag = 170;

// A Q grid like a 2048^2 detector's at 100 keV (0.5-26 1/A) with a variance that grows with Q,
// as it does when the form factor falls.
QCurve noisy_curve(std::size_t nq, double value) {
    QCurve s;
    for (std::size_t k = 0; k < nq; ++k) {
        const double q = 0.5 + 25.5 * static_cast<double>(k) / static_cast<double>(nq - 1);
        s.q_inv_angstrom.push_back(q);
        s.value.push_back(value);
        s.variance.push_back(1e-6 * (1.0 + 0.05 * q * q));
    }
    return s;
}

// The exact covariance sum_k V_k K(r_i, Q_k) K(r_k, Q_k), sum-frequency terms included.
double exact(const QCurve& s, double ri, double rk, bool regressor) {
    const std::vector<double> w = quadrature_weights(s.q_inv_angstrom, false);
    const double c = 1.0 / (2.0 * std::numbers::pi * std::numbers::pi * kRho);
    double sum = 0.0;
    for (std::size_t k = 0; k < s.size(); ++k) {
        const double q = s.q_inv_angstrom[k];
        const auto kernel = [&](double r) {
            return regressor ? c * w[k] * q * (q * std::cos(q * r) - std::sin(q * r) / r)
                             : c * w[k] * q * q * spherical_bessel_j2(q * r);
        };
        sum += s.variance[k] * kernel(ri) * kernel(rk);
    }
    return sum;
}

TEST(TransformCovariance, BandMatchesExactQSpaceSumsInTheFitRange) {
    const QCurve s = noisy_curve(1000, 1.0);
    const std::vector<double> r = uniform_r_grid(25.0, 2000);
    const auto cxx = r_dg0_dr_covariance(s, r, TransformOptions{kRho}, kLag);
    const auto cyy = g2_covariance(s, r, TransformOptions{kRho}, kLag);
    ASSERT_TRUE(cxx.has_value() && cyy.has_value());
    // The dropped sum-frequency part comes from the sharp edge of S's Q range at q_max, where
    // the noise is largest: measured ~3.2 / (q_max r) of the variance (5 % at the fit range's
    // lower end, 1.3 % at 10 A), i.e. standard errors known to 2.5 % or better.
    for (std::size_t i : {183U, 400U, 800U, 1500U}) {  // r = 2.3 ... 18.8 A
        double worst_x = 0.0;
        double worst_y = 0.0;
        for (std::size_t d : {0U, 1U, 3U, 7U, 20U, 80U, 169U}) {
            const std::size_t k = i + d;
            const double ex = exact(s, r[i], r[k], true);
            const double ey = exact(s, r[i], r[k], false);
            const double scale_x =
                std::sqrt(exact(s, r[i], r[i], true) * exact(s, r[k], r[k], true));
            const double scale_y =
                std::sqrt(exact(s, r[i], r[i], false) * exact(s, r[k], r[k], false));
            worst_x = std::max(worst_x, std::abs((*cxx)(i, k) - ex) / scale_x);
            worst_y = std::max(worst_y, std::abs((*cyy)(i, k) - ey) / scale_y);
        }
        const double bound = 4.0 / (26.0 * r[i]);
        std::printf(
            "r = %5.2f A: worst |band - exact| / sqrt(var_i var_k): x %.2e, g2 %.2e "
            "(bound %.2e)\n",
            r[i], worst_x, worst_y, bound);
        EXPECT_LT(worst_x, bound);
        EXPECT_LT(worst_y, bound);
    }
    EXPECT_DOUBLE_EQ((*cxx)(400, 410), (*cxx)(410, 400));
    EXPECT_EQ((*cxx)(400, 400 + kLag + 1), 0.0);  // beyond the band
}

// The kernels must be the transforms' own: the scatter of transformed noise reproduces them.
TEST(TransformCovariance, MatchesTheScatterOfTransformedNoise) {
    const QCurve s0 = noisy_curve(1000, 1.0);
    QCurve s2 = noisy_curve(1000, 0.0);
    const std::vector<double> r = uniform_r_grid(25.0, 2000);
    auto transform =
        FastTransform::create(*uniform_q_grid_of(s0.q_inv_angstrom), r, TransformOptions{kRho});
    ASSERT_TRUE(transform.has_value());
    const auto cxx = r_dg0_dr_covariance(s0, r, TransformOptions{kRho}, kLag);
    const auto cyy = g2_covariance(s2, r, TransformOptions{kRho}, kLag);
    ASSERT_TRUE(cxx.has_value() && cyy.has_value());
    const std::vector<std::size_t> rows = {300, 301, 304, 310, 330, 900, 905};
    constexpr int kDraws = 400;
    std::mt19937_64 rng(11);
    std::normal_distribution<double> unit(0.0, 1.0);
    std::vector<std::vector<double>> xx(rows.size(), std::vector<double>(rows.size(), 0.0));
    std::vector<std::vector<double>> yy = xx;
    for (int draw = 0; draw < kDraws; ++draw) {
        QCurve n0 = s0;
        QCurve n2 = s2;
        for (std::size_t k = 0; k < s0.size(); ++k) {
            n0.value[k] += std::sqrt(s0.variance[k]) * unit(rng);
            n2.value[k] += std::sqrt(s2.variance[k]) * unit(rng);
        }
        const auto g0 = transform->transform_l0(n0);
        const auto g2 = transform->transform_l2(n2);
        ASSERT_TRUE(g0.has_value() && g2.has_value());
        std::vector<double> x(rows.size());
        std::vector<double> y(rows.size());
        for (std::size_t a = 0; a < rows.size(); ++a) {
            const std::size_t i = rows[a];
            // r dg0/dr by a centred difference: g0 is smooth on the scale of the grid step.
            x[a] = r[i] * (g0->value[i + 1] - g0->value[i - 1]) / (r[i + 1] - r[i - 1]);
            y[a] = g2->value[i];  // the noise-free S2 is zero: g2 is pure noise
        }
        for (std::size_t a = 0; a < rows.size(); ++a) {
            for (std::size_t b = 0; b < rows.size(); ++b) {
                xx[a][b] += x[a] * x[b] / kDraws;  // noise-free x is 0 too (S0 = 1)
                yy[a][b] += y[a] * y[b] / kDraws;
            }
        }
    }
    for (std::size_t a = 0; a < rows.size(); ++a) {
        for (std::size_t b = a; b < rows.size(); ++b) {
            const std::size_t i = rows[a];
            const std::size_t k = rows[b];
            if (k - i > kLag) {
                continue;
            }
            const double sx = std::sqrt((*cxx)(i, i) * (*cxx)(k, k));
            const double sy = std::sqrt((*cyy)(i, i) * (*cyy)(k, k));
            // 400 draws: the sampling error of a correlation is ~1/sqrt(400) = 0.05.
            EXPECT_NEAR(xx[a][b] / sx, (*cxx)(i, k) / sx, 0.2) << "x, r = " << r[i] << ", " << r[k];
            EXPECT_NEAR(yy[a][b] / sy, (*cyy)(i, k) / sy, 0.2)
                << "g2, r = " << r[i] << ", " << r[k];
        }
    }
}

TEST(TransformCovariance, RejectsNonUniformRGridAndBadDensity) {
    const QCurve s = noisy_curve(100, 1.0);
    std::vector<double> r = uniform_r_grid(25.0, 100);
    r[50] += 0.01;
    const auto bad_grid = r_dg0_dr_covariance(s, r, TransformOptions{kRho}, 10);
    ASSERT_FALSE(bad_grid.has_value());
    EXPECT_NE(bad_grid.error().message.find("not uniform"), std::string::npos);
    const auto bad_rho = g2_covariance(s, uniform_r_grid(25.0, 100), TransformOptions{0.0}, 10);
    ASSERT_FALSE(bad_rho.has_value());
    EXPECT_NE(bad_rho.error().message.find("rho0"), std::string::npos);
}

}  // namespace
}  // namespace anisoflow::physics
