#pragma once
// The affine model g2 = alpha r dg0/dr, the crossover radius r_c, the radial strain profile eps(r)
// and the mechanism label (SPEC 7). Formulas, estimator choice and validation:
// docs/physics-fits.md.

#include <cstddef>
#include <limits>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "anisoflow/core/result.hpp"
#include "anisoflow/physics/curves.hpp"
#include "anisoflow/physics/transform_covariance.hpp"

namespace anisoflow::physics {

/// Settings of the affine analysis (SPEC 7, 8). Lengths in angstrom.
struct AffineFitOptions {
    double nu = std::numeric_limits<double>::quiet_NaN();  ///< Poisson ratio, in (-1, 0.5)
    double r_fit_min = 2.3;                                ///< lower end of the fit range
    double r_fit_max = 20.0;               ///< upper end of the fit range; R of the eps(r) integral
    double window_angstrom = 2.0;          ///< width of the local windows behind A(r)
    double tau = 0.15;                     ///< tolerance of |A(r) - 1| for r_c
    int derivative_half_width_points = 2;  ///< Savitzky-Golay (quartic) half width, >= 2
    /// true: errors-in-variables estimator (noise of g0 in the regressor corrected); false: plain
    /// weighted least squares, biased towards zero, kept for comparison only.
    bool errors_in_variables = true;
    /// Whether S2 is consistent with zero, when the caller has tested it (e.g. on S2(Q)); when
    /// empty, g2 is tested against zero with its variances (chi^2 at 99 % over the fit range).
    std::optional<bool> s2_consistent_with_zero;
    /// The noise model of x = r dg0/dr and g2 when both come from the SPEC 6 transforms (null:
    /// independent g0 and g2 samples; x then correlates only through the derivative stencil).
    /// Transformed curves are band-limited to q_max and oversampled: their noise is correlated
    /// over ~pi/q_max (~10 grid points) with long tails. Treating the samples as independent
    /// makes var(x) ~10x too large (the errors-in-variables correction then biases alpha high)
    /// and the slopes' standard errors 2-5x too small (a spurious r_c, "significant" alpha of
    /// an isotropic sample). AnisotropyAnalyzer passes it (docs/physics-fits.md).
    std::shared_ptr<const TransformNoise> transform_noise;
};

/// Which microscopic picture the shape of g2 supports (SPEC 7).
enum class Mechanism { kBondStretching, kBondRotation, kIsotropic, kUndetermined };

/// "bond-stretching", "bond-rotation", "isotropic", "undetermined" (the SUMMARY.json spelling).
std::string_view to_string(Mechanism mechanism);

/// One fit of y = slope * x through the origin.
struct SlopeFit {
    double slope = std::numeric_limits<double>::quiet_NaN();  ///< NaN when undetermined
    double stderr_value = std::numeric_limits<double>::infinity();
    double reduced_chi2 = std::numeric_limits<double>::quiet_NaN();  ///< NaN without variances
    std::size_t n_points = 0;
};

/// Everything SPEC 7 asks of the affine analysis.
struct AffineAnalysis {
    double alpha =
        0.0;  ///< long-range slope: refit on [r_c, r_fit_max] (alpha_full_range if no r_c)
    double alpha_stderr = 0.0;
    double alpha_reduced_chi2 = 0.0;
    double alpha_full_range = 0.0;  ///< slope over [r_fit_min, r_fit_max]
    double alpha_full_range_stderr = 0.0;
    double alpha_full_range_reduced_chi2 = 0.0;
    double eps_aff = 0.0;  ///< 3 sqrt5 alpha / (2 (1 + nu)), > 0 for compression
    double eps_aff_stderr = 0.0;
    std::optional<double> r_c_angstrom;  ///< a window centre; empty when no r qualifies
    int r_c_iterations = 0;              ///< refit rounds used (0 when alpha ~ 0)
    RCurve affine_g2;                    ///< alpha r dg0/dr on the g0 grid, with its variance
    RCurve eps_r;        ///< eps(r) on the g0 grid; NaN where g0 < 0.3 or r > r_fit_max
    RCurve local_ratio;  ///< A(r) at the window centres, variance sigma_A^2 (inf: undetermined)
    Mechanism mechanism = Mechanism::kUndetermined;
    double corr_stretching = 0.0;            ///< Pearson corr(g2, r dg0/dr), first shells
    double corr_rotation = 0.0;              ///< Pearson corr(g2, g0 - 1), first shells
    double first_peak_shift_angstrom = 0.0;  ///< r of the first g2 extremum - r of first g0 peak
};

/// alpha = 2 (1 + nu) eps_aff / (3 sqrt5) (SPEC 7, seed paper eq. 3), and its inverse.
double alpha_from_eps_aff(double eps_aff, double nu);
double eps_aff_from_alpha(double alpha, double nu);

/// d f/dr on f's (uniform) grid by a quartic Savitzky-Golay filter of 2 * half_width + 1 points
/// (half_width = 2 is the five-point stencil), one-sided near the ends; variance propagated from
/// f's variance assuming independent samples.
Result<RCurve> radial_derivative(const RCurve& f, int half_width_points);

/// The slope alpha of g2 = alpha r dg0/dr over [r_min, r_max], as analyse_affine() fits it.
Result<SlopeFit> fit_alpha(const RCurve& g0, const RCurve& g2, const AffineFitOptions& options,
                           double r_min, double r_max);

/// The full SPEC 7 analysis of g0 and g2 sampled on the same uniform r grid. Errors: grids that
/// differ or are not uniform, nu outside (-1, 0.5), a fit range outside the grid, too few points.
Result<AffineAnalysis> analyse_affine(const RCurve& g0, const RCurve& g2,
                                      const AffineFitOptions& options);

}  // namespace anisoflow::physics
