// High-Q normalisation of I0 and a2 to S0 and S2 (SPEC 5).

#include "anisoflow/physics/normalisation.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

namespace anisoflow::physics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool valid(const QCurve& c, std::size_t i) {
    return std::isfinite(c.q_inv_angstrom[i]) && std::isfinite(c.value[i]);
}

}  // namespace

Result<StructureFunctions> normalise_high_q(const Harmonics& harmonics,
                                            const ScatteringFactors& factors,
                                            double q_norm_min_inv_angstrom) {
    const QCurve& i0 = harmonics.i0;
    const QCurve& a2 = harmonics.a2;
    const std::size_t n = i0.size();
    if (i0.value.size() != n || i0.variance.size() != n || a2.size() != n || a2.value.size() != n ||
        a2.variance.size() != n) {
        return fail(ErrorCode::kInvalidArgument,
                    "I0 ({} Q, {} values, {} variances) and a2 ({} Q, {} values, {} variances) "
                    "must share one Q grid",
                    n, i0.value.size(), i0.variance.size(), a2.size(), a2.value.size(),
                    a2.variance.size());
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (a2.q_inv_angstrom[i] != i0.q_inv_angstrom[i]) {
            return fail(ErrorCode::kInvalidArgument,
                        "I0 and a2 Q grids differ at bin {}: {} vs {} 1/A", i, i0.q_inv_angstrom[i],
                        a2.q_inv_angstrom[i]);
        }
    }
    if (!std::isfinite(q_norm_min_inv_angstrom)) {
        return fail(ErrorCode::kInvalidArgument, "q_norm_min {} 1/A must be finite",
                    q_norm_min_inv_angstrom);
    }

    double q_max = -std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < n; ++i) {
        if (valid(i0, i)) {
            q_max = std::max(q_max, i0.q_inv_angstrom[i]);
        }
    }

    // Scattering factors once per bin, reused for the fit and for S0/S2.
    std::vector<ScatteringAverages> avg(n);
    for (std::size_t i = 0; i < n; ++i) {
        avg[i] = factors.at(i0.q_inv_angstrom[i]);
    }

    std::vector<std::size_t> in_range;
    bool all_weighted = true;
    for (std::size_t i = 0; i < n; ++i) {
        const double q = i0.q_inv_angstrom[i];
        if (valid(i0, i) && q >= q_norm_min_inv_angstrom && q <= q_max &&
            std::isfinite(avg[i].mean_squared_f) && std::isfinite(avg[i].compton)) {
            in_range.push_back(i);
            const double var = i0.variance[i];
            all_weighted = all_weighted && std::isfinite(var) && var > 0.0;
        }
    }
    if (in_range.size() < kMinNormalisationBins) {
        return fail(ErrorCode::kInvalidArgument,
                    "only {} valid I0 bins in the normalisation range [{}, {}] 1/A; at least {} "
                    "are needed (lower q_norm_min or widen the Q range)",
                    in_range.size(), q_norm_min_inv_angstrom, q_max, kMinNormalisationBins);
    }

    // N = sum w I0 F / sum w F^2 with F = <f^2> + C; var(N) = sum w^2 F^2 var(I0) / (sum w F^2)^2
    // (= 1 / sum w F^2 when w = 1/var(I0)).
    double sff = 0.0;
    double sfi = 0.0;
    for (const std::size_t i : in_range) {
        const double f = avg[i].mean_squared_f + avg[i].compton;
        const double w = all_weighted ? 1.0 / i0.variance[i] : 1.0;
        sff += w * f * f;
        sfi += w * f * i0.value[i];
    }
    const double scale = sfi / sff;
    if (!(scale > 0.0) || !std::isfinite(scale)) {
        return fail(ErrorCode::kInvalidArgument,
                    "normalisation scale N = {} over [{}, {}] 1/A is not positive; is I0 "
                    "background-subtracted to below zero?",
                    scale, q_norm_min_inv_angstrom, q_max);
    }
    double var_num = 0.0;
    for (const std::size_t i : in_range) {
        const double f = avg[i].mean_squared_f + avg[i].compton;
        const double w = all_weighted ? 1.0 / i0.variance[i] : 1.0;
        var_num += w * w * f * f * i0.variance[i];
    }

    StructureFunctions out;
    out.scale = scale;
    out.scale_variance = var_num / (sff * sff);
    out.s0 = QCurve{i0.q_inv_angstrom, std::vector<double>(n, kNaN), std::vector<double>(n, kNaN)};
    out.s2 = QCurve{i0.q_inv_angstrom, std::vector<double>(n, kNaN), std::vector<double>(n, kNaN)};
    for (std::size_t i = 0; i < n; ++i) {
        const double nf2 = scale * avg[i].mean_f_squared;  // N <f>^2
        if (!(nf2 > 0.0) || !std::isfinite(nf2)) {
            continue;
        }
        out.s0.value[i] =
            (i0.value[i] / scale - avg[i].mean_squared_f - avg[i].compton) / avg[i].mean_f_squared +
            1.0;
        out.s0.variance[i] = i0.variance[i] / (nf2 * nf2);
        out.s2.value[i] = a2.value[i] / nf2;
        out.s2.variance[i] = a2.variance[i] / (nf2 * nf2);
    }
    return out;
}

}  // namespace anisoflow::physics
