// Normalisation of I0 and a2 to S0 and S2 (SPEC 5): high-Q, and the PDFgetX3-style ad hoc
// polynomial correction.

#include "anisoflow/physics/normalisation.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numbers>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <Eigen/Dense>

namespace anisoflow::physics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool valid(const QCurve& c, std::size_t i) {
    return std::isfinite(c.q_inv_angstrom[i]) && std::isfinite(c.value[i]);
}

// T_0..T_{n-1}(t), Chebyshev polynomials of the first kind.
void chebyshev(double t, std::size_t n, std::vector<double>& out) {
    out.resize(n);
    for (std::size_t j = 0; j < n; ++j) {
        out[j] = j == 0 ? 1.0 : (j == 1 ? t : 2.0 * t * out[j - 1] - out[j - 2]);
    }
}

}  // namespace

std::string_view to_string(Normalisation normalisation) {
    return normalisation == Normalisation::kHighQ ? "high-Q" : "adhoc";
}

Result<Normalisation> parse_normalisation(std::string_view name) {
    if (name == "high-Q") {
        return Normalisation::kHighQ;
    }
    if (name == "adhoc") {
        return Normalisation::kAdhoc;
    }
    return fail(ErrorCode::kInvalidArgument, "normalisation '{}' is not one of: high-Q, adhoc",
                name);
}

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

// PDFgetX3's ad hoc correction (Juhas et al., J. Appl. Cryst. 46 (2013) 560) on top of the high-Q
// scale; derivation and choices in docs/physics-structure.md, "Ad hoc normalisation".
Result<StructureFunctions> normalise_adhoc(const Harmonics& harmonics,
                                           const ScatteringFactors& factors,
                                           const AdhocOptions& options) {
    const double r_poly = options.r_poly_angstrom;
    if (!(r_poly > 0.0) || !std::isfinite(r_poly)) {
        return fail(ErrorCode::kInvalidArgument,
                    "r_poly = {} A must be positive and finite (PDFgetX3's rpoly, typically {} A: "
                    "the polynomial may only change G(r) below it)",
                    r_poly, kDefaultRPolyAngstrom);
    }
    const double lo = options.q_min_inv_angstrom.value_or(-std::numeric_limits<double>::infinity());
    const double hi = options.q_max_inv_angstrom.value_or(std::numeric_limits<double>::infinity());
    if (std::isnan(lo) || std::isnan(hi) || !(lo < hi)) {
        return fail(ErrorCode::kInvalidArgument,
                    "adhoc q range [adhoc_q_min, adhoc_q_max] = [{}, {}] 1/A is empty; "
                    "adhoc_q_min must be below adhoc_q_max",
                    lo, hi);
    }

    // The range's data only: I0 outside [lo, hi] is masked, so that the scale, the fit and the
    // output all use the same bins (PDFgetX3's qmin/qmax).
    const QCurve& i0 = harmonics.i0;
    const std::size_t n_bins = i0.size();
    const auto in_range = [&](std::size_t i) {
        const double q = i0.q_inv_angstrom[i];
        return q >= lo && q <= hi;
    };
    Harmonics masked;
    masked.i0 = i0;
    masked.a2 = harmonics.a2;
    std::size_t n_valid = 0;
    double q_top = -std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < n_bins && i < i0.value.size(); ++i) {
        if (!in_range(i)) {
            masked.i0.value[i] = kNaN;
        } else if (valid(i0, i)) {
            ++n_valid;
            q_top = std::max(q_top, i0.q_inv_angstrom[i]);
        }
    }

    // A polynomial of degree n has n zeros on [0, q_top]: it can follow a sine of at most
    // n half-periods there, i.e. of frequency r = n pi / q_top. n = round(r_poly q_top / pi)
    // keeps the correction's content below r_poly (PDFgetX3's rule).
    const double degree_real = n_valid > 0 ? r_poly * q_top / std::numbers::pi : 0.0;
    const auto degree = static_cast<std::size_t>(std::lround(degree_real));
    if (n_valid > 0 && degree == 0) {
        return fail(ErrorCode::kInvalidArgument,
                    "r_poly = {} A gives a polynomial of degree 0 up to q_max = {} 1/A "
                    "(n = round(r_poly q_max / pi)); r_poly must be at least {:.3g} A",
                    r_poly, q_top, 0.5 * std::numbers::pi / q_top);
    }
    const std::size_t needed = std::max(
        kMinAdhocBinsPerCoefficient * std::max<std::size_t>(degree, 1), kMinNormalisationBins);
    if (n_valid < needed) {
        return fail(ErrorCode::kInvalidArgument,
                    "only {} valid I0 bins in the adhoc q range [adhoc_q_min, adhoc_q_max] = "
                    "[{}, {}] 1/A; the degree-{} polynomial (r_poly = {} A) needs at least {} "
                    "({} per coefficient): widen the range or lower r_poly",
                    n_valid, lo, hi, degree, r_poly, needed, kMinAdhocBinsPerCoefficient);
    }

    // The scale N and the uncorrected S0, S2 (SPEC 5). The polynomial must not change N: S2 =
    // a2/(N <f>^2) keeps this N, and any error of N scales S0 - 1 and S2 alike.
    const double q_norm_min =
        options.q_norm_min_inv_angstrom.value_or(kDefaultQNormMinFraction * q_top);
    auto high_q = normalise_high_q(masked, factors, q_norm_min);
    if (!high_q) {
        return tl::unexpected(high_q.error().with_context("adhoc normalisation"));
    }
    StructureFunctions out = std::move(*high_q);

    // S2 is not corrected: the polynomial removes smooth, isotropic l = 0 terms (mis-scaled
    // <f^2> + C, Compton, air and multiple scattering, fluorescence), which have no P2(cos psi)
    // part in the sample frame: pn mode's D = I_P - I_N cancels whatever does not rotate with the
    // sample and single mode puts it into I0 (SPEC 5). The oscillating a2 carries no such term,
    // and subtracting a polynomial from S2 would only remove real low-r anisotropy. Keeping
    // S2 = a2/(N <f>^2) with the same N keeps S2/S0 on one scale (SPEC 7's affine fit relies on
    // it).
    for (std::size_t i = 0; i < n_bins; ++i) {
        if (!in_range(i)) {
            out.s2.value[i] = kNaN;
            out.s2.variance[i] = kNaN;
        }
    }

    // Fit bins: finite S0 in the range. Each weighs the Q width it stands for, so the fit is the
    // L2 projection of F onto the polynomials in dQ, i.e. (Parseval) it removes the least G(r).
    // Not 1/var(F) weights: the residual is the structure Q (S0 - 1) itself, not noise, and
    // var(F) grows by ~1e6 from low to high Q, which would pin the polynomial to the low-Q bins.
    std::vector<std::size_t> bins;
    for (std::size_t i = 0; i < n_bins; ++i) {
        if (in_range(i) && std::isfinite(out.s0.value[i])) {
            bins.push_back(i);
        }
    }
    if (bins.size() < needed) {
        return fail(ErrorCode::kInvalidArgument,
                    "only {} Q bins of the adhoc q range [adhoc_q_min, adhoc_q_max] = [{}, {}] "
                    "1/A have finite scattering factors; the degree-{} polynomial needs {}",
                    bins.size(), lo, hi, degree, needed);
    }
    const auto m = static_cast<Eigen::Index>(bins.size());
    const auto n = static_cast<Eigen::Index>(degree);
    // Basis x T_{j-1}(2x - 1), x = Q/q_top, j = 1..n: the polynomials of degree <= n through the
    // origin (F(0) = 0), well conditioned where monomials are not (n ~ 20 for r_poly = 2 A).
    Eigen::MatrixXd design(m, n);
    Eigen::VectorXd rhs(m);
    std::vector<double> t;
    for (Eigen::Index k = 0; k < m; ++k) {
        const std::size_t i = bins[static_cast<std::size_t>(k)];
        const double q = i0.q_inv_angstrom[i];
        // The Q width the bin stands for: half the distance between its neighbours (the full
        // distance to the one neighbour at the ends), uniform on a uniform grid.
        const double width = k == 0 ? i0.q_inv_angstrom[bins[1]] - q
                             : k == m - 1
                                 ? q - i0.q_inv_angstrom[bins[bins.size() - 2]]
                                 : 0.5 * (i0.q_inv_angstrom[bins[static_cast<std::size_t>(k + 1)]] -
                                          i0.q_inv_angstrom[bins[static_cast<std::size_t>(k - 1)]]);
        const double sw = std::sqrt(width);
        const double x = q / q_top;
        chebyshev(2.0 * x - 1.0, degree, t);
        for (Eigen::Index j = 0; j < n; ++j) {
            design(k, j) = sw * x * t[static_cast<std::size_t>(j)];
        }
        rhs(k) = sw * q * (out.s0.value[i] - 1.0);
    }
    const Eigen::VectorXd coef = design.colPivHouseholderQr().solve(rhs);

    // S0 <- S0 - P(Q)/Q with P/Q = sum c_j T_{j-1}(2x - 1) / q_top, finite at Q = 0. var(S0) stays
    // var(I0)/(N <f>^2)^2: the fit's own uncertainty is neglected. P has n (~7) parameters fitted
    // to hundreds of bins, so its variance at a bin is ~n/m of a typical bin's, and it is a
    // smooth error fully correlated over Q that lives at r < r_poly in G(r), below any fit range;
    // the later stages treat per-bin variances as independent, which it is not (as for var(N)).
    out.adhoc_degree = degree;
    out.adhoc_polynomial = QCurve{i0.q_inv_angstrom, std::vector<double>(n_bins, kNaN),
                                  std::vector<double>(n_bins, kNaN)};
    for (std::size_t i = 0; i < n_bins; ++i) {
        const double q = i0.q_inv_angstrom[i];
        if (!in_range(i) || !(q >= 0.0) || q > q_top) {
            continue;
        }
        const double x = q / q_top;
        chebyshev(2.0 * x - 1.0, degree, t);
        double p_over_q = 0.0;
        for (Eigen::Index j = 0; j < n; ++j) {
            p_over_q += coef(j) * t[static_cast<std::size_t>(j)];
        }
        p_over_q /= q_top;
        out.adhoc_polynomial.value[i] = q * p_over_q;
        if (std::isfinite(out.s0.value[i])) {
            out.s0.value[i] -= p_over_q;
        }
    }
    return out;
}

}  // namespace anisoflow::physics
