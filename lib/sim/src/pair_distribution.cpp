#include "anisoflow/sim/pair_distribution.hpp"

#include <cmath>
#include <numbers>

namespace anisoflow::sim {

namespace {

// sin and cos of k * step by rotation, re-seeded from std::sin/cos every kReseedEvery steps so
// rounding cannot build up (each step adds ~1e-16): a transform evaluates tens of millions.
constexpr std::size_t kReseedEvery = 256;

class SinCosWalk {
  public:
    explicit SinCosWalk(double step)
        : step_(step), cos_d_(std::cos(step)), sin_d_(std::sin(step)) {}
    // Values at k * step; k must advance by one per call.
    void advance_to(std::size_t k) {
        if (k % kReseedEvery == 0) {
            const double x = static_cast<double>(k) * step_;
            sin_ = std::sin(x);
            cos_ = std::cos(x);
            return;
        }
        const double s = sin_ * cos_d_ + cos_ * sin_d_;
        cos_ = cos_ * cos_d_ - sin_ * sin_d_;
        sin_ = s;
    }
    [[nodiscard]] double sin() const { return sin_; }
    [[nodiscard]] double cos() const { return cos_; }

  private:
    double step_;
    double cos_d_;
    double sin_d_;
    double sin_ = 0.0;
    double cos_ = 1.0;
};

// Below this argument the closed forms of j1 and j2 lose digits to cancellation (3/x^3 sin x
// against 3 cos x / x^2); their series, to the x^8 term beyond the leading one, are exact there
// to < 1e-9 relative.
constexpr double kSeriesBelow = 0.5;

double j0_of(double x, double s) { return x < 1e-8 ? 1.0 : s / x; }

double j1_of(double x, double s, double c) {
    if (x < kSeriesBelow) {
        const double x2 = x * x;
        return x * (1.0 / 3.0 - x2 * (1.0 / 30.0 - x2 * (1.0 / 840.0 - x2 / 45360.0)));
    }
    return (s / x - c) / x;
}

double j2_of(double x, double s, double c) {
    if (x < kSeriesBelow) {
        const double x2 = x * x;
        return x2 *
               (1.0 / 15.0 -
                x2 * (1.0 / 210.0 - x2 * (1.0 / 7560.0 - x2 * (1.0 / 498960.0 - x2 / 51891840.0))));
    }
    const double inv = 1.0 / x;
    return (3.0 * inv * inv * inv - inv) * s - 3.0 * c * inv * inv;
}

}  // namespace

double spherical_bessel_j2(double x) { return j2_of(x, std::sin(x), std::cos(x)); }

Result<IsotropicPairDistribution> IsotropicPairDistribution::create(
    const HardSphereStructure& structure, const PairGrid& grid) {
    const double sigma = structure.parameters().debye_waller_angstrom;
    if (!(sigma >= kMinDebyeWallerForTransformAngstrom)) {
        return fail(ErrorCode::kInvalidArgument,
                    "Debye-Waller width {} A is below {} A: S(Q) - 1 would not decay and g0(r) "
                    "could not be computed by its transform",
                    sigma, kMinDebyeWallerForTransformAngstrom);
    }
    if (!(grid.r_step_angstrom > 0.0) || !(grid.q_step_inv_angstrom > 0.0) ||
        !(grid.r_max_angstrom > 10.0 * grid.r_step_angstrom)) {
        return fail(ErrorCode::kInvalidArgument,
                    "pair grid: r step {} A, Q step {} 1/A and r max {} A must be positive, r max "
                    "at least 10 steps",
                    grid.r_step_angstrom, grid.q_step_inv_angstrom, grid.r_max_angstrom);
    }
    IsotropicPairDistribution g;
    g.rho_ = structure.parameters().number_density_per_cubic_angstrom;
    g.r_step_ = grid.r_step_angstrom;
    g.q_step_ = grid.q_step_inv_angstrom;
    // exp(-sigma^2 Q^2) = 1e-14 here: S - 1 (itself < 1) is gone, nothing is truncated.
    g.q_max_ = std::sqrt(14.0 * std::log(10.0)) / sigma;
    const auto n_q = static_cast<std::size_t>(std::ceil(g.q_max_ / g.q_step_)) + 1;
    // Trapezoid rule on [0, Q_max]: the integrands are even in Q (S is), so the end correction at
    // Q = 0 vanishes to all orders, and at Q_max the integrand is ~1e-14.
    const double prefactor = 1.0 / (2.0 * std::numbers::pi * std::numbers::pi * g.rho_);
    g.weighted_h_.resize(n_q);
    for (std::size_t j = 0; j < n_q; ++j) {
        const double q = static_cast<double>(j) * g.q_step_;
        const double weight = (j == 0 || j + 1 == n_q) ? 0.5 : 1.0;
        g.weighted_h_[j] = weight * g.q_step_ * prefactor * (structure.s(q) - 1.0);
    }
    const auto n_r = static_cast<std::size_t>(std::floor(grid.r_max_angstrom / g.r_step_)) + 1;
    g.r_.resize(n_r);
    g.g0_.resize(n_r);
    g.dg0_dr_.resize(n_r);
    for (std::size_t k = 0; k < n_r; ++k) {
        g.r_[k] = static_cast<double>(k) * g.r_step_;
        const Pair value = g.evaluate(g.r_[k]);
        g.g0_[k] = value.g0;
        g.dg0_dr_[k] = value.dg0_dr;
    }
    return g;
}

IsotropicPairDistribution::Pair IsotropicPairDistribution::evaluate(double r) const {
    double g0_sum = 0.0;
    double derivative_sum = 0.0;
    SinCosWalk walk(q_step_ * r);
    for (std::size_t j = 0; j < weighted_h_.size(); ++j) {
        walk.advance_to(j);
        const double q = static_cast<double>(j) * q_step_;
        const double x = q * r;
        g0_sum += weighted_h_[j] * q * q * j0_of(x, walk.sin());
        derivative_sum += weighted_h_[j] * q * q * q * j1_of(x, walk.sin(), walk.cos());
    }
    return Pair{1.0 + g0_sum, -derivative_sum};
}

double IsotropicPairDistribution::g0_at(double r_angstrom) const { return evaluate(r_angstrom).g0; }

double IsotropicPairDistribution::dg0_dr_at(double r_angstrom) const {
    return evaluate(r_angstrom).dg0_dr;
}

std::vector<double> l2_transform(std::span<const double> g2, double r_step_angstrom,
                                 double number_density_per_cubic_angstrom,
                                 std::span<const double> q_inv_angstrom) {
    // Trapezoid rule on r_k = k dr: the integrand r^2 g2 j2 vanishes like r^4 at r = 0 and g2
    // has decayed at the last sample, so both end corrections are negligible.
    const double prefactor = -4.0 * std::numbers::pi * number_density_per_cubic_angstrom;
    std::vector<double> s2(q_inv_angstrom.size());
    for (std::size_t iq = 0; iq < q_inv_angstrom.size(); ++iq) {
        const double q = q_inv_angstrom[iq];
        SinCosWalk walk(q * r_step_angstrom);
        double sum = 0.0;
        for (std::size_t k = 0; k < g2.size(); ++k) {
            walk.advance_to(k);
            const double r = static_cast<double>(k) * r_step_angstrom;
            const double weight = k + 1 == g2.size() ? 0.5 : 1.0;
            sum += weight * r * r * g2[k] * j2_of(q * r, walk.sin(), walk.cos());
        }
        s2[iq] = prefactor * r_step_angstrom * sum;
    }
    return s2;
}

}  // namespace anisoflow::sim
