#pragma once
// Spherical-Bessel transforms of the l = 0 and l = 2 structure-factor harmonics to g0(r), g2(r)
// and G(r) (SPEC 6): a direct trapezoid quadrature (the reference) and an FFTW fast path that
// evaluates the same quadrature. Formulas, guards and measured agreement:
// docs/physics-transforms.md.

#include <complex>
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "anisoflow/core/result.hpp"
#include "anisoflow/physics/curves.hpp"

namespace anisoflow::physics {

struct TransformOptions {
    double rho0_per_cubic_angstrom = 0.0;  ///< number density rho0 (atoms/A^3), > 0
    bool lorch = false;  ///< multiply by M(Q) = sin(pi Q/q_max)/(pi Q/q_max), q_max = last Q
};

/// n points r_k = (k + 1) r_max / n, k = 0..n-1: uniform on (0, r_max], r = 0 left out
/// (g0 has a removable 1/r there). Empty when n == 0.
[[nodiscard]] std::vector<double> uniform_r_grid(double r_max_angstrom, std::size_t n);

/// The quadrature weights both transforms use: trapezoid weights over the samples q, times the
/// Lorch window M(Q) = sin(pi Q/q_max)/(pi Q/q_max) when `lorch` (zero at the last sample).
[[nodiscard]] std::vector<double> quadrature_weights(std::span<const double> q_inv_angstrom,
                                                     bool lorch);

/// Spherical Bessel function j2(x) = (3/x^3 - 1/x) sin x - 3 cos x / x^2; below x = 1 a power
/// series, since the closed form loses digits to cancellation there (SPEC 6 small-r guard).
[[nodiscard]] double spherical_bessel_j2(double x);

/// g0(r) = 1 + 1/(2 pi^2 rho0 r) Int Q [S0(Q) - 1] sin(Qr) dQ (SPEC 6) by the trapezoid rule over
/// the curve's own Q samples, [q_first, q_last]. r must be ascending and >= 0 (r = 0 takes the
/// limit). var(g0(r)) = sum_k (w_k K(Q_k, r))^2 var(S0(Q_k)): Q bins independent; covariances
/// between r points are not represented. A NaN variance makes every output variance NaN.
/// Errors: a NaN or infinite S0 sample (the message names its Q), a grid that is not strictly
/// ascending or has fewer than 2 points, rho0 <= 0, a bad r grid.
[[nodiscard]] Result<RCurve> transform_l0_direct(const QCurve& s0, const std::vector<double>& r,
                                                 const TransformOptions& options);

/// g2(r) = -1/(2 pi^2 rho0) Int Q^2 S2(Q) j2(Qr) dQ (SPEC 6), same quadrature, variance and
/// errors as transform_l0_direct.
[[nodiscard]] Result<RCurve> transform_l2_direct(const QCurve& s2, const std::vector<double>& r,
                                                 const TransformOptions& options);

/// G(r) = 4 pi rho0 r [g0(r) - 1] (SPEC 6); var(G) = (4 pi rho0 r)^2 var(g0). Error: rho0 <= 0.
[[nodiscard]] Result<RCurve> reduced_pair_distribution(const RCurve& g0,
                                                       double rho0_per_cubic_angstrom);

/// A uniform Q grid q_k = q_first + k dq, k = 0..n-1 (the cake's bin centres).
struct UniformQGrid {
    double q_first_inv_angstrom = 0.0;
    double dq_inv_angstrom = 0.0;
    std::size_t n = 0;
};

/// Recognises a uniform grid (|q_k - q_first - k dq| <= 1e-9 dq); error otherwise.
[[nodiscard]] Result<UniformQGrid> uniform_q_grid_of(const std::vector<double>& q_inv_angstrom);

/// Fast path of the SPEC 6 transforms for curves on one uniform Q grid (q_first > 0) and one r
/// grid. The trapezoid sums sum_k c_k exp(i Q_k r_j) are evaluated exactly (to rounding) for a
/// uniform r grid of any spacing by a chirp-z transform (Bluestein: two FFTs of length
/// L >= n_q + n_r - 1 per sum); l = 2 splits into three such sums. Points where the 1/r^3
/// coefficients of that split would cost accuracy (small r) fall back to the direct sum, and a
/// non-uniform r grid is evaluated entirely by the direct sum. Variances use the same machinery
/// on the doubled frequencies 2Q (sin^2 = (1 - cos 2x)/2, ...), with the same fallback.
///
/// Thread safety: create() builds FFTW plans under a mutex private to this module (FFTW's planner
/// is not thread-safe); transform_l0/l2 are const and only execute plans on their own buffers, so
/// one FastTransform may be used from several threads at once.
class FastTransform {
  public:
    /// Errors: n < 2, dq <= 0, q_first <= 0 (the l = 2 split divides by Q), rho0 <= 0, an r grid
    /// that is empty, not strictly ascending or has r < 0.
    [[nodiscard]] static Result<FastTransform> create(const UniformQGrid& q,
                                                      std::vector<double> r_angstrom,
                                                      const TransformOptions& options);

    /// Same results as transform_l0_direct / transform_l2_direct (SPEC 6: within 1e-6 of the
    /// curve's maximum on r in [1, r_max]; measured ~1e-12). Error: a curve whose grid is not
    /// this transform's, or a NaN/infinite sample.
    [[nodiscard]] Result<RCurve> transform_l0(const QCurve& s0) const;
    [[nodiscard]] Result<RCurve> transform_l2(const QCurve& s2) const;

    [[nodiscard]] const std::vector<double>& r_angstrom() const { return r_; }
    /// True when the r grid is uniform and the chirp-z path is in use.
    [[nodiscard]] bool uses_fft() const { return chirp_ != nullptr; }
    /// FFT length L of the chirp-z convolution (0 when !uses_fft()).
    [[nodiscard]] std::size_t fft_length() const;

    FastTransform(FastTransform&&) noexcept;
    FastTransform& operator=(FastTransform&&) noexcept;
    FastTransform(const FastTransform&) = delete;
    FastTransform& operator=(const FastTransform&) = delete;
    ~FastTransform();

    struct Chirp;  ///< plans and precomputed chirps (transforms.cpp)

  private:
    FastTransform() = default;

    UniformQGrid grid_;
    std::vector<double> r_;
    TransformOptions options_;
    std::vector<double> q_;       ///< model grid q_first + k dq
    std::vector<double> weight_;  ///< trapezoid weight times Lorch window, per Q sample
    std::unique_ptr<Chirp> chirp_;
};

/// Z_k = sum_n a_n exp(i x_n y_k) for real a_n, x_n = x0 + n dx (n < n_in) and y_k = y0 + k dy
/// (k < n_out): the chirp-z evaluation behind FastTransform with the roles of the grids free, so
/// that error propagation can project weights on the r grid onto the Q grid
/// (transform_covariance.hpp). evaluate() is const and may run on several threads at once.
class ExponentialSums {
  public:
    /// Errors: n_in or n_out < 1, dx or dy not positive and finite.
    [[nodiscard]] static Result<ExponentialSums> create(double x0, double dx, std::size_t n_in,
                                                        double y0, double dy, std::size_t n_out);
    /// `a` has n_in values; returns n_out sums.
    [[nodiscard]] std::vector<std::complex<double>> evaluate(std::span<const double> a) const;
    [[nodiscard]] std::size_t input_size() const;
    [[nodiscard]] std::size_t output_size() const;

    ExponentialSums(ExponentialSums&&) noexcept;
    ExponentialSums& operator=(ExponentialSums&&) noexcept;
    ~ExponentialSums();

  private:
    ExponentialSums() = default;
    std::unique_ptr<FastTransform::Chirp> chirp_;
};

}  // namespace anisoflow::physics
