#pragma once
// Normalisation of the raw harmonics to S0 and S2 per atom (SPEC 5, "high-Q").

#include <cstddef>

#include "anisoflow/core/result.hpp"
#include "anisoflow/physics/curves.hpp"
#include "anisoflow/physics/harmonics.hpp"
#include "anisoflow/physics/scattering_factors.hpp"

namespace anisoflow::physics {

/// SPEC 5 default: the normalisation range starts at this fraction of q_max.
inline constexpr double kDefaultQNormMinFraction = 0.65;

/// A normalisation range needs at least this many valid I0 bins.
inline constexpr std::size_t kMinNormalisationBins = 5;

struct StructureFunctions {
    QCurve s0;                    ///< isotropic structure factor, paper normalisation (SPEC 4)
    QCurve s2;                    ///< l = 2 coefficient, paper normalisation (SPEC 4)
    double scale = 0.0;           ///< N: I0 = N (<f>^2 (S0 - 1) + <f^2> + C)
    double scale_variance = 0.0;  ///< var(N), not folded into the per-bin variances
};

/// High-Q normalisation (SPEC 5): N is the (1/var(I0)-weighted, unweighted when any variance in
/// the range is missing) least-squares scale of I0 onto <f^2> + C over
/// [q_norm_min, q_max] (q_max = the largest Q with a valid I0); then
/// S0 = (I0/N - <f^2> - C)/<f>^2 + 1 and S2 = a2/(N <f>^2). Fails when fewer than
/// kMinNormalisationBins valid bins fall in the range or the fitted N is not positive.
[[nodiscard]] Result<StructureFunctions> normalise_high_q(const Harmonics& harmonics,
                                                          const ScatteringFactors& factors,
                                                          double q_norm_min_inv_angstrom);

}  // namespace anisoflow::physics
