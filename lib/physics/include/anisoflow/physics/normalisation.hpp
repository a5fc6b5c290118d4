#pragma once
// Normalisation of the raw harmonics to S0 and S2 per atom (SPEC 5): "high-Q" (the default) and
// the PDFgetX3-style "adhoc" polynomial correction (docs/physics-structure.md).

#include <cstddef>
#include <optional>
#include <string_view>

#include "anisoflow/core/result.hpp"
#include "anisoflow/physics/curves.hpp"
#include "anisoflow/physics/harmonics.hpp"
#include "anisoflow/physics/scattering_factors.hpp"

namespace anisoflow::physics {

/// SPEC 5's normalisation methods: "high-Q" (default) and "adhoc".
enum class Normalisation { kHighQ, kAdhoc };
[[nodiscard]] std::string_view to_string(Normalisation normalisation);
/// "high-Q" or "adhoc" (exact spelling); the error names the value and the accepted names.
[[nodiscard]] Result<Normalisation> parse_normalisation(std::string_view name);

/// SPEC 5 default: the normalisation range starts at this fraction of q_max.
inline constexpr double kDefaultQNormMinFraction = 0.65;

/// A normalisation range needs at least this many valid I0 bins.
inline constexpr std::size_t kMinNormalisationBins = 5;

struct StructureFunctions {
    QCurve s0;                    ///< isotropic structure factor, paper normalisation (SPEC 4)
    QCurve s2;                    ///< l = 2 coefficient, paper normalisation (SPEC 4)
    double scale = 0.0;           ///< N: I0 = N (<f>^2 (S0 - 1) + <f^2> + C)
    double scale_variance = 0.0;  ///< var(N), not folded into the per-bin variances
    /// "adhoc" only (empty for "high-Q"): the polynomial P(Q) subtracted from F = Q (S0 - 1) on
    /// S0's Q grid, NaN outside the fitted range; variance NaN (not propagated).
    QCurve adhoc_polynomial;
    std::size_t adhoc_degree = 0;  ///< "adhoc" only: n = round(r_poly q_max / pi)
};

/// High-Q normalisation (SPEC 5): N is the (1/var(I0)-weighted, unweighted when any variance in
/// the range is missing) least-squares scale of I0 onto <f^2> + C over
/// [q_norm_min, q_max] (q_max = the largest Q with a valid I0); then
/// S0 = (I0/N - <f^2> - C)/<f>^2 + 1 and S2 = a2/(N <f>^2). Fails when fewer than
/// kMinNormalisationBins valid bins fall in the range or the fitted N is not positive.
[[nodiscard]] Result<StructureFunctions> normalise_high_q(const Harmonics& harmonics,
                                                          const ScatteringFactors& factors,
                                                          double q_norm_min_inv_angstrom);

/// PDFgetX3 default r_poly (Juhas et al., J. Appl. Cryst. 46 (2013) 560): the polynomial
/// correction may only change G(r) below this distance.
inline constexpr double kDefaultRPolyAngstrom = 0.9;

/// The adhoc fit needs this many valid bins per polynomial coefficient: a least-squares fit with
/// n coefficients to m bins removes on average n/m of any component it cannot represent, so at
/// 10 per coefficient it takes at most ~10 % of the structure it must leave alone.
inline constexpr std::size_t kMinAdhocBinsPerCoefficient = 10;

struct AdhocOptions {
    double r_poly_angstrom = kDefaultRPolyAngstrom;  ///< key r_poly; must be > 0
    /// Q range of the data used (keys adhoc_q_min, adhoc_q_max): unset = all valid bins. S0 and
    /// S2 are NaN outside it, like PDFgetX3's qmin/qmax.
    std::optional<double> q_min_inv_angstrom;
    std::optional<double> q_max_inv_angstrom;
    /// Start of the high-Q scale range (key q_norm_min); unset = kDefaultQNormMinFraction times
    /// the largest valid Q in the range.
    std::optional<double> q_norm_min_inv_angstrom;
};

/// Ad hoc normalisation (SPEC 5, "adhoc"; PDFgetX3's polynomial correction): the high-Q scale N
/// and S0 of normalise_high_q() on the range's data, then the least-squares (unweighted, dQ
/// measure) polynomial P(Q) = sum_{j=1..n} c_j Q^j through the origin, n = round(r_poly q_max /
/// pi), is fitted to F(Q) = Q (S0 - 1) and subtracted: S0 <- S0 - P(Q)/Q. var(S0) is that of
/// high-Q (the fit's own uncertainty is neglected); S2 = a2/(N <f>^2) is not corrected (P is an
/// l = 0 correction). Fails, naming the key, for r_poly <= 0, an empty range, n = 0, or fewer
/// than kMinAdhocBinsPerCoefficient n valid bins in the range.
[[nodiscard]] Result<StructureFunctions> normalise_adhoc(const Harmonics& harmonics,
                                                         const ScatteringFactors& factors,
                                                         const AdhocOptions& options);

}  // namespace anisoflow::physics
