// Banded covariances of r dg0/dr and g2 from the Q-bin variances of S0 and S2 (SPEC 6-7).
// docs/physics-fits.md, "Noise of transformed curves", derives what is computed here.

#include "anisoflow/physics/transform_covariance.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstddef>
#include <numbers>
#include <string_view>
#include <vector>

namespace anisoflow::physics {
namespace {

using Complex = std::complex<double>;

// A transform kernel as a sum of terms Q^p trig(Q r) coef(r), trig = cos or sin; the Q-only
// factor common to all terms is folded into the spectral weights v_k.
struct KernelTerm {
    int power = 0;  ///< p, in [-1, 1]
    bool is_cos = false;
    std::vector<double> coef;  ///< coef(r_i) on the r grid
};

constexpr int kMinPower = -2;  // p + p' ranges over [-2, 2]
constexpr int kPowers = 5;
// Exact cos/sin every this many recurrence steps, so rounding cannot accumulate.
constexpr std::size_t kReseed = 64;

Result<double> check_inputs(const QCurve& s, const std::vector<double>& r,
                            const TransformOptions& options, std::string_view name) {
    if (!(options.rho0_per_cubic_angstrom > 0.0) ||
        !std::isfinite(options.rho0_per_cubic_angstrom)) {
        return fail(ErrorCode::kInvalidArgument, "rho0 = {} atoms/A^3 is not positive",
                    options.rho0_per_cubic_angstrom);
    }
    if (s.size() < 2 || s.variance.size() != s.size()) {
        return fail(ErrorCode::kInvalidArgument, "{}: needs at least 2 Q samples with variances",
                    name);
    }
    for (std::size_t k = 0; k < s.size(); ++k) {
        if (!(s.q_inv_angstrom[k] > 0.0) ||
            (k > 0 && !(s.q_inv_angstrom[k] > s.q_inv_angstrom[k - 1]))) {
            return fail(ErrorCode::kInvalidArgument,
                        "{}: Q = {} 1/A at bin {} is not positive and ascending", name,
                        s.q_inv_angstrom[k], k);
        }
        if (!std::isfinite(s.variance[k]) || s.variance[k] < 0.0) {
            return fail(ErrorCode::kInvalidArgument, "{}: variance {} at Q = {} 1/A", name,
                        s.variance[k], s.q_inv_angstrom[k]);
        }
    }
    if (r.size() < 2 || !(r.front() > 0.0)) {
        return fail(ErrorCode::kInvalidArgument, "r grid: needs at least 2 points above 0");
    }
    const double h = (r.back() - r.front()) / static_cast<double>(r.size() - 1);
    for (std::size_t i = 0; i < r.size(); ++i) {
        const double model = r.front() + static_cast<double>(i) * h;
        if (!(h > 0.0) || std::abs(r[i] - model) > 1e-6 * h) {
            return fail(ErrorCode::kInvalidArgument, "r grid is not uniform at r = {} A", r[i]);
        }
    }
    return h;
}

// F_s(m) = sum_k v_k Q_k^s exp(i Q_k m h), s = -2..2, m = 0..max_lag. The phases of all Q_k
// advance together from lag to lag (one rotation per k), so each lag is five dot products over
// contiguous arrays.
std::vector<std::vector<Complex>> spectral_sums(const std::vector<double>& q,
                                                const std::vector<double>& v, double h,
                                                std::size_t max_lag) {
    const std::size_t nq = q.size();
    std::vector<std::vector<double>> weight(kPowers, std::vector<double>(nq));
    std::vector<double> step_cos(nq);
    std::vector<double> step_sin(nq);
    for (std::size_t k = 0; k < nq; ++k) {
        const double inv_q = 1.0 / q[k];
        weight[0][k] = v[k] * inv_q * inv_q;
        weight[1][k] = v[k] * inv_q;
        weight[2][k] = v[k];
        weight[3][k] = v[k] * q[k];
        weight[4][k] = v[k] * q[k] * q[k];
        step_cos[k] = std::cos(q[k] * h);
        step_sin[k] = std::sin(q[k] * h);
    }
    std::vector<double> c(nq);
    std::vector<double> s(nq);
    std::vector<std::vector<Complex>> f(kPowers, std::vector<Complex>(max_lag + 1));
    for (std::size_t m = 0; m <= max_lag; ++m) {
        if (m % kReseed == 0) {
            for (std::size_t k = 0; k < nq; ++k) {
                c[k] = std::cos(q[k] * h * static_cast<double>(m));
                s[k] = std::sin(q[k] * h * static_cast<double>(m));
            }
        }
        for (std::size_t t = 0; t < kPowers; ++t) {
            const std::vector<double>& wt = weight[t];
            double re = 0.0;
            double im = 0.0;
            for (std::size_t k = 0; k < nq; ++k) {
                re += wt[k] * c[k];
                im += wt[k] * s[k];
            }
            f[t][m] = Complex(re, im);
        }
        for (std::size_t k = 0; k < nq; ++k) {
            const double next_c = c[k] * step_cos[k] - s[k] * step_sin[k];
            s[k] = s[k] * step_cos[k] + c[k] * step_sin[k];
            c[k] = next_c;
        }
    }
    return f;
}

// Cov(f_i, f_k) = sum_k v_k K(r_i, Q_k) K(r_k, Q_k) with K = sum_t Q^p_t trig_t(Q r) coef_t(r).
// Each product of trig functions is half a difference-frequency term (kept) plus half a
// sum-frequency term (dropped): cos cos, sin sin -> cos(Q D)/2; cos_i sin_k -> -sin(Q D)/2;
// sin_i cos_k -> sin(Q D)/2, D = r_i - r_k = -d h, so cos(Q D) = Re F(d), sin(Q D) = -Im F(d).
BandedCovariance band_from_terms(const std::vector<KernelTerm>& terms,
                                 const std::vector<std::vector<Complex>>& f, std::size_t n,
                                 std::size_t max_lag) {
    BandedCovariance cov(n, max_lag);
    std::vector<double> trig(max_lag + 1);
    for (const KernelTerm& ti : terms) {
        for (const KernelTerm& tk : terms) {
            const std::vector<Complex>& fs =
                f[static_cast<std::size_t>(ti.power + tk.power - kMinPower)];
            for (std::size_t d = 0; d <= max_lag; ++d) {
                const double value = ti.is_cos == tk.is_cos ? fs[d].real()
                                     : ti.is_cos            ? fs[d].imag()
                                                            : -fs[d].imag();
                trig[d] = 0.5 * value;
            }
            for (std::size_t i = 0; i < n; ++i) {
                const std::size_t top = std::min(max_lag, n - 1 - i);
                const double ci = ti.coef[i];
                const double* ck = tk.coef.data() + i;
                double* row = &cov.at(i, 0);
                for (std::size_t d = 0; d <= top; ++d) {
                    row[d] += ci * ck[d] * trig[d];
                }
            }
        }
    }
    return cov;
}

std::vector<double> spectral_weights(const QCurve& s, const TransformOptions& options,
                                     int q_power) {
    const std::vector<double> w = quadrature_weights(s.q_inv_angstrom, options.lorch);
    const double c =
        1.0 / (2.0 * std::numbers::pi * std::numbers::pi * options.rho0_per_cubic_angstrom);
    std::vector<double> v(s.size());
    for (std::size_t k = 0; k < s.size(); ++k) {
        const double g = c * w[k] * std::pow(s.q_inv_angstrom[k], q_power);
        v[k] = g * g * s.variance[k];
    }
    return v;
}

KernelTerm term(int power, bool is_cos, const std::vector<double>& r, double (*coef)(double)) {
    KernelTerm t{power, is_cos, std::vector<double>(r.size())};
    for (std::size_t i = 0; i < r.size(); ++i) {
        t.coef[i] = coef(r[i]);
    }
    return t;
}

}  // namespace

// x = r dg0/dr = c sum_k w_k Q_k (S0_k - 1) [Q_k cos(Q_k r) - sin(Q_k r) / r].
Result<BandedCovariance> r_dg0_dr_covariance(const QCurve& s0, const std::vector<double>& r,
                                             const TransformOptions& options, std::size_t max_lag) {
    auto h = check_inputs(s0, r, options, "S0");
    if (!h) {
        return tl::unexpected(h.error());
    }
    const std::vector<KernelTerm> terms = {
        term(1, true, r, [](double) { return 1.0; }),
        term(0, false, r, [](double x) { return -1.0 / x; }),
    };
    const auto f = spectral_sums(s0.q_inv_angstrom, spectral_weights(s0, options, 1), *h, max_lag);
    return band_from_terms(terms, f, r.size(), max_lag);
}

// g2 = -c sum_k w_k Q_k^2 S2_k j2(Q_k r), and Q^2 j2(Q r) =
// (3 / (Q r^3) - Q / r) sin(Q r) - 3 cos(Q r) / r^2 (SPEC 6); the sign drops out of covariances.
Result<BandedCovariance> g2_covariance(const QCurve& s2, const std::vector<double>& r,
                                       const TransformOptions& options, std::size_t max_lag) {
    auto h = check_inputs(s2, r, options, "S2");
    if (!h) {
        return tl::unexpected(h.error());
    }
    const std::vector<KernelTerm> terms = {
        term(-1, false, r, [](double x) { return 3.0 / (x * x * x); }),
        term(1, false, r, [](double x) { return -1.0 / x; }),
        term(0, true, r, [](double x) { return -3.0 / (x * x); }),
    };
    const auto f = spectral_sums(s2.q_inv_angstrom, spectral_weights(s2, options, 0), *h, max_lag);
    return band_from_terms(terms, f, r.size(), max_lag);
}

Result<TransformNoise> TransformNoise::create(const QCurve& s0, const QCurve& s2,
                                              const std::vector<double>& r,
                                              const TransformOptions& options, std::size_t max_lag,
                                              std::shared_ptr<const ExponentialSums> sums) {
    auto cxx = r_dg0_dr_covariance(s0, r, options, max_lag);
    if (!cxx) {
        return tl::unexpected(cxx.error());
    }
    auto cyy = g2_covariance(s2, r, options, max_lag);
    if (!cyy) {
        return tl::unexpected(cyy.error());
    }
    if (s2.q_inv_angstrom != s0.q_inv_angstrom) {
        return fail(ErrorCode::kInvalidArgument, "S0 and S2 are not on the same Q grid");
    }
    auto grid = uniform_q_grid_of(s0.q_inv_angstrom);
    if (!grid) {
        return tl::unexpected(grid.error());
    }
    if (!sums || sums->input_size() != r.size() || sums->output_size() != grid->n) {
        const double h = (r.back() - r.front()) / static_cast<double>(r.size() - 1);
        auto made = ExponentialSums::create(r.front(), h, r.size(), grid->q_first_inv_angstrom,
                                            grid->dq_inv_angstrom, grid->n);
        if (!made) {
            return tl::unexpected(made.error());
        }
        sums = std::make_shared<const ExponentialSums>(std::move(*made));
    }
    TransformNoise noise;
    noise.r_ = r;
    noise.q_ = s0.q_inv_angstrom;
    noise.spectral_s0_ = spectral_weights(s0, options, 1);
    noise.spectral_s2_ = spectral_weights(s2, options, 0);
    noise.regressor_ = std::move(*cxx);
    noise.g2_ = std::move(*cyy);
    noise.sums_ = std::move(sums);
    return noise;
}

// sum_i a_i K(r_i, Q_k) with K = Q cos(Q r) - sin(Q r) / r: Q Re Z[a] - Im Z[a / r], where
// Z[a]_k = sum_i a_i exp(i Q_k r_i).
double TransformNoise::regressor_variance(std::span<const double> a) const {
    std::vector<double> over_r(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        over_r[i] = a[i] / r_[i];
    }
    const auto z = sums_->evaluate(a);
    const auto z1 = sums_->evaluate(over_r);
    double variance = 0.0;
    for (std::size_t k = 0; k < q_.size(); ++k) {
        const double projected = q_[k] * z[k].real() - z1[k].imag();
        variance += spectral_s0_[k] * projected * projected;
    }
    return variance;
}

// K = Q^2 j2(Q r) = (3 / (Q r^3) - Q / r) sin(Q r) - 3 cos(Q r) / r^2 (SPEC 6):
// (3 / Q) Im Z[a / r^3] - Q Im Z[a / r] - 3 Re Z[a / r^2].
double TransformNoise::g2_variance(std::span<const double> a) const {
    std::vector<double> a1(a.size());
    std::vector<double> a2(a.size());
    std::vector<double> a3(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double inv_r = 1.0 / r_[i];
        a1[i] = a[i] * inv_r;
        a2[i] = a1[i] * inv_r;
        a3[i] = a2[i] * inv_r;
    }
    const auto z1 = sums_->evaluate(a1);
    const auto z2 = sums_->evaluate(a2);
    const auto z3 = sums_->evaluate(a3);
    double variance = 0.0;
    for (std::size_t k = 0; k < q_.size(); ++k) {
        const double projected =
            3.0 / q_[k] * z3[k].imag() - q_[k] * z1[k].imag() - 3.0 * z2[k].real();
        variance += spectral_s2_[k] * projected * projected;
    }
    return variance;
}

}  // namespace anisoflow::physics
