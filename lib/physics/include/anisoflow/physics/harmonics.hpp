#pragma once
// Extraction of the l = 0 and l = 2 (optionally l = 4) harmonics of the scattered intensity from
// cakes (SPEC 3-5), in the paper normalisation I = I0 + sqrt(5) a2 P2(cos psi) [+ 3 a4 P4].

#include <cstddef>
#include <vector>

#include "anisoflow/core/result.hpp"
#include "anisoflow/physics/curves.hpp"
#include "anisoflow/reduce/cake.hpp"

namespace anisoflow::physics {

/// cos(psi) = cos(theta) cos(chi - chi_L) with theta = asin(Q lambda / (4 pi)) (SPEC 3): the
/// cosine of the angle between the scattering vector and the loading axis. NaN when
/// Q lambda / (4 pi) > 1 or Q < 0.
[[nodiscard]] double cos_psi(double q_inv_angstrom, double chi_deg, double loading_axis_chi_deg,
                             double wavelength_angstrom);

/// Legendre polynomials P2(x) = (3x^2 - 1)/2 and P4(x) = (35x^4 - 30x^2 + 3)/8 (SPEC 4).
[[nodiscard]] double legendre_p2(double x);
[[nodiscard]] double legendre_p4(double x);

struct HarmonicsOptions {
    double loading_axis_chi_deg = 0.0;  ///< pyFAI chi of the loading axis in orientation P
    double wavelength_angstrom = 0.0;
    bool fit_p4 = false;  ///< single mode only: also fit 3 a4 P4(cos psi)
};

/// Raw (unnormalised) harmonic amplitudes per Q bin, each with its variance. Bins that cannot
/// be fitted (fewer than kMinCellsPerBin usable cells, or a singular fit) hold NaN value and NaN
/// variance.
struct Harmonics {
    QCurve i0;
    QCurve a2;
    QCurve a4;                         ///< empty unless HarmonicsOptions::fit_p4 (single mode)
    std::vector<double> reduced_chi2;  ///< per Q bin; NaN where not fitted or no dof left
    std::vector<std::size_t> n_cells;  ///< usable chi cells per Q bin
};

/// A Q bin needs at least this many usable chi cells to be fitted.
inline constexpr std::size_t kMinCellsPerBin = 3;

/// pn mode (SPEC 5): D = I_P - I_N on chi cells usable in both cakes (count > 0, finite
/// intensity, finite positive var_P + var_N), weighted (1/(var_P + var_N)) least squares of D on
/// sqrt(5) [P2(cos psi_P) - P2(cos psi_N)], N's axis at loading_axis_chi_deg + 90 (SPEC 3). I0
/// is the weighted chi-average of (I_P + I_N)/2 minus a2 sqrt(5) times the same average of
/// [P2(cos psi_P) + P2(cos psi_N)]/2. Fails when the two cakes differ in layout.
[[nodiscard]] Result<Harmonics> extract_pn(const reduce::Cake& p, const reduce::Cake& n,
                                           const HarmonicsOptions& options);

/// single mode (SPEC 5): per Q bin, weighted (1/var) least squares of I on {1, sqrt(5) P2} (and
/// 3 P4 if fit_p4) over usable chi cells; variances from the normal-equation covariance.
[[nodiscard]] Result<Harmonics> extract_single(const reduce::Cake& cake,
                                               const HarmonicsOptions& options);

}  // namespace anisoflow::physics
