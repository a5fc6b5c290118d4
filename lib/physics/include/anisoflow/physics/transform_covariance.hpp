#pragma once
// Covariances between nearby r samples of the transformed curves the affine fit works on: the
// regressor x = r dg0/dr and the observation g2 (SPEC 6-7). Each Q bin of S0 and S2 carries its
// own independent noise; the transforms spread it over every r, so neighbouring r samples are
// correlated over ~pi/q_max (about 10 samples at the default grid). A fit that treats them as
// independent reports errors ~2x too small and finds a spurious r_c. Derivation and the
// approximation made: docs/physics-fits.md, "Noise of transformed curves".

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "anisoflow/core/result.hpp"
#include "anisoflow/physics/curves.hpp"
#include "anisoflow/physics/transforms.hpp"

namespace anisoflow::physics {

/// Symmetric covariance matrix of n samples kept for |i - k| <= max_lag (zero beyond).
class BandedCovariance {
  public:
    BandedCovariance() = default;
    BandedCovariance(std::size_t n, std::size_t max_lag)
        : n_(n), max_lag_(max_lag), band_(n * (max_lag + 1), 0.0) {}

    [[nodiscard]] std::size_t size() const { return n_; }
    [[nodiscard]] std::size_t max_lag() const { return max_lag_; }
    /// Cov(f_i, f_k); 0 beyond the band or the grid.
    [[nodiscard]] double operator()(std::size_t i, std::size_t k) const {
        if (k < i) {
            const std::size_t t = i;
            i = k;
            k = t;
        }
        const std::size_t d = k - i;
        return d <= max_lag_ && k < n_ ? band_[i * (max_lag_ + 1) + d] : 0.0;
    }
    /// Cov(f_i, f_{i+d}) for d <= max_lag, writable.
    [[nodiscard]] double& at(std::size_t i, std::size_t d) { return band_[i * (max_lag_ + 1) + d]; }
    [[nodiscard]] double at(std::size_t i, std::size_t d) const {
        return band_[i * (max_lag_ + 1) + d];
    }

  private:
    std::size_t n_ = 0;
    std::size_t max_lag_ = 0;
    std::vector<double> band_;  ///< row i: Cov(f_i, f_{i+d}), d = 0..max_lag
};

/// Covariance of x(r) = r dg0/dr, g0 the SPEC 6 l = 0 transform of S0 (trapezoid over S0's own
/// samples, Lorch window as in `options`), on a uniform r grid, from S0's independent Q-bin
/// variances. Only the difference-frequency part of each product of kernels is kept: the
/// sum-frequency part oscillates at Q (r_i + r_k) and comes from the edge of the Q range; it is
/// ~3 / (q_max r) of the variance (5 % at 2.3 A, 1.3 % at 10 A for q_max = 26/A). Errors: a
/// non-uniform or non-positive r grid, rho0 <= 0, a Q grid that is not ascending, NaN variances.
[[nodiscard]] Result<BandedCovariance> r_dg0_dr_covariance(const QCurve& s0,
                                                           const std::vector<double>& r_angstrom,
                                                           const TransformOptions& options,
                                                           std::size_t max_lag);

/// Covariance of g2(r), the SPEC 6 l = 2 transform of S2, the same way.
[[nodiscard]] Result<BandedCovariance> g2_covariance(const QCurve& s2,
                                                     const std::vector<double>& r_angstrom,
                                                     const TransformOptions& options,
                                                     std::size_t max_lag);

/// The noise model the affine fit needs when g0 and g2 come from the SPEC 6 transforms: the bands
/// above (for the 2 A windows behind A(r), whose pairs all lie within the band) and, for fits
/// over long ranges, whose sums reach correlations far beyond any band, the exact first-order
/// variance of a weighted sum sum_i a_i f_i = sum_k (sum_i a_i K(r_i, Q_k)) dS_k, projected onto
/// the Q grid by chirp-z sums (docs/physics-fits.md).
class TransformNoise {
  public:
    /// s0 and s2 on one uniform Q grid (q > 0) with their variances; r uniform and positive.
    /// `sums` from an earlier call on the same grids (sums()) saves planning them again.
    [[nodiscard]] static Result<TransformNoise> create(
        const QCurve& s0, const QCurve& s2, const std::vector<double>& r_angstrom,
        const TransformOptions& options, std::size_t max_lag,
        std::shared_ptr<const ExponentialSums> sums = nullptr);

    [[nodiscard]] const std::shared_ptr<const ExponentialSums>& sums() const { return sums_; }

    [[nodiscard]] const BandedCovariance& regressor_band() const { return regressor_; }
    [[nodiscard]] const BandedCovariance& g2_band() const { return g2_; }
    /// Var(sum_i a_i x_i), x = r dg0/dr, over every pair of r samples; `a` has one value per r.
    [[nodiscard]] double regressor_variance(std::span<const double> a) const;
    /// Var(sum_i a_i g2_i), the same way.
    [[nodiscard]] double g2_variance(std::span<const double> a) const;

  private:
    TransformNoise() = default;
    std::vector<double> r_;
    std::vector<double> q_;
    std::vector<double> spectral_s0_;  ///< (c w_k Q_k)^2 var S0_k
    std::vector<double> spectral_s2_;  ///< (c w_k)^2 var S2_k
    BandedCovariance regressor_;
    BandedCovariance g2_;
    std::shared_ptr<const ExponentialSums> sums_;  ///< r grid -> Q grid
};

}  // namespace anisoflow::physics
