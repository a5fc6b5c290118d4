#include "anisoflow/sim/tabulated_structure.hpp"

#include <cmath>
#include <cstddef>

namespace anisoflow::sim {

Result<StrainedStructure> tabulated_structure(const HarmonicSamples& samples,
                                              double q_max_inv_angstrom) {
    const std::size_t n = samples.q_inv_angstrom.size();
    if (samples.s0.size() != n || samples.s2.size() != n) {
        return fail(ErrorCode::kInvalidArgument,
                    "tabulated structure: {} Q samples but {} S0 and {} S2 values", n,
                    samples.s0.size(), samples.s2.size());
    }
    if (!(q_max_inv_angstrom > 0.0) || !std::isfinite(q_max_inv_angstrom)) {
        return fail(ErrorCode::kInvalidArgument, "tabulated structure: Q max {} is not positive",
                    q_max_inv_angstrom);
    }
    // The finite samples, checked ascending.
    std::vector<double> q;
    std::vector<double> s0;
    std::vector<double> s2;
    for (std::size_t i = 0; i < n; ++i) {
        if (i > 0 && !(samples.q_inv_angstrom[i] > samples.q_inv_angstrom[i - 1])) {
            return fail(ErrorCode::kInvalidArgument,
                        "tabulated structure: Q samples not ascending at {} ({} after {})", i,
                        samples.q_inv_angstrom[i], samples.q_inv_angstrom[i - 1]);
        }
        if (std::isfinite(samples.s0[i]) && std::isfinite(samples.s2[i]) &&
            samples.q_inv_angstrom[i] >= 0.0) {
            q.push_back(samples.q_inv_angstrom[i]);
            s0.push_back(samples.s0[i]);
            s2.push_back(samples.s2[i]);
        }
    }
    if (q.size() < 2) {
        return fail(ErrorCode::kInvalidArgument,
                    "tabulated structure: {} finite samples, at least 2 needed", q.size());
    }
    const double step = kHarmonicTableStepInvAngstrom;
    // Two points past q_max, as the other S2 tables, so the cubic interpolation has its stencil.
    const auto points = static_cast<std::size_t>(std::ceil(q_max_inv_angstrom / step)) + 3;
    std::vector<double> s0_minus_one(points, 0.0);
    std::vector<double> s2_table(points, 0.0);
    std::size_t j = 0;  // q[j] <= Q < q[j + 1] in the loop below
    for (std::size_t k = 0; k < points; ++k) {
        const double qk = static_cast<double>(k) * step;
        if (qk < q.front()) {
            s0_minus_one[k] = s0.front() - 1.0;
            s2_table[k] = s2.front() * qk / q.front();
            continue;
        }
        if (qk > q.back()) {
            break;  // S = 1 beyond the samples
        }
        while (j + 2 < q.size() && q[j + 1] <= qk) {
            ++j;
        }
        const double t = (qk - q[j]) / (q[j + 1] - q[j]);
        s0_minus_one[k] = s0[j] + t * (s0[j + 1] - s0[j]) - 1.0;
        s2_table[k] = s2[j] + t * (s2[j + 1] - s2[j]);
    }
    return StrainedStructure::tabulated(HarmonicTable(step, std::move(s0_minus_one)),
                                        HarmonicTable(step, std::move(s2_table)));
}

}  // namespace anisoflow::sim
