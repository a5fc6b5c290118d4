// SPEC 7: affine fit with errors in variables, local ratio A(r) and r_c, eps(r), mechanism.
// The estimator and its variance are derived in docs/physics-fits.md.

#include "anisoflow/physics/affine_fit.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
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
constexpr int kMaxRcRounds = 10;  // SPEC 7
// Halvings of the start range of the r_c iteration towards r_fit_max (outer half, quarter, ...).
constexpr int kMaxStartShrinks = 3;
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

// Regressor x = r dg0/dr and observations y = g2 with their covariances on the full grid.
struct Prepared {
    std::size_t n = 0;
    double h = 0.0;
    const RCurve* g0 = nullptr;
    const RCurve* g2 = nullptr;
    Stencils st;
    std::vector<double> dg0, var_dg0, x, vx;
    const TransformNoise* noise = nullptr;  // exact long-range variances, when known
    BandedCovariance own_cxx;               // the bands when no noise model is given
    BandedCovariance own_cyy;
    const BandedCovariance* cxx = nullptr;  // Cov(x_i, x_k)
    const BandedCovariance* cyy = nullptr;  // Cov(y_i, y_k)
    BandedCovariance cxx2;                  // Cov(x_i, x_k)^2
    BandedCovariance cxy;                   // Cov(x_i, x_k) Cov(y_i, y_k)
};

// The element-wise product of two bands (over the narrower one).
BandedCovariance product(const BandedCovariance& m, const BandedCovariance& k) {
    BandedCovariance out(m.size(), std::min(m.max_lag(), k.max_lag()));
    for (std::size_t i = 0; i < m.size(); ++i) {
        for (std::size_t d = 0; d <= out.max_lag() && i + d < m.size(); ++d) {
            out.at(i, d) = m.at(i, d) * k.at(i, d);
        }
    }
    return out;
}

Prepared prepare(const RCurve& g0, const RCurve& g2, std::size_t half_width, double h,
                 const AffineFitOptions& options = {}) {
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
    if (options.transform_noise) {
        p.noise = options.transform_noise.get();
        p.cxx = &p.noise->regressor_band();
        p.cyy = &p.noise->g2_band();
        for (std::size_t i = 0; i < p.n; ++i) {
            p.vx[i] = p.cxx->at(i, 0);
        }
    } else {
        // Independent g0 samples: neighbouring x share stencil samples, so
        // Cov(x_i, x_k) = r_i r_k sum_m c_i(m) c_k(m) var(g0_m) over 4M + 1 points.
        p.own_cxx = BandedCovariance(p.n, p.st.width * 2 - 2);
        for (std::size_t i = 0; i < p.n; ++i) {
            for (std::size_t d = 0; d <= p.own_cxx.max_lag() && i + d < p.n; ++d) {
                const std::size_t k = i + d;
                const std::size_t m0 = std::max(p.st.lo[i], p.st.lo[k]);
                const std::size_t m1 = std::min(p.st.lo[i], p.st.lo[k]) + p.st.width;
                double s = 0.0;
                for (std::size_t m = m0; m < m1; ++m) {
                    s += p.st.at(i, m) * p.st.at(k, m) * g0.variance[m];
                }
                p.own_cxx.at(i, d) = g0.r_angstrom[i] * g0.r_angstrom[k] * s;
            }
        }
        p.own_cyy = BandedCovariance(p.n, 0);
        for (std::size_t i = 0; i < p.n; ++i) {
            p.own_cyy.at(i, 0) = g2.variance[i];
        }
        p.cxx = &p.own_cxx;
        p.cyy = &p.own_cyy;
    }
    p.cxx2 = product(*p.cxx, *p.cxx);
    p.cxy = product(*p.cxx, *p.cyy);
    return p;
}

// The same sum over a window [lo, end) that only moves right, updated as indices enter and
// leave it: O(band) per step instead of O(window x band) per window.
class SlidingForm {
  public:
    SlidingForm(const std::vector<double>& a, const BandedCovariance& m,
                const std::vector<double>& b, std::size_t start)
        : a_(a), m_(m), b_(b), lo_(start), end_(start) {}

    void push_back() {
        const std::size_t n = end_;
        const std::size_t band = m_.max_lag();
        value_ += a_[n] * m_.at(n, 0) * b_[n] + cross(n, std::max(lo_, n > band ? n - band : 0), n);
        ++end_;
    }
    void pop_front() {
        const std::size_t n = lo_;
        value_ -=
            a_[n] * m_.at(n, 0) * b_[n] + cross(n, n + 1, std::min(end_, n + m_.max_lag() + 1));
        ++lo_;
    }
    [[nodiscard]] double value() const { return value_; }

  private:
    // a_n sum_j M_nj b_j + b_n sum_j a_j M_jn over j in [from, to).
    [[nodiscard]] double cross(std::size_t n, std::size_t from, std::size_t to) const {
        double sb = 0.0;
        double sa = 0.0;
        for (std::size_t j = from; j < to; ++j) {
            const double mnj = m_(n, j);
            sb += mnj * b_[j];
            sa += mnj * a_[j];
        }
        return a_[n] * sb + b_[n] * sa;
    }

    const std::vector<double>& a_;
    const BandedCovariance& m_;
    const std::vector<double>& b_;
    std::size_t lo_;
    std::size_t end_;
    double value_ = 0.0;
};

// Weights 1 / (var y + slope^2 var x) (errors in variables) or 1 / var y, on the whole grid; all
// ones when no sample in [a, b] has a variance. Returns whether any has.
bool set_weights(const Prepared& p, std::size_t a, std::size_t b, double slope, bool eiv,
                 std::vector<double>& w) {
    w.assign(p.n, 0.0);
    double dmax = 0.0;
    for (std::size_t i = a; i <= b; ++i) {
        w[i] = p.g2->variance[i] + (eiv ? slope * slope * p.vx[i] : 0.0);
        dmax = std::max(dmax, w[i]);
    }
    for (std::size_t i = a; i <= b; ++i) {
        w[i] = dmax > 0.0 ? 1.0 / std::max(w[i], dmax * 1e-12) : 1.0;
    }
    return dmax > 0.0;
}

// Delta-method variance of slope = N / D, N = sum w x y, D = sum w (x^2 - var x), weights held:
// d slope = [sum w x dy + sum w (y - 2 slope x) dx] / D with the covariances of x and y
// (docs/physics-fits.md). With u = w x and v = w y from the noisy data,
// u'Cyy u + (v - 2 s u)'Cxx (v - 2 s u) estimates that, plus the second-order terms
// sum w w Cxx Cyy and 2 s^2 sum w w Cxx^2 once more each than they belong: subtracted.
struct Forms {
    double uyu = 0.0, vxv = 0.0, vxu = 0.0, uxu = 0.0, wxxw = 0.0, wxyw = 0.0;
    // The true variance is first order + second order, and the first order is >= 0; its
    // estimate from the data can fall below 0 where the regressor's noise rivals its signal
    // (weak g0 oscillations beyond ~12 A at a few frames), so it is clamped there. The second
    // order comes from the noise model alone and is not noisy.
    [[nodiscard]] double slope_variance(double slope) const {
        const double second_order = wxyw + 2.0 * slope * slope * wxxw;
        const double first_order =
            uyu + vxv - 4.0 * slope * vxu + 4.0 * slope * slope * uxu - 2.0 * second_order;
        return std::max(first_order, 0.0) + second_order;
    }
    // var D = sum_ik w_i w_k (2 Cxx_ik^2 + 4 x_i x_k Cxx_ik) for Gaussian noise.
    [[nodiscard]] double denominator_variance() const { return 2.0 * wxxw + 4.0 * uxu; }
};

struct FitVectors {
    std::vector<double> w, u, v;
};

FitVectors fit_vectors(const Prepared& p, const std::vector<double>& w) {
    FitVectors f{w, std::vector<double>(p.n, 0.0), std::vector<double>(p.n, 0.0)};
    for (std::size_t i = 0; i < p.n; ++i) {
        f.u[i] = w[i] * p.x[i];
        f.v[i] = w[i] * p.g2->value[i];
    }
    return f;
}

// Every quadratic form of the slope's variance over [lo, hi] in one pass over the bands.
Forms all_forms(const Prepared& p, const FitVectors& f, std::size_t lo, std::size_t hi) {
    Forms out;
    const bool first_order = p.noise == nullptr;  // else exact, in Q space (fit_slope)
    const std::size_t band = std::max(p.cxx->max_lag(), p.cyy->max_lag());
    const auto term = [](double m, double ai, double bi, double ak, double bk, bool diagonal) {
        return diagonal ? m * ai * bk : m * (ai * bk + ak * bi);
    };
    for (std::size_t i = lo; i <= hi; ++i) {
        const std::size_t top = std::min(hi, i + band);
        for (std::size_t k = i; k <= top; ++k) {
            const bool diagonal = k == i;
            const std::size_t d = k - i;
            if (first_order && d <= p.cyy->max_lag()) {
                out.uyu += term(p.cyy->at(i, d), f.u[i], f.u[i], f.u[k], f.u[k], diagonal);
            }
            if (d <= p.cxx->max_lag()) {
                if (first_order) {
                    const double cxx = p.cxx->at(i, d);
                    out.vxv += term(cxx, f.v[i], f.v[i], f.v[k], f.v[k], diagonal);
                    out.vxu += term(cxx, f.v[i], f.u[i], f.v[k], f.u[k], diagonal);
                    out.uxu += term(cxx, f.u[i], f.u[i], f.u[k], f.u[k], diagonal);
                }
                out.wxxw += term(p.cxx2.at(i, d), f.w[i], f.w[i], f.w[k], f.w[k], diagonal);
            }
            if (d <= p.cxy.max_lag()) {
                out.wxyw += term(p.cxy.at(i, d), f.w[i], f.w[i], f.w[k], f.w[k], diagonal);
            }
        }
    }
    return out;
}

// Fits g2 = slope * x over indices [a, b]. With eiv, the weighted moment estimator
// slope = sum w x y / sum w (x^2 - var x), w = 1 / (var y + slope^2 var x), iterated to a fixed
// point (docs/physics-fits.md). Without eiv: weighted least squares with w = 1 / var y.
SlopeFit fit_slope(const Prepared& p, std::size_t a, std::size_t b, double start, bool eiv,
                   bool with_variance = true) {
    assert(a <= b && b < p.n && "fit range inside the grid");
    const std::vector<double>& y = p.g2->value;
    SlopeFit fit;
    fit.n_points = b - a + 1;
    std::vector<double> w;
    bool any_variance = false;
    double slope = std::isfinite(start) ? start : 0.0;
    double den = 0.0;
    for (int iteration = 0; iteration < kMaxSlopeIterations; ++iteration) {
        any_variance = set_weights(p, a, b, slope, eiv, w);
        double num = 0.0;
        den = 0.0;
        for (std::size_t i = a; i <= b; ++i) {
            num += w[i] * p.x[i] * y[i];
            den += w[i] * (p.x[i] * p.x[i] - (eiv ? p.vx[i] : 0.0));
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
    any_variance = set_weights(p, a, b, slope, eiv, w);
    const FitVectors f = fit_vectors(p, w);
    Forms forms = with_variance ? all_forms(p, f, a, b) : Forms{};
    if (with_variance && p.noise != nullptr) {
        // A long range sums correlations far beyond the bands: its first-order terms exactly,
        // in Q space (u'Cyy u and (v - 2 s u)'Cxx (v - 2 s u)); the bands keep the small
        // second-order ones.
        std::vector<double> residual(p.n, 0.0);
        for (std::size_t i = a; i <= b; ++i) {
            residual[i] = f.v[i] - 2.0 * slope * f.u[i];
        }
        forms.uyu = p.noise->g2_variance(f.u);
        forms.vxv = p.noise->regressor_variance(residual);
        forms.vxu = 0.0;
        forms.uxu = 0.0;
    }
    fit.slope = slope;
    fit.stderr_value =
        with_variance ? std::sqrt(std::max(forms.slope_variance(slope), 0.0)) / den : kNaN;
    if (any_variance && fit.n_points > 1) {
        double chi2 = 0.0;
        for (std::size_t i = a; i <= b; ++i) {
            const double res = y[i] - slope * p.x[i];
            chi2 += w[i] * res * res;
        }
        fit.reduced_chi2 = chi2 / static_cast<double>(fit.n_points - 1);
    }
    return fit;
}

// Slopes of the windows [lo_j, hi_j] (both non-decreasing in j), all with the weights of
// `reference` (the long-range slope: under the affine hypothesis the right ones), so that their
// sums and variance forms slide along the grid. A window whose denominator is known to less than
// kMinDenominatorSignificance times its own standard deviation is undetermined.
std::vector<SlopeFit> fit_windows(const Prepared& p, const std::vector<std::size_t>& lo,
                                  const std::vector<std::size_t>& hi, std::size_t a, std::size_t b,
                                  double reference, bool eiv) {
    std::vector<double> w;
    set_weights(p, a, b, reference, eiv, w);
    const FitVectors f = fit_vectors(p, w);
    const std::size_t start = lo.empty() ? 0 : lo.front();
    SlidingForm uyu(f.u, *p.cyy, f.u, start);
    SlidingForm vxv(f.v, *p.cxx, f.v, start);
    SlidingForm vxu(f.v, *p.cxx, f.u, start);
    SlidingForm uxu(f.u, *p.cxx, f.u, start);
    SlidingForm wxxw(f.w, p.cxx2, f.w, start);
    SlidingForm wxyw(f.w, p.cxy, f.w, start);
    const std::array<SlidingForm*, 6> all = {&uyu, &vxv, &vxu, &uxu, &wxxw, &wxyw};
    double num = 0.0;
    double den = 0.0;
    std::size_t cur_lo = start;
    std::size_t cur_end = start;  // window [cur_lo, cur_end)
    std::vector<SlopeFit> out(lo.size());
    for (std::size_t j = 0; j < lo.size(); ++j) {
        for (; cur_end <= hi[j]; ++cur_end) {
            for (SlidingForm* s : all) {
                s->push_back();
            }
            num += f.u[cur_end] * p.g2->value[cur_end];
            den += w[cur_end] * (p.x[cur_end] * p.x[cur_end] - (eiv ? p.vx[cur_end] : 0.0));
        }
        for (; cur_lo < lo[j]; ++cur_lo) {
            for (SlidingForm* s : all) {
                s->pop_front();
            }
            num -= f.u[cur_lo] * p.g2->value[cur_lo];
            den -= w[cur_lo] * (p.x[cur_lo] * p.x[cur_lo] - (eiv ? p.vx[cur_lo] : 0.0));
        }
        SlopeFit& fit = out[j];
        fit.n_points = hi[j] - lo[j] + 1;
        const Forms forms{uyu.value(), vxv.value(),  vxu.value(),
                          uxu.value(), wxxw.value(), wxyw.value()};
        if (!(den > 0.0) || den < kMinDenominatorSignificance *
                                      std::sqrt(std::max(forms.denominator_variance(), 0.0))) {
            continue;
        }
        fit.slope = num / den;
        fit.stderr_value = std::sqrt(std::max(forms.slope_variance(fit.slope), 0.0)) / den;
    }
    return out;
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
    if (o.transform_noise && o.transform_noise->regressor_band().size() != g0.size()) {
        return fail(ErrorCode::kInvalidArgument,
                    "transform_noise has {} r points but the g0 grid {}",
                    o.transform_noise->regressor_band().size(), g0.size());
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
    const Prepared p = prepare(g0, g2, checked->half_width, checked->h, options);
    const SlopeFit plain = fit_slope(p, a, b, 0.0, false, !options.errors_in_variables);
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
    const Prepared p = prepare(g0, g2, checked->half_width, h, options);
    const bool eiv = options.errors_in_variables;
    // with_variance = false skips the standard error (the costly part) where only the slope is
    // used: the rounds of the r_c iteration before the last.
    auto fit = [&](std::size_t lo, std::size_t hi, double start, bool with_variance = true) {
        const SlopeFit plain = fit_slope(p, lo, hi, start, false, !eiv && with_variance);
        return eiv ? fit_slope(p, lo, hi, std::isfinite(start) ? start : plain.slope, true,
                               with_variance)
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

    std::size_t mid = 0;
    std::size_t mid_end = 0;
    const bool mid_ok = index_range(r, h, 0.5 * (options.r_fit_min + options.r_fit_max),
                                    options.r_fit_max, mid, mid_end) &&
                        mid_end - mid + 1 >= kMinFitPoints;
    const SlopeFit outer = mid_ok ? fit(mid, b, full.slope) : full;

    // Local windows, fitted once with the weights of the long-range (outer-half) slope.
    const double half = 0.5 * options.window_angstrom;
    std::vector<std::size_t> centres;
    std::vector<std::size_t> window_lo;
    std::vector<std::size_t> window_hi;
    for (std::size_t i = a; i <= b; ++i) {
        std::size_t lo = 0;
        std::size_t hi = 0;
        if (r[i] - half < options.r_fit_min - kGridTolerance * h ||
            r[i] + half > options.r_fit_max + kGridTolerance * h ||
            !index_range(r, h, r[i] - half, r[i] + half, lo, hi)) {
            continue;
        }
        centres.push_back(i);
        window_lo.push_back(lo);
        window_hi.push_back(hi);
    }
    assert(!centres.empty() && "window not wider than the fit range");
    const double reference = std::isfinite(outer.slope) ? outer.slope : full.slope;
    const std::vector<SlopeFit> local = fit_windows(p, window_lo, window_hi, a, b, reference, eiv);
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

    out.alpha = full.slope;
    out.alpha_stderr = full.stderr_value;
    out.alpha_reduced_chi2 = full.reduced_chi2;
    // alpha ~ 0 (isotropic, or no long-range affine part): A(r) is undefined, no r_c.
    const bool alpha_nonzero = std::isfinite(outer.slope) &&
                               std::abs(outer.slope) > kAlphaZero * outer.stderr_value &&
                               outer.slope != 0.0;
    if (alpha_nonzero) {
        // SPEC 7 starts from the outer half. When a non-affine region reaches into it (a strain
        // step near the middle of the range: its r eps' g0 term biases the fit), the start can
        // disagree with the outermost window itself, and the first round would then end the
        // search with no r_c. The start range then shrinks towards r_fit_max until the outermost
        // window agrees (docs/physics-fits.md, "Start of the r_c iteration").
        double alpha = outer.slope;
        std::size_t start = mid;
        const auto outermost_agrees = [&](double slope) {
            const SlopeFit& last = local.back();
            if (!std::isfinite(last.slope) || !std::isfinite(last.stderr_value)) {
                return true;  // undetermined: no evidence against the start
            }
            return std::abs(last.slope / slope - 1.0) <=
                   std::max(options.tau, kSigmaA * last.stderr_value / std::abs(slope));
        };
        for (int shrink = 0; shrink < kMaxStartShrinks && mid_ok && !outermost_agrees(alpha);
             ++shrink) {
            const std::size_t next = start + (b - start) / 2;
            if (b - next + 1 < kMinFitPoints || r[b] - r[next] < options.window_angstrom) {
                break;
            }
            const SlopeFit narrower = fit(next, b, alpha, false);
            if (!std::isfinite(narrower.slope) || narrower.slope == 0.0) {
                break;
            }
            start = next;
            alpha = narrower.slope;
        }
        std::size_t previous = centres.size() + 1;
        std::optional<std::size_t> final_start;  // of the last successful refit
        double final_alpha = alpha;
        for (int round = 1; round <= kMaxRcRounds; ++round) {
            set_ratio(alpha);
            const std::size_t rc = find_rc();
            out.r_c_iterations = round;
            if (rc == centres.size()) {
                out.r_c_angstrom.reset();
                break;
            }
            const SlopeFit refit = fit(centres[rc], b, alpha, false);
            out.r_c_angstrom = r[centres[rc]];
            if (!std::isfinite(refit.slope)) {
                break;
            }
            final_start = centres[rc];
            final_alpha = refit.slope;
            if (rc == previous) {
                break;
            }
            previous = rc;
            alpha = refit.slope;
        }
        if (out.r_c_angstrom && final_start) {
            const SlopeFit refit = fit(*final_start, b, final_alpha);
            out.alpha = refit.slope;
            out.alpha_stderr = refit.stderr_value;
            out.alpha_reduced_chi2 = refit.reduced_chi2;
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
