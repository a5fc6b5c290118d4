// SPEC 7: affine fit with errors in variables, local ratio A(r) and r_c, eps(r), mechanism.
// The estimator and its variance are derived in docs/physics-fits.md.

#include "anisoflow/physics/affine_fit.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include <Eigen/Dense>

namespace anisoflow::physics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
const double kSqrt5 = std::sqrt(5.0);
// Grid points closer than this fraction of the spacing count as equal (floating-point grids).
constexpr double kGridTolerance = 1e-6;
// eps(r) is reported only where g0 is at least this large (SPEC 7): below, eps g0 / g0 is noise.
constexpr double kEpsMinG0 = 0.3;
// The mechanism correlations run from where g0 first reaches 0.3 to this r (SPEC 7).
constexpr double kMechanismRMaxAngstrom = 8.0;
constexpr double kCorrelationThreshold = 0.5;
// Half width of the search for the first g2 extremum around the first g0 peak.
constexpr double kPeakSearchAngstrom = 1.0;
// Upper standard-normal quantile of 99 % for the chi^2 test of g2 against zero.
constexpr double kZ99 = 2.3263478740408408;
constexpr int kMaxRcRounds = 10;    // SPEC 7
constexpr double kSigmaA = 3.0;     // |A - 1| <= max(tau, 3 sigma_A), SPEC 7
constexpr double kAlphaZero = 3.0;  // alpha within 3 stderr of 0 is "consistent with zero"
constexpr int kMaxSlopeIterations = 100;
constexpr std::size_t kMinWindowPoints = 5;
// A slope is undetermined when the signal of its regressor, sum w (x^2 - var x), is known to less
// than 1/5 of itself: the ratio estimator and its linearised stderr are then unreliable.
constexpr double kMinDenominatorSignificance = 5.0;
constexpr std::size_t kMinFitPoints = 10;

// Savitzky-Golay derivative weights: point i uses samples lo[i] .. lo[i] + width - 1 with
// weights coef[pattern[i]].
struct Stencils {
    std::size_t width = 0;
    std::vector<std::size_t> lo;
    std::vector<std::size_t> pattern;
    std::vector<std::vector<double>> coef;
    [[nodiscard]] double at(std::size_t i, std::size_t m) const {
        if (m < lo[i] || m >= lo[i] + width) {
            return 0.0;
        }
        return coef[pattern[i]][m - lo[i]];
    }
};

Stencils make_stencils(std::size_t n, std::size_t half_width, double h) {
    Stencils s;
    s.width = 2 * half_width + 1;
    const int degree = 4;
    for (std::size_t q = 0; q < s.width; ++q) {  // q: position of the evaluation point
        Eigen::MatrixXd v(static_cast<Eigen::Index>(s.width), degree + 1);
        for (std::size_t j = 0; j < s.width; ++j) {
            const double k = static_cast<double>(j) - static_cast<double>(q);
            double power = 1.0;
            for (int p = 0; p <= degree; ++p) {
                v(static_cast<Eigen::Index>(j), p) = power;
                power *= k;
            }
        }
        // Row 1 of the pseudo-inverse: the fitted polynomial's slope at the evaluation point.
        const Eigen::MatrixXd pinv = (v.transpose() * v).ldlt().solve(v.transpose());
        std::vector<double> c(s.width);
        for (std::size_t j = 0; j < s.width; ++j) {
            c[j] = pinv(1, static_cast<Eigen::Index>(j)) / h;
        }
        s.coef.push_back(std::move(c));
    }
    s.lo.resize(n);
    s.pattern.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t lo = std::min(i >= half_width ? i - half_width : 0, n - s.width);
        s.lo[i] = lo;
        s.pattern[i] = i - lo;
    }
    return s;
}

// Regressor x = r dg0/dr and observations y = g2 with their (co)variances on the full grid.
struct Prepared {
    std::size_t n = 0;
    double h = 0.0;
    const RCurve* g0 = nullptr;
    const RCurve* g2 = nullptr;
    Stencils st;
    std::vector<double> dg0, var_dg0, x, vx;
    std::vector<std::vector<double>> cov_band;  // cov_band[i][d] = Cov(dx_i, dx_{i+d})

    [[nodiscard]] double cov(std::size_t i, std::size_t k) const {
        if (k < i) {
            std::swap(i, k);
        }
        const std::size_t d = k - i;
        return d < cov_band[i].size() ? cov_band[i][d] : 0.0;
    }
};

Prepared prepare(const RCurve& g0, const RCurve& g2, std::size_t half_width, double h,
                 const std::vector<double>& dg0_variance = {}) {
    Prepared p;
    p.n = g0.size();
    p.h = h;
    p.g0 = &g0;
    p.g2 = &g2;
    p.st = make_stencils(p.n, half_width, h);
    p.dg0.assign(p.n, 0.0);
    p.var_dg0.assign(p.n, 0.0);
    p.x.assign(p.n, 0.0);
    p.vx.assign(p.n, 0.0);
    for (std::size_t i = 0; i < p.n; ++i) {
        double d = 0.0;
        double v = 0.0;
        for (std::size_t j = 0; j < p.st.width; ++j) {
            const double c = p.st.coef[p.st.pattern[i]][j];
            d += c * g0.value[p.st.lo[i] + j];
            v += c * c * g0.variance[p.st.lo[i] + j];
        }
        const double r = g0.r_angstrom[i];
        p.dg0[i] = d;
        p.var_dg0[i] = v;
        p.x[i] = r * d;
        p.vx[i] = r * r * v;
    }
    p.cov_band.resize(p.n);
    for (std::size_t i = 0; i < p.n; ++i) {
        const std::size_t band = std::min(p.st.width * 2 - 1, p.n - i);
        p.cov_band[i].assign(band, 0.0);
        for (std::size_t d = 0; d < band; ++d) {
            const std::size_t k = i + d;
            const std::size_t m0 = std::max(p.st.lo[i], p.st.lo[k]);
            const std::size_t m1 = std::min(p.st.lo[i], p.st.lo[k]) + p.st.width;
            double s = 0.0;
            for (std::size_t m = m0; m < m1; ++m) {
                s += p.st.at(i, m) * p.st.at(k, m) * g0.variance[m];
            }
            p.cov_band[i][d] = g0.r_angstrom[i] * g0.r_angstrom[k] * s;
        }
    }
    if (!dg0_variance.empty()) {
        // The caller's variance of dg0/dr replaces the independent-sample one; the covariances
        // of neighbouring x keep their stencil shape, rescaled to the new variances.
        std::vector<double> scale(p.n, 0.0);
        for (std::size_t i = 0; i < p.n; ++i) {
            scale[i] = p.var_dg0[i] > 0.0 ? std::sqrt(dg0_variance[i] / p.var_dg0[i]) : 0.0;
            p.var_dg0[i] = dg0_variance[i];
            const double r = g0.r_angstrom[i];
            p.vx[i] = r * r * dg0_variance[i];
        }
        for (std::size_t i = 0; i < p.n; ++i) {
            for (std::size_t d = 0; d < p.cov_band[i].size(); ++d) {
                p.cov_band[i][d] *= scale[i] * scale[i + d];
            }
        }
    }
    return p;
}

// Fits g2 = slope * x over indices [a, b]. With eiv, the weighted moment estimator
// slope = sum w x y / sum w (x^2 - var x), w = 1 / (var y + slope^2 var x), iterated to a fixed
// point; its variance by the delta method with the correlations of neighbouring x
// (docs/physics-fits.md). Without eiv: weighted least squares with w = 1 / var y.
SlopeFit fit_slope(const Prepared& p, std::size_t a, std::size_t b, double start, bool eiv,
                   double min_significance = 0.0) {
    assert(a <= b && b < p.n && "fit range inside the grid");
    const std::vector<double>& y = p.g2->value;
    const std::vector<double>& vy = p.g2->variance;
    const std::size_t m = b - a + 1;
    SlopeFit fit;
    fit.n_points = m;
    std::vector<double> w(m, 1.0);
    bool any_variance = false;
    auto set_weights = [&](double slope) {
        double dmax = 0.0;
        for (std::size_t j = 0; j < m; ++j) {
            const std::size_t i = a + j;
            w[j] = vy[i] + (eiv ? slope * slope * p.vx[i] : 0.0);
            dmax = std::max(dmax, w[j]);
        }
        any_variance = dmax > 0.0;
        for (double& wj : w) {
            wj = any_variance ? 1.0 / std::max(wj, dmax * 1e-12) : 1.0;
        }
    };
    double slope = std::isfinite(start) ? start : 0.0;
    double den = 0.0;
    for (int iteration = 0; iteration < kMaxSlopeIterations; ++iteration) {
        set_weights(slope);
        double num = 0.0;
        den = 0.0;
        for (std::size_t j = 0; j < m; ++j) {
            const std::size_t i = a + j;
            num += w[j] * p.x[i] * y[i];
            den += w[j] * (p.x[i] * p.x[i] - (eiv ? p.vx[i] : 0.0));
        }
        if (!(den > 0.0)) {
            return fit;  // no signal in the regressor: undetermined
        }
        const double next = num / den;
        const bool converged = std::abs(next - slope) <= 1e-12 * std::abs(next) || !eiv;
        slope = next;
        if (converged) {
            break;
        }
    }
    set_weights(slope);

    double var_num = 0.0;  // variance of sum w (x y - slope (x^2 - var x)) at the true slope
    double t1 = 0.0;
    for (std::size_t j = 0; j < m; ++j) {
        const std::size_t i = a + j;
        const double w2 = w[j] * w[j];
        if (eiv) {
            t1 += w2 * (p.x[i] * p.x[i] - p.vx[i]) * vy[i];  // sum w^2 xi^2 var y, unbiased
            var_num += w2 * p.vx[i] * vy[i];                 // sum w^2 var x var y
        } else {
            var_num += w2 * p.x[i] * p.x[i] * vy[i];
        }
    }
    if (eiv) {
        var_num += std::max(t1, 0.0);
        // 2 slope^2 sum_ik w_i w_k Cov(dx_i, dx_k)^2: the fluctuation of sum w dx^2.
        // Also the variance of the denominator sum w (x^2 - var x), 2 Cov^2 + 4 x x Cov per pair
        // (x x for xi xi: conservative), to refuse slopes whose denominator is mostly noise.
        double t4 = 0.0;
        double var_den = 0.0;
        for (std::size_t j = 0; j < m; ++j) {
            const std::size_t i = a + j;
            for (std::size_t d = 0; d < p.cov_band[i].size() && j + d < m; ++d) {
                const double c = p.cov_band[i][d];
                const double pair = (d == 0 ? 1.0 : 2.0) * w[j] * w[j + d];
                t4 += pair * c * c;
                var_den += pair * (2.0 * c * c + 4.0 * p.x[i] * p.x[i + d] * c);
            }
        }
        if (den < min_significance * std::sqrt(std::max(var_den, 0.0))) {
            return fit;
        }
        // slope^2 sum_m var(g0_m) S_m^2, S_m = sum_i w_i xi_i r_i c_i(m): the noise of g0 reaching
        // the regressor at first order. S_m^2 estimated without bias from the noisy x.
        double t2 = 0.0;
        const std::size_t m_lo = p.st.lo[a];
        const std::size_t m_hi = p.st.lo[b] + p.st.width;
        std::vector<double> coeff;
        for (std::size_t mm = m_lo; mm < m_hi; ++mm) {
            const std::size_t reach = p.st.width - 1;  // stencils touching sample mm
            const std::size_t i0 = std::max(a, mm >= reach ? mm - reach : 0);
            const std::size_t i1 = std::min(b, mm + reach);
            double s = 0.0;
            double v = 0.0;
            for (std::size_t i = i0; i <= i1; ++i) {
                const double bi = w[i - a] * p.g0->r_angstrom[i] * p.st.at(i, mm);
                if (bi == 0.0) {
                    continue;
                }
                s += bi * p.x[i];
                for (std::size_t k = i0; k <= i1; ++k) {
                    const double bk = w[k - a] * p.g0->r_angstrom[k] * p.st.at(k, mm);
                    if (bk != 0.0) {
                        v += bi * bk * p.cov(i, k);
                    }
                }
            }
            t2 += p.g0->variance[mm] * (s * s - v);
        }
        var_num += slope * slope * (2.0 * t4 + std::max(t2, 0.0));
    }
    fit.slope = slope;
    fit.stderr_value = std::sqrt(std::max(var_num, 0.0)) / den;
    if (any_variance && m > 1) {
        double chi2 = 0.0;
        for (std::size_t j = 0; j < m; ++j) {
            const std::size_t i = a + j;
            const double res = y[i] - slope * p.x[i];
            chi2 += w[j] * res * res;
        }
        fit.reduced_chi2 = chi2 / static_cast<double>(m - 1);
    }
    return fit;
}

// Indices of the grid points in [r_min, r_max] (with grid tolerance); false when empty.
bool index_range(const std::vector<double>& r, double h, double r_min, double r_max, std::size_t& a,
                 std::size_t& b) {
    const double tol = kGridTolerance * h;
    const auto first = std::lower_bound(r.begin(), r.end(), r_min - tol);
    const auto last = std::upper_bound(r.begin(), r.end(), r_max + tol);
    if (first >= last) {
        return false;
    }
    a = static_cast<std::size_t>(first - r.begin());
    b = static_cast<std::size_t>(last - r.begin()) - 1;
    return true;
}

Result<double> check_curve(const RCurve& c, std::string_view name) {
    if (c.value.size() != c.size() || c.variance.size() != c.size()) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: r, value and variance lengths differ ({}, {}, {})", name, c.size(),
                    c.value.size(), c.variance.size());
    }
    if (c.size() < 2) {
        return fail(ErrorCode::kInvalidArgument, "{}: fewer than 2 samples", name);
    }
    const double h =
        (c.r_angstrom.back() - c.r_angstrom.front()) / static_cast<double>(c.size() - 1);
    if (!(h > 0.0)) {
        return fail(ErrorCode::kInvalidArgument, "{}: r grid is not ascending", name);
    }
    for (std::size_t i = 0; i + 1 < c.size(); ++i) {
        const double step = c.r_angstrom[i + 1] - c.r_angstrom[i];
        if (std::abs(step - h) > 1e-4 * h) {
            return fail(ErrorCode::kInvalidArgument,
                        "{}: r grid is not uniform (step {} at r={} A, mean {})", name, step,
                        c.r_angstrom[i], h);
        }
    }
    for (std::size_t i = 0; i < c.size(); ++i) {
        if (!std::isfinite(c.value[i]) || !std::isfinite(c.variance[i]) || c.variance[i] < 0.0) {
            return fail(ErrorCode::kInvalidArgument,
                        "{}: value {} or variance {} at r={} A is not a finite value with a "
                        "non-negative variance",
                        name, c.value[i], c.variance[i], c.r_angstrom[i]);
        }
    }
    return h;
}

struct Checked {
    double h = 0.0;
    std::size_t half_width = 0;
};

Result<Checked> check_inputs(const RCurve& g0, const RCurve& g2, const AffineFitOptions& o) {
    if (!(o.nu > -1.0 && o.nu < 0.5)) {
        return fail(ErrorCode::kInvalidArgument,
                    "nu={} is outside the Poisson-ratio range (-1, 0.5)", o.nu);
    }
    auto h0 = check_curve(g0, "g0");
    if (!h0) {
        return tl::unexpected(h0.error());
    }
    auto h2 = check_curve(g2, "g2");
    if (!h2) {
        return tl::unexpected(h2.error());
    }
    const double h = *h0;
    if (g0.size() != g2.size()) {
        return fail(ErrorCode::kInvalidArgument, "g0 and g2 grids differ: {} and {} points",
                    g0.size(), g2.size());
    }
    for (std::size_t i = 0; i < g0.size(); ++i) {
        if (std::abs(g0.r_angstrom[i] - g2.r_angstrom[i]) > kGridTolerance * h) {
            return fail(ErrorCode::kInvalidArgument,
                        "g0 and g2 grids differ: r={} A against r={} A at index {}",
                        g0.r_angstrom[i], g2.r_angstrom[i], i);
        }
    }
    if (o.derivative_half_width_points < 2) {
        return fail(ErrorCode::kInvalidArgument,
                    "derivative_half_width_points={} is below 2 (quartic Savitzky-Golay)",
                    o.derivative_half_width_points);
    }
    const auto half_width = static_cast<std::size_t>(o.derivative_half_width_points);
    if (g0.size() < 2 * half_width + 1) {
        return fail(ErrorCode::kInvalidArgument,
                    "too few points: {} on the grid, the derivative needs {}", g0.size(),
                    2 * half_width + 1);
    }
    const double tol = kGridTolerance * h;
    if (!(o.r_fit_min < o.r_fit_max) || o.r_fit_min < g0.r_angstrom.front() - tol ||
        o.r_fit_max > g0.r_angstrom.back() + tol) {
        return fail(ErrorCode::kInvalidArgument,
                    "fit range [{}, {}] A is not an interval inside the grid [{}, {}] A",
                    o.r_fit_min, o.r_fit_max, g0.r_angstrom.front(), g0.r_angstrom.back());
    }
    if (!o.dg0_variance.empty()) {
        if (o.dg0_variance.size() != g0.size()) {
            return fail(ErrorCode::kInvalidArgument,
                        "dg0_variance has {} values but the g0 grid {} points",
                        o.dg0_variance.size(), g0.size());
        }
        for (double v : o.dg0_variance) {
            if (!std::isfinite(v) || v < 0.0) {
                return fail(ErrorCode::kInvalidArgument,
                            "dg0_variance holds {}: not a finite non-negative variance", v);
            }
        }
    }
    if (!(o.tau > 0.0)) {
        return fail(ErrorCode::kInvalidArgument, "tau={} is not positive", o.tau);
    }
    if (!(o.window_angstrom > 0.0) || o.window_angstrom > o.r_fit_max - o.r_fit_min) {
        return fail(ErrorCode::kInvalidArgument,
                    "window_angstrom={} is not positive or wider than the fit range",
                    o.window_angstrom);
    }
    if (o.window_angstrom / h + 1.0 < static_cast<double>(kMinWindowPoints)) {
        return fail(
            ErrorCode::kInvalidArgument,
            "too few points: window_angstrom={} holds fewer than {} grid points (step {} A)",
            o.window_angstrom, kMinWindowPoints, h);
    }
    return Checked{h, half_width};
}

double pearson(const std::vector<double>& u, const std::vector<double>& v) {
    const auto n = static_cast<double>(u.size());
    double mu = 0.0;
    double mv = 0.0;
    for (std::size_t i = 0; i < u.size(); ++i) {
        mu += u[i];
        mv += v[i];
    }
    mu /= n;
    mv /= n;
    double suv = 0.0;
    double suu = 0.0;
    double svv = 0.0;
    for (std::size_t i = 0; i < u.size(); ++i) {
        suv += (u[i] - mu) * (v[i] - mv);
        suu += (u[i] - mu) * (u[i] - mu);
        svv += (v[i] - mv) * (v[i] - mv);
    }
    return (suu > 0.0 && svv > 0.0) ? suv / std::sqrt(suu * svv) : kNaN;
}

// Offset in (-0.5, 0.5) samples of the vertex of the parabola through f[i-1], f[i], f[i+1].
double parabolic_offset(const std::vector<double>& f, std::size_t i) {
    if (i == 0 || i + 1 >= f.size()) {
        return 0.0;
    }
    const double curvature = f[i - 1] - 2.0 * f[i] + f[i + 1];
    if (curvature == 0.0) {
        return 0.0;
    }
    return std::clamp(0.5 * (f[i - 1] - f[i + 1]) / curvature, -0.5, 0.5);
}

// Upper 99 % point of chi^2 with k degrees of freedom (Wilson-Hilferty).
double chi2_99(double k) {
    const double t = 2.0 / (9.0 * k);
    const double c = 1.0 - t + kZ99 * std::sqrt(t);
    return k * c * c * c;
}

}  // namespace

std::string_view to_string(Mechanism mechanism) {
    switch (mechanism) {
        case Mechanism::kBondStretching:
            return "bond-stretching";
        case Mechanism::kBondRotation:
            return "bond-rotation";
        case Mechanism::kIsotropic:
            return "isotropic";
        case Mechanism::kUndetermined:
            return "undetermined";
    }
    return "undetermined";
}

double alpha_from_eps_aff(double eps_aff, double nu) {
    return 2.0 * (1.0 + nu) * eps_aff / (3.0 * kSqrt5);
}

double eps_aff_from_alpha(double alpha, double nu) {
    return 3.0 * kSqrt5 * alpha / (2.0 * (1.0 + nu));
}

Result<RCurve> radial_derivative(const RCurve& f, int half_width_points) {
    auto h = check_curve(f, "f");
    if (!h) {
        return tl::unexpected(h.error());
    }
    if (half_width_points < 2 || f.size() < 2 * static_cast<std::size_t>(half_width_points) + 1) {
        return fail(ErrorCode::kInvalidArgument,
                    "half_width_points={} is below 2 or too wide for {} samples", half_width_points,
                    f.size());
    }
    const Prepared p = prepare(f, f, static_cast<std::size_t>(half_width_points), *h);
    return RCurve{f.r_angstrom, p.dg0, p.var_dg0};
}

Result<SlopeFit> fit_alpha(const RCurve& g0, const RCurve& g2, const AffineFitOptions& options,
                           double r_min, double r_max) {
    auto checked = check_inputs(g0, g2, options);
    if (!checked) {
        return tl::unexpected(checked.error());
    }
    std::size_t a = 0;
    std::size_t b = 0;
    if (!index_range(g0.r_angstrom, checked->h, r_min, r_max, a, b) || b - a + 1 < kMinFitPoints) {
        return fail(ErrorCode::kInvalidArgument, "too few points in [{}, {}] A", r_min, r_max);
    }
    const Prepared p = prepare(g0, g2, checked->half_width, checked->h, options.dg0_variance);
    const SlopeFit plain = fit_slope(p, a, b, 0.0, false);
    if (!options.errors_in_variables) {
        return plain;
    }
    return fit_slope(p, a, b, plain.slope, true);
}

Result<AffineAnalysis> analyse_affine(const RCurve& g0, const RCurve& g2,
                                      const AffineFitOptions& options) {
    auto checked = check_inputs(g0, g2, options);
    if (!checked) {
        return tl::unexpected(checked.error());
    }
    const double h = checked->h;
    const std::vector<double>& r = g0.r_angstrom;
    const std::size_t n = g0.size();
    std::size_t a = 0;
    std::size_t b = 0;
    if (!index_range(r, h, options.r_fit_min, options.r_fit_max, a, b) ||
        b - a + 1 < kMinFitPoints) {
        return fail(ErrorCode::kInvalidArgument, "too few points in the fit range [{}, {}] A",
                    options.r_fit_min, options.r_fit_max);
    }
    const Prepared p = prepare(g0, g2, checked->half_width, h, options.dg0_variance);
    const bool eiv = options.errors_in_variables;
    // Windows (significance > 0) refuse a denominator that is mostly noise; range fits do not.
    auto fit = [&](std::size_t lo, std::size_t hi, double start, double significance = 0.0) {
        const SlopeFit plain = fit_slope(p, lo, hi, start, false);
        return eiv ? fit_slope(p, lo, hi, std::isfinite(start) ? start : plain.slope, true,
                               significance)
                   : plain;
    };

    AffineAnalysis out;
    const SlopeFit full = fit(a, b, kNaN);
    if (!std::isfinite(full.slope)) {
        return fail(ErrorCode::kInvalidArgument,
                    "g0 has no structure in the fit range [{}, {}] A: the slope is undetermined",
                    options.r_fit_min, options.r_fit_max);
    }
    out.alpha_full_range = full.slope;
    out.alpha_full_range_stderr = full.stderr_value;
    out.alpha_full_range_reduced_chi2 = full.reduced_chi2;

    // Local windows, fitted once (their weights follow their own slope).
    const double half = 0.5 * options.window_angstrom;
    std::vector<std::size_t> centres;
    std::vector<SlopeFit> local;
    for (std::size_t i = a; i <= b; ++i) {
        std::size_t lo = 0;
        std::size_t hi = 0;
        if (r[i] - half < options.r_fit_min - kGridTolerance * h ||
            r[i] + half > options.r_fit_max + kGridTolerance * h ||
            !index_range(r, h, r[i] - half, r[i] + half, lo, hi)) {
            continue;
        }
        centres.push_back(i);
        local.push_back(fit(lo, hi, full.slope, kMinDenominatorSignificance));
    }
    assert(!centres.empty() && "window not wider than the fit range");
    out.local_ratio.r_angstrom.reserve(centres.size());
    for (std::size_t i : centres) {
        out.local_ratio.r_angstrom.push_back(r[i]);
    }
    out.local_ratio.value.assign(centres.size(), kNaN);
    out.local_ratio.variance.assign(centres.size(), kInf);

    auto set_ratio = [&](double alpha) {
        for (std::size_t j = 0; j < centres.size(); ++j) {
            const bool ok = std::isfinite(local[j].slope) && std::isfinite(local[j].stderr_value);
            out.local_ratio.value[j] = ok ? local[j].slope / alpha : kNaN;
            const double s = local[j].stderr_value / std::abs(alpha);
            out.local_ratio.variance[j] = ok ? s * s : kInf;
        }
    };
    // Index into centres of r_c, or centres.size() when no centre qualifies.
    auto find_rc = [&]() {
        std::size_t first_ok = centres.size();
        for (std::size_t j = centres.size(); j-- > 0;) {
            const double ratio = out.local_ratio.value[j];
            const double sigma = std::sqrt(out.local_ratio.variance[j]);
            const bool ok = !std::isfinite(ratio) ||
                            std::abs(ratio - 1.0) <= std::max(options.tau, kSigmaA * sigma);
            if (!ok) {
                break;
            }
            first_ok = j;
        }
        return first_ok;
    };

    std::size_t mid = 0;
    std::size_t mid_end = 0;
    const bool mid_ok = index_range(r, h, 0.5 * (options.r_fit_min + options.r_fit_max),
                                    options.r_fit_max, mid, mid_end) &&
                        mid_end - mid + 1 >= kMinFitPoints;
    const SlopeFit outer = mid_ok ? fit(mid, b, full.slope) : full;
    out.alpha = full.slope;
    out.alpha_stderr = full.stderr_value;
    out.alpha_reduced_chi2 = full.reduced_chi2;
    // alpha ~ 0 (isotropic, or no long-range affine part): A(r) is undefined, no r_c.
    const bool alpha_nonzero = std::isfinite(outer.slope) &&
                               std::abs(outer.slope) > kAlphaZero * outer.stderr_value &&
                               outer.slope != 0.0;
    if (alpha_nonzero) {
        double alpha = outer.slope;
        std::size_t previous = centres.size() + 1;
        for (int round = 1; round <= kMaxRcRounds; ++round) {
            set_ratio(alpha);
            const std::size_t rc = find_rc();
            out.r_c_iterations = round;
            if (rc == centres.size()) {
                out.r_c_angstrom.reset();
                break;
            }
            const SlopeFit refit = fit(centres[rc], b, alpha);
            out.r_c_angstrom = r[centres[rc]];
            if (!std::isfinite(refit.slope)) {
                break;
            }
            out.alpha = refit.slope;
            out.alpha_stderr = refit.stderr_value;
            out.alpha_reduced_chi2 = refit.reduced_chi2;
            if (rc == previous) {
                break;
            }
            previous = rc;
            alpha = refit.slope;
        }
        if (!out.r_c_angstrom) {
            out.alpha = full.slope;
            out.alpha_stderr = full.stderr_value;
            out.alpha_reduced_chi2 = full.reduced_chi2;
        }
        set_ratio(out.alpha);
    }
    const double scale = 3.0 * kSqrt5 / (2.0 * (1.0 + options.nu));
    out.eps_aff = scale * out.alpha;
    out.eps_aff_stderr = scale * out.alpha_stderr;

    // alpha r dg0/dr on the whole grid.
    out.affine_g2.r_angstrom = r;
    out.affine_g2.value.resize(n);
    out.affine_g2.variance.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        out.affine_g2.value[i] = out.alpha * p.x[i];
        out.affine_g2.variance[i] =
            out.alpha * out.alpha * p.vx[i] + p.x[i] * p.x[i] * out.alpha_stderr * out.alpha_stderr;
    }

    // eps(r) g0(r) = eps_aff g0(R) - (sqrt5 / c) Int_r^R g2(s)/s ds, trapezoid inwards from R.
    const double c = 2.0 * (1.0 + options.nu) / 3.0;
    out.eps_r.r_angstrom = r;
    out.eps_r.value.assign(n, kNaN);
    out.eps_r.variance.assign(n, kNaN);
    {
        const double g0_r = g0.value[b];
        const double base_var = g0_r * g0_r * out.eps_aff_stderr * out.eps_aff_stderr +
                                out.eps_aff * out.eps_aff * g0.variance[b];
        const double end_var = 0.25 * h * h * g2.variance[b] / (r[b] * r[b]);
        double integral = 0.0;
        double interior_var = 0.0;
        for (std::size_t i = b + 1; i-- > 0;) {
            if (!(r[i] > 0.0)) {
                break;
            }
            double var_integral = 0.0;
            if (i < b) {
                integral += 0.5 * h * (g2.value[i] / r[i] + g2.value[i + 1] / r[i + 1]);
                if (i + 1 < b) {
                    interior_var += h * h * g2.variance[i + 1] / (r[i + 1] * r[i + 1]);
                }
                var_integral =
                    interior_var + end_var + 0.25 * h * h * g2.variance[i] / (r[i] * r[i]);
            }
            if (g0.value[i] < kEpsMinG0) {
                continue;
            }
            const double product = out.eps_aff * g0_r - kSqrt5 / c * integral;
            const double var_product = base_var + 5.0 / (c * c) * var_integral;
            const double eps = product / g0.value[i];
            out.eps_r.value[i] = eps;
            out.eps_r.variance[i] =
                (var_product + eps * eps * g0.variance[i]) / (g0.value[i] * g0.value[i]);
        }
    }

    // Mechanism (SPEC 7): correlations over [r where g0 first reaches 0.3, 8 A].
    std::size_t i03 = 0;
    while (i03 < n && g0.value[i03] < kEpsMinG0) {
        ++i03;
    }
    std::vector<double> g2s;
    std::vector<double> stretch;
    std::vector<double> rotate;
    for (std::size_t i = i03; i < n && r[i] <= kMechanismRMaxAngstrom; ++i) {
        g2s.push_back(g2.value[i]);
        stretch.push_back(p.x[i]);
        rotate.push_back(g0.value[i] - 1.0);
    }
    out.corr_stretching = g2s.size() >= 3 ? pearson(g2s, stretch) : kNaN;
    out.corr_rotation = g2s.size() >= 3 ? pearson(g2s, rotate) : kNaN;
    bool isotropic = false;
    if (options.s2_consistent_with_zero) {
        isotropic = *options.s2_consistent_with_zero;
    } else {
        double chi2 = 0.0;
        std::size_t dof = 0;
        bool all_zero = true;
        for (std::size_t i = a; i <= b; ++i) {
            all_zero = all_zero && g2.value[i] == 0.0;
            if (g2.variance[i] > 0.0) {
                chi2 += g2.value[i] * g2.value[i] / g2.variance[i];
                ++dof;
            }
        }
        isotropic = dof == 0 ? all_zero : chi2 <= chi2_99(static_cast<double>(dof));
    }
    const double cs = out.corr_stretching;
    const double cr = out.corr_rotation;
    if (isotropic) {
        out.mechanism = Mechanism::kIsotropic;
    } else if (cs >= kCorrelationThreshold && !(cs <= cr)) {
        out.mechanism = Mechanism::kBondStretching;
    } else if (cr >= kCorrelationThreshold && !(cr <= cs)) {
        out.mechanism = Mechanism::kBondRotation;
    } else {
        out.mechanism = Mechanism::kUndetermined;
    }

    // First-peak shift: g0's first maximum (the region where g0 first exceeds 1), then the
    // largest |g2| within 1 A of it, both refined by parabolic interpolation.
    out.first_peak_shift_angstrom = kNaN;
    if (i03 < n) {
        std::size_t end = i03;
        bool above = false;
        while (end + 1 < n && r[end + 1] <= r[i03] + 2.0) {
            ++end;
            above = above || g0.value[end] > 1.0;
            if (above && g0.value[end] < 1.0) {
                break;
            }
        }
        std::size_t ip = i03;
        for (std::size_t i = i03; i <= end; ++i) {
            if (g0.value[i] > g0.value[ip]) {
                ip = i;
            }
        }
        const double r0 = r[ip] + h * parabolic_offset(g0.value, ip);
        std::size_t iq = n;
        for (std::size_t i = 0; i < n; ++i) {
            if (std::abs(r[i] - r0) > kPeakSearchAngstrom) {
                continue;
            }
            if (iq == n || std::abs(g2.value[i]) > std::abs(g2.value[iq])) {
                iq = i;
            }
        }
        if (iq < n && g2.value[iq] != 0.0) {
            out.first_peak_shift_angstrom = r[iq] + h * parabolic_offset(g2.value, iq) - r0;
        }
    }
    return out;
}

}  // namespace anisoflow::physics
