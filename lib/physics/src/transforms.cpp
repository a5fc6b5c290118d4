#include "anisoflow/physics/transforms.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <complex>
#include <cstddef>
#include <limits>
#include <memory>
#include <mutex>
#include <numbers>
#include <span>
#include <utility>
#include <vector>

#include <fftw3.h>

#include "anisoflow/physics/fftw_planner.hpp"

namespace anisoflow::physics {
namespace {

using Complex = std::complex<double>;
constexpr double kPi = std::numbers::pi;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Below this x, j2 comes from its power series: at x = 1 the closed form cancels by a factor of
// ~40 (relative error ~1e-14); the series needs ~10 terms there for 1e-17.
constexpr double kJ2SeriesBelow = 1.0;

// Fast-path guards (docs/physics-transforms.md, "small-r guard"). kRoundoff bounds the relative
// rounding of one chirp-z sum against the sum of |terms| (FFT of length <= 1e6: ~20 eps, chirps
// computed in long double); a point goes to the direct sum when the rounding bound of its
// combination exceeds kValueGuard times an upper bound of |integral| over all r (values), or
// kVarianceGuard times the point's own fast variance (variances are positive).
constexpr double kRoundoff = 1e-13;
constexpr double kValueGuard = 1e-10;
constexpr double kVarianceGuard = 1e-9;
// max_x |j2(x)| = 0.3072... at x ~ 3.34: bounds |Int Q^2 S2 j2| by 0.31 sum |w Q^2 S2|.
constexpr double kJ2Max = 0.31;
// A Q or r grid counts as uniform when every point is within this fraction of a step of the model.
constexpr double kUniformTolerance = 1e-9;

/// 1/(2 pi^2 rho0), the prefactor of both transforms (SPEC 6).
double prefactor(const TransformOptions& options) {
    return 1.0 / (2.0 * kPi * kPi * options.rho0_per_cubic_angstrom);
}

double sinc(double x) { return x == 0.0 ? 1.0 : std::sin(x) / x; }

Result<void> check_options(const TransformOptions& options) {
    const double rho0 = options.rho0_per_cubic_angstrom;
    if (!std::isfinite(rho0) || rho0 <= 0.0) {
        return fail(ErrorCode::kInvalidArgument,
                    "number density rho0 = {} atoms/A^3 must be finite and positive", rho0);
    }
    return {};
}

Result<void> check_r_grid(std::span<const double> r) {
    if (r.empty()) {
        return fail(ErrorCode::kInvalidArgument, "the r grid is empty");
    }
    for (std::size_t j = 0; j < r.size(); ++j) {
        if (!std::isfinite(r[j]) || r[j] < 0.0) {
            return fail(ErrorCode::kInvalidArgument, "r[{}] = {} A must be finite and >= 0", j,
                        r[j]);
        }
        if (j > 0 && r[j] <= r[j - 1]) {
            return fail(ErrorCode::kInvalidArgument,
                        "the r grid must be strictly ascending (r[{}] = {} A after {} A)", j, r[j],
                        r[j - 1]);
        }
    }
    return {};
}

/// Checks the curve's shape and grid; NaN or infinite values are an error naming the first Q.
Result<void> check_curve(const QCurve& curve, const char* name) {
    const std::size_t n = curve.size();
    if (curve.value.size() != n || curve.variance.size() != n) {
        return fail(ErrorCode::kInvalidArgument, "{}: {} Q points but {} values and {} variances",
                    name, n, curve.value.size(), curve.variance.size());
    }
    if (n < 2) {
        return fail(ErrorCode::kInvalidArgument, "{}: {} Q points, the transform needs >= 2", name,
                    n);
    }
    for (std::size_t k = 0; k < n; ++k) {
        const double q = curve.q_inv_angstrom[k];
        if (!std::isfinite(q) || q < 0.0 || (k > 0 && q <= curve.q_inv_angstrom[k - 1])) {
            return fail(ErrorCode::kInvalidArgument,
                        "{}: Q grid must be finite, >= 0 and strictly ascending (Q[{}] = {} 1/A)",
                        name, k, q);
        }
    }
    for (std::size_t k = 0; k < n; ++k) {
        if (!std::isfinite(curve.value[k])) {
            return fail(ErrorCode::kInvalidArgument,
                        "{} is {} at Q = {} 1/A (bin {}); mask or interpolate it before the "
                        "transform",
                        name, curve.value[k], curve.q_inv_angstrom[k], k);
        }
    }
    return {};
}

bool any_nan(std::span<const double> values) {
    return std::any_of(values.begin(), values.end(), [](double v) { return std::isnan(v); });
}

struct PointSums {
    double integral = 0.0;  ///< sum_k w_k K(Q_k, r) f_k
    double variance = 0.0;  ///< sum_k (w_k K(Q_k, r))^2 var_k
};

/// l = 0 kernel K = Q sin(Qr)/r = Q^2 sinc(Qr), applied to f = S0 - 1.
PointSums direct_point_l0(std::span<const double> q, std::span<const double> w,
                          std::span<const double> s0, std::span<const double> var, double r) {
    PointSums sums;
    for (std::size_t k = 0; k < q.size(); ++k) {
        const double wk = w[k] * q[k] * q[k] * sinc(q[k] * r);
        sums.integral += wk * (s0[k] - 1.0);
        sums.variance += wk * wk * var[k];
    }
    return sums;
}

/// l = 2 kernel K = Q^2 j2(Qr), applied to f = S2.
PointSums direct_point_l2(std::span<const double> q, std::span<const double> w,
                          std::span<const double> s2, std::span<const double> var, double r) {
    PointSums sums;
    for (std::size_t k = 0; k < q.size(); ++k) {
        const double wk = w[k] * q[k] * q[k] * spherical_bessel_j2(q[k] * r);
        sums.integral += wk * s2[k];
        sums.variance += wk * wk * var[k];
    }
    return sums;
}

enum class Order { kL0, kL2 };

/// The SPEC 6 scaling of a point's sums (the 1/r of g0 is inside its kernel):
/// g0 = 1 + c I, g2 = -c I, var = c^2 var.
void store_point(Order order, double c, const PointSums& sums, RCurve& out, std::size_t j) {
    out.value[j] = order == Order::kL0 ? 1.0 + c * sums.integral : -c * sums.integral;
    out.variance[j] = c * c * sums.variance;
}

Result<RCurve> transform_direct(Order order, const QCurve& s, const std::vector<double>& r,
                                const TransformOptions& options) {
    if (auto ok = check_options(options); !ok) {
        return tl::unexpected(ok.error());
    }
    if (auto ok = check_r_grid(r); !ok) {
        return tl::unexpected(ok.error());
    }
    if (auto ok = check_curve(s, order == Order::kL0 ? "S0" : "S2"); !ok) {
        return tl::unexpected(ok.error());
    }
    const std::vector<double> w = quadrature_weights(s.q_inv_angstrom, options.lorch);
    const double c = prefactor(options);
    RCurve out{r, std::vector<double>(r.size()), std::vector<double>(r.size())};
    for (std::size_t j = 0; j < r.size(); ++j) {
        const PointSums sums =
            order == Order::kL0 ? direct_point_l0(s.q_inv_angstrom, w, s.value, s.variance, r[j])
                                : direct_point_l2(s.q_inv_angstrom, w, s.value, s.variance, r[j]);
        store_point(order, c, sums, out, j);
    }
    return out;
}

// ---------------------------------------------------------------- FFTW resources

// Every plan of this module is made and destroyed under the process' one planner mutex.
std::mutex& planner_mutex() { return fftw_planner_mutex(); }

struct FftwFree {
    void operator()(fftw_complex* p) const { fftw_free(p); }
};
using FftwBuffer = std::unique_ptr<fftw_complex[], FftwFree>;

FftwBuffer allocate(std::size_t n) { return FftwBuffer(fftw_alloc_complex(n)); }

Complex* as_complex(fftw_complex* p) {
    // FFTW documents fftw_complex as bit-compatible with std::complex<double>.
    return reinterpret_cast<Complex*>(p);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
}

struct PlanDestroy {
    void operator()(fftw_plan_s* plan) const {
        const std::lock_guard lock(planner_mutex());
        fftw_destroy_plan(plan);
    }
};
using FftwPlan = std::unique_ptr<fftw_plan_s, PlanDestroy>;

/// Smallest 2^a 3^b 5^c 7^d >= n: lengths FFTW handles with its fast codelets.
std::size_t fft_friendly_length(std::size_t n) {
    for (std::size_t m = std::max<std::size_t>(n, 1);; ++m) {
        std::size_t rest = m;
        for (const std::size_t p : {2U, 3U, 5U, 7U}) {
            while (rest % p == 0) {
                rest /= p;
            }
        }
        if (rest == 1) {
            return m;
        }
    }
}

Complex unit_phasor(long double phase) {
    return {static_cast<double>(std::cos(phase)), static_cast<double>(std::sin(phase))};
}

}  // namespace

std::vector<double> quadrature_weights(std::span<const double> q, bool lorch) {
    const std::size_t n = q.size();
    std::vector<double> w(n);
    for (std::size_t k = 0; k < n; ++k) {
        const double left = k > 0 ? q[k] - q[k - 1] : 0.0;
        const double right = k + 1 < n ? q[k + 1] - q[k] : 0.0;
        w[k] = 0.5 * (left + right);
    }
    if (lorch) {
        const double q_max = q[n - 1];
        for (std::size_t k = 0; k < n; ++k) {
            // sin(pi) is 1.2e-16, not 0: the last sample gets M = 0 exactly.
            w[k] *= k + 1 == n ? 0.0 : sinc(kPi * q[k] / q_max);
        }
    }
    return w;
}

// One chirp-z (Bluestein) evaluation of Z_j = sum_k c_k exp(i q_k r_j) for q_k = q0 + k dq and
// r_j = r0 + j dr: with theta = dq dr and kj = (k^2 + j^2 - (j-k)^2)/2,
//   Z_j = post_j sum_k (c_k pre_k) b_{j-k},  pre_k = e^{i(k dq r0 + theta k^2/2)},
//   post_j = e^{i(q0 r_j + theta j^2/2)},     b_m = e^{-i theta m^2/2},
// a linear convolution done as a circular one of length L >= n_q + n_r - 1. The phases are formed
// in long double so they carry no more than ~1e-16 rad of rounding at phases of a few hundred.
struct ChirpKernel {
    std::vector<Complex> pre;
    std::vector<Complex> post;
    FftwBuffer kernel_hat;  ///< FFT(b) / L
};

struct FastTransform::Chirp {
    std::size_t n_q = 0;
    std::size_t n_r = 0;
    std::size_t length = 0;
    FftwPlan forward;
    FftwPlan backward;
    ChirpKernel base;     ///< frequencies Q_k (values)
    ChirpKernel doubled;  ///< frequencies 2 Q_k (variances: sin^2 x = (1 - cos 2x)/2)

    ChirpKernel make_kernel(long double q0, long double dq, long double r0, long double dr) const {
        ChirpKernel kernel;
        const long double theta = dq * dr;
        kernel.pre.resize(n_q);
        for (std::size_t k = 0; k < n_q; ++k) {
            const auto kl = static_cast<long double>(k);
            kernel.pre[k] = unit_phasor(kl * dq * r0 + 0.5L * theta * kl * kl);
        }
        kernel.post.resize(n_r);
        for (std::size_t j = 0; j < n_r; ++j) {
            const auto jl = static_cast<long double>(j);
            kernel.post[j] = unit_phasor(q0 * (r0 + jl * dr) + 0.5L * theta * jl * jl);
        }
        kernel.kernel_hat = allocate(length);
        Complex* b = as_complex(kernel.kernel_hat.get());
        std::fill(b, b + length, Complex{});
        const double inv_length = 1.0 / static_cast<double>(length);
        for (std::size_t m = 0; m < n_r; ++m) {
            const auto ml = static_cast<long double>(m);
            b[m] = unit_phasor(-0.5L * theta * ml * ml) * inv_length;
        }
        for (std::size_t m = 1; m < n_q; ++m) {
            const auto ml = static_cast<long double>(m);
            b[length - m] = unit_phasor(-0.5L * theta * ml * ml) * inv_length;
        }
        fftw_execute_dft(forward.get(), kernel.kernel_hat.get(), kernel.kernel_hat.get());
        return kernel;
    }

    /// FFT plans for n_in inputs and n_out outputs (kernels are made by make_kernel).
    static Result<std::unique_ptr<Chirp>> plan(std::size_t n_in, std::size_t n_out) {
        auto chirp = std::make_unique<Chirp>();
        chirp->n_q = n_in;
        chirp->n_r = n_out;
        chirp->length = fft_friendly_length(n_in + n_out - 1);
        {
            const FftwBuffer scratch = allocate(chirp->length);
            const int length = static_cast<int>(chirp->length);
            const std::lock_guard lock(planner_mutex());
            chirp->forward.reset(fftw_plan_dft_1d(length, scratch.get(), scratch.get(),
                                                  FFTW_FORWARD, FFTW_ESTIMATE));
            chirp->backward.reset(fftw_plan_dft_1d(length, scratch.get(), scratch.get(),
                                                   FFTW_BACKWARD, FFTW_ESTIMATE));
        }
        if (!chirp->forward || !chirp->backward) {
            return fail(ErrorCode::kUnsupported, "FFTW could not plan a transform of length {}",
                        chirp->length);
        }
        return chirp;
    }

    /// out[j] = sum_k c[k] exp(i q_k r_j); work is an fftw-allocated buffer of `length`.
    void apply(const ChirpKernel& kernel, std::span<const double> c, fftw_complex* work,
               std::vector<Complex>& out) const {
        Complex* a = as_complex(work);
        for (std::size_t k = 0; k < n_q; ++k) {
            a[k] = c[k] * kernel.pre[k];
        }
        std::fill(a + n_q, a + length, Complex{});
        fftw_execute_dft(forward.get(), work, work);
        const Complex* b = as_complex(kernel.kernel_hat.get());
        for (std::size_t m = 0; m < length; ++m) {
            a[m] *= b[m];
        }
        fftw_execute_dft(backward.get(), work, work);
        out.resize(n_r);
        for (std::size_t j = 0; j < n_r; ++j) {
            out[j] = a[j] * kernel.post[j];
        }
    }
};

double spherical_bessel_j2(double x) {
    const double ax = std::abs(x);  // j2 is even
    if (ax < kJ2SeriesBelow) {
        // j2(x) = x^2 sum_n (-x^2/2)^n / (n! (2n+5)!!) = x^2/15 - x^4/210 + x^6/7560 - ...
        const double x2 = ax * ax;
        double term = 1.0 / 15.0;
        double sum = term;
        for (int n = 0; n < 12; ++n) {
            term *= -0.5 * x2 / ((n + 1.0) * (2.0 * n + 7.0));
            sum += term;
            if (std::abs(term) < 1e-18 * std::abs(sum)) {
                break;
            }
        }
        return x2 * sum;
    }
    const double s = std::sin(ax);
    const double c = std::cos(ax);
    return (3.0 / (ax * ax * ax) - 1.0 / ax) * s - 3.0 * c / (ax * ax);
}

std::vector<double> uniform_r_grid(double r_max_angstrom, std::size_t n) {
    std::vector<double> r(n);
    for (std::size_t k = 0; k < n; ++k) {
        r[k] = static_cast<double>(k + 1) * r_max_angstrom / static_cast<double>(n);
    }
    return r;
}

Result<RCurve> transform_l0_direct(const QCurve& s0, const std::vector<double>& r,
                                   const TransformOptions& options) {
    return transform_direct(Order::kL0, s0, r, options);
}

Result<RCurve> transform_l2_direct(const QCurve& s2, const std::vector<double>& r,
                                   const TransformOptions& options) {
    return transform_direct(Order::kL2, s2, r, options);
}

Result<RCurve> reduced_pair_distribution(const RCurve& g0, double rho0_per_cubic_angstrom) {
    if (auto ok = check_options({rho0_per_cubic_angstrom, false}); !ok) {
        return tl::unexpected(ok.error());
    }
    const std::size_t n = g0.size();
    if (g0.value.size() != n || g0.variance.size() != n) {
        return fail(ErrorCode::kInvalidArgument, "g0: {} r points but {} values and {} variances",
                    n, g0.value.size(), g0.variance.size());
    }
    RCurve out{g0.r_angstrom, std::vector<double>(n), std::vector<double>(n)};
    for (std::size_t j = 0; j < n; ++j) {
        const double scale = 4.0 * kPi * rho0_per_cubic_angstrom * g0.r_angstrom[j];
        out.value[j] = scale * (g0.value[j] - 1.0);
        out.variance[j] = scale * scale * g0.variance[j];
    }
    return out;
}

Result<UniformQGrid> uniform_q_grid_of(const std::vector<double>& q_inv_angstrom) {
    const std::size_t n = q_inv_angstrom.size();
    if (n < 2) {
        return fail(ErrorCode::kInvalidArgument, "a uniform Q grid needs >= 2 points, got {}", n);
    }
    const UniformQGrid grid{
        q_inv_angstrom.front(),
        (q_inv_angstrom.back() - q_inv_angstrom.front()) / static_cast<double>(n - 1), n};
    if (!(grid.dq_inv_angstrom > 0.0)) {
        return fail(ErrorCode::kInvalidArgument, "the Q grid is not ascending");
    }
    for (std::size_t k = 0; k < n; ++k) {
        const double model =
            grid.q_first_inv_angstrom + static_cast<double>(k) * grid.dq_inv_angstrom;
        if (!(std::abs(q_inv_angstrom[k] - model) <= kUniformTolerance * grid.dq_inv_angstrom)) {
            return fail(ErrorCode::kInvalidArgument,
                        "the Q grid is not uniform: Q[{}] = {} 1/A, uniform model {} 1/A", k,
                        q_inv_angstrom[k], model);
        }
    }
    return grid;
}

FastTransform::FastTransform(FastTransform&&) noexcept = default;
FastTransform& FastTransform::operator=(FastTransform&&) noexcept = default;
FastTransform::~FastTransform() = default;

std::size_t FastTransform::fft_length() const { return chirp_ ? chirp_->length : 0; }

Result<FastTransform> FastTransform::create(const UniformQGrid& q, std::vector<double> r_angstrom,
                                            const TransformOptions& options) {
    if (auto ok = check_options(options); !ok) {
        return tl::unexpected(ok.error());
    }
    if (auto ok = check_r_grid(r_angstrom); !ok) {
        return tl::unexpected(ok.error());
    }
    if (q.n < 2 || !(q.dq_inv_angstrom > 0.0) || !(q.q_first_inv_angstrom > 0.0) ||
        !std::isfinite(q.dq_inv_angstrom) || !std::isfinite(q.q_first_inv_angstrom)) {
        return fail(ErrorCode::kInvalidArgument,
                    "fast transform needs >= 2 Q points, dq > 0 and q_first > 0 (got n = {}, dq "
                    "= {} 1/A, q_first = {} 1/A)",
                    q.n, q.dq_inv_angstrom, q.q_first_inv_angstrom);
    }
    FastTransform t;
    t.grid_ = q;
    t.options_ = options;
    t.r_ = std::move(r_angstrom);
    t.q_.resize(q.n);
    for (std::size_t k = 0; k < q.n; ++k) {
        t.q_[k] = q.q_first_inv_angstrom + static_cast<double>(k) * q.dq_inv_angstrom;
    }
    t.weight_ = quadrature_weights(t.q_, options.lorch);

    // A uniform r grid (any spacing, any start) takes the chirp-z path; otherwise direct sums.
    const std::size_t n_r = t.r_.size();
    bool uniform = n_r >= 2;
    const double r0 = t.r_.front();
    const double dr = uniform ? (t.r_.back() - r0) / static_cast<double>(n_r - 1) : 0.0;
    for (std::size_t j = 0; uniform && j < n_r; ++j) {
        uniform = std::abs(t.r_[j] - (r0 + static_cast<double>(j) * dr)) <= kUniformTolerance * dr;
    }
    if (!uniform) {
        return t;
    }

    auto planned = Chirp::plan(q.n, n_r);
    if (!planned) {
        return tl::unexpected(planned.error());
    }
    std::unique_ptr<Chirp> chirp = std::move(*planned);
    const auto q0 = static_cast<long double>(q.q_first_inv_angstrom);
    const auto dq = static_cast<long double>(q.dq_inv_angstrom);
    const auto r0l = static_cast<long double>(r0);
    const auto drl = static_cast<long double>(dr);
    chirp->base = chirp->make_kernel(q0, dq, r0l, drl);
    chirp->doubled = chirp->make_kernel(2.0L * q0, 2.0L * dq, r0l, drl);
    t.chirp_ = std::move(chirp);
    return t;
}

namespace {

Result<void> check_fast_curve(const QCurve& curve, const std::vector<double>& model, double dq,
                              const char* name) {
    if (auto ok = check_curve(curve, name); !ok) {
        return ok;
    }
    if (curve.size() != model.size()) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: {} Q points, the fast transform was built for {}", name, curve.size(),
                    model.size());
    }
    for (std::size_t k = 0; k < model.size(); ++k) {
        if (!(std::abs(curve.q_inv_angstrom[k] - model[k]) <= kUniformTolerance * dq)) {
            return fail(ErrorCode::kInvalidArgument,
                        "{}: Q[{}] = {} 1/A is not the fast transform's grid point {} 1/A", name, k,
                        curve.q_inv_angstrom[k], model[k]);
        }
    }
    return {};
}

double abs_sum(std::span<const double> values) {
    double sum = 0.0;
    for (const double v : values) {
        sum += std::abs(v);
    }
    return sum;
}

}  // namespace

Result<RCurve> FastTransform::transform_l0(const QCurve& s0) const {
    if (auto ok = check_fast_curve(s0, q_, grid_.dq_inv_angstrom, "S0"); !ok) {
        return tl::unexpected(ok.error());
    }
    const double c = prefactor(options_);
    const std::size_t n_r = r_.size();
    RCurve out{r_, std::vector<double>(n_r), std::vector<double>(n_r)};
    if (!chirp_) {
        for (std::size_t j = 0; j < n_r; ++j) {
            store_point(Order::kL0, c, direct_point_l0(q_, weight_, s0.value, s0.variance, r_[j]),
                        out, j);
        }
        return out;
    }
    const std::size_t n_q = q_.size();
    const FftwBuffer work = allocate(chirp_->length);
    std::vector<Complex> z;

    // Values: Int Q (S0 - 1) sin(Qr) dQ / r = Im Z / r, Z = sum_k w_k Q_k (S0_k - 1) e^{i Q_k r}.
    std::vector<double> coef(n_q);
    std::vector<double> coef_q(n_q);
    for (std::size_t k = 0; k < n_q; ++k) {
        coef[k] = weight_[k] * q_[k] * (s0.value[k] - 1.0);
        coef_q[k] = coef[k] * q_[k];
    }
    chirp_->apply(chirp_->base, coef, work.get(), z);
    // |Int| <= sum |w Q^2 (S0 - 1)| for every r (|sin x / x| <= 1); rounding of Im Z / r is
    // kRoundoff sum |coef| / r.
    const double bound = abs_sum(coef_q);
    const double coef_abs = abs_sum(coef);
    std::vector<bool> direct(n_r);
    for (std::size_t j = 0; j < n_r; ++j) {
        const double r = r_[j];
        direct[j] = r <= 0.0 || kRoundoff * coef_abs / r > kValueGuard * bound;
        if (!direct[j]) {
            out.value[j] = 1.0 + c * z[j].imag() / r;
        }
    }

    // Variances: sum_k (w_k Q_k sin(Q_k r)/r)^2 v_k = (sum b - Re sum b e^{2 i Q r}) / (2 r^2).
    const bool nan_variance = any_nan(s0.variance);
    std::vector<double> b(n_q);
    for (std::size_t k = 0; k < n_q; ++k) {
        const double wq = weight_[k] * q_[k];
        b[k] = nan_variance ? 0.0 : wq * wq * s0.variance[k];
    }
    const double b_sum = abs_sum(b);
    if (!nan_variance) {
        chirp_->apply(chirp_->doubled, b, work.get(), z);
    }
    for (std::size_t j = 0; j < n_r; ++j) {
        const double r = r_[j];
        if (nan_variance) {
            out.variance[j] = kNaN;
        } else if (!direct[j]) {
            const double var = c * c * 0.5 * (b_sum - z[j].real()) / (r * r);
            const double error = c * c * kRoundoff * b_sum / (r * r);
            if (error <= kVarianceGuard * std::abs(var)) {
                out.variance[j] = var;
            } else {
                out.variance[j] =
                    c * c * direct_point_l0(q_, weight_, s0.value, s0.variance, r).variance;
            }
        }
        if (direct[j]) {
            store_point(Order::kL0, c, direct_point_l0(q_, weight_, s0.value, s0.variance, r), out,
                        j);
            if (nan_variance) {
                out.variance[j] = kNaN;
            }
        }
    }
    return out;
}

Result<RCurve> FastTransform::transform_l2(const QCurve& s2) const {
    if (auto ok = check_fast_curve(s2, q_, grid_.dq_inv_angstrom, "S2"); !ok) {
        return tl::unexpected(ok.error());
    }
    const double c = prefactor(options_);
    const std::size_t n_r = r_.size();
    RCurve out{r_, std::vector<double>(n_r), std::vector<double>(n_r)};
    if (!chirp_) {
        for (std::size_t j = 0; j < n_r; ++j) {
            store_point(Order::kL2, c, direct_point_l2(q_, weight_, s2.value, s2.variance, r_[j]),
                        out, j);
        }
        return out;
    }
    const std::size_t n_q = q_.size();
    const FftwBuffer work = allocate(chirp_->length);

    // Q^2 j2(Qr) = (3/(Q r^3) - Q/r) sin(Qr) - (3/r^2) cos(Qr) (SPEC 6), so
    //   Int Q^2 S2 j2 dQ = 3/r^3 A - B/r - 3/r^2 C,
    //   A = sum w S2/Q sin, B = sum w Q S2 sin, C = sum w S2 cos.
    std::vector<double> ca(n_q);
    std::vector<double> cb(n_q);
    std::vector<double> cc(n_q);
    std::vector<double> cq2(n_q);
    for (std::size_t k = 0; k < n_q; ++k) {
        cc[k] = weight_[k] * s2.value[k];
        ca[k] = cc[k] / q_[k];
        cb[k] = cc[k] * q_[k];
        cq2[k] = cb[k] * q_[k];
    }
    std::vector<Complex> za;
    std::vector<Complex> zb;
    std::vector<Complex> zc;
    chirp_->apply(chirp_->base, ca, work.get(), za);
    chirp_->apply(chirp_->base, cb, work.get(), zb);
    chirp_->apply(chirp_->base, cc, work.get(), zc);
    const double bound = kJ2Max * abs_sum(cq2);
    const double a_abs = abs_sum(ca);
    const double b_abs = abs_sum(cb);
    const double c_abs = abs_sum(cc);
    std::vector<bool> direct(n_r);
    for (std::size_t j = 0; j < n_r; ++j) {
        const double r = r_[j];
        if (r <= 0.0) {
            direct[j] = true;
            continue;
        }
        const double r2 = r * r;
        const double r3 = r2 * r;
        const double error = kRoundoff * (3.0 * a_abs / r3 + b_abs / r + 3.0 * c_abs / r2);
        direct[j] = error > kValueGuard * bound;
        if (!direct[j]) {
            const double integral =
                3.0 * za[j].imag() / r3 - zb[j].imag() / r - 3.0 * zc[j].real() / r2;
            out.value[j] = -c * integral;
        }
    }

    // Variances: with v = w^2 var, alpha = 3/(Q r^3) - Q/r, beta = 3/r^2,
    //   K^2 = alpha^2 (1 - cos 2Qr)/2 + beta^2 (1 + cos 2Qr)/2 - alpha beta sin 2Qr,
    //   alpha^2 = 9/(Q^2 r^6) - 6/r^4 + Q^2/r^2, alpha beta = 9/(Q r^5) - 3Q/r^3.
    const bool nan_variance = any_nan(s2.variance);
    if (!nan_variance) {
        std::vector<double> vm2(n_q);
        std::vector<double> vm1(n_q);
        std::vector<double> v0(n_q);
        std::vector<double> v1(n_q);
        std::vector<double> v2(n_q);
        for (std::size_t k = 0; k < n_q; ++k) {
            const double q = q_[k];
            v0[k] = weight_[k] * weight_[k] * s2.variance[k];
            vm1[k] = v0[k] / q;
            vm2[k] = vm1[k] / q;
            v1[k] = v0[k] * q;
            v2[k] = v1[k] * q;
        }
        const double pm2 = abs_sum(vm2);
        const double pm1 = abs_sum(vm1);
        const double p0 = abs_sum(v0);
        const double p1 = abs_sum(v1);
        const double p2 = abs_sum(v2);
        std::vector<Complex> zm2;
        std::vector<Complex> z0;
        std::vector<Complex> z2;
        std::vector<Complex> zm1;
        std::vector<Complex> z1;
        chirp_->apply(chirp_->doubled, vm2, work.get(), zm2);
        chirp_->apply(chirp_->doubled, v0, work.get(), z0);
        chirp_->apply(chirp_->doubled, v2, work.get(), z2);
        chirp_->apply(chirp_->doubled, vm1, work.get(), zm1);
        chirp_->apply(chirp_->doubled, v1, work.get(), z1);
        for (std::size_t j = 0; j < n_r; ++j) {
            const double r = r_[j];
            if (direct[j]) {
                continue;
            }
            const double r2 = r * r;
            const double r3 = r2 * r;
            const double r4 = r2 * r2;
            const double r5 = r4 * r;
            const double r6 = r3 * r3;
            const double sin_part =
                0.5 * (9.0 / r6 * (pm2 - zm2[j].real()) - 6.0 / r4 * (p0 - z0[j].real()) +
                       (p2 - z2[j].real()) / r2);
            const double cos_part = 4.5 / r4 * (p0 + z0[j].real());
            const double cross = 9.0 / r5 * zm1[j].imag() - 3.0 / r3 * z1[j].imag();
            const double var = c * c * (sin_part + cos_part - cross);
            const double error =
                c * c * kRoundoff *
                (9.0 / r6 * pm2 + 15.0 / r4 * p0 + p2 / r2 + 9.0 / r5 * pm1 + 3.0 / r3 * p1);
            out.variance[j] =
                error <= kVarianceGuard * std::abs(var)
                    ? var
                    : c * c * direct_point_l2(q_, weight_, s2.value, s2.variance, r).variance;
        }
    }
    for (std::size_t j = 0; j < n_r; ++j) {
        if (direct[j]) {
            store_point(Order::kL2, c, direct_point_l2(q_, weight_, s2.value, s2.variance, r_[j]),
                        out, j);
        }
        if (nan_variance) {
            out.variance[j] = kNaN;
        }
    }
    return out;
}

ExponentialSums::ExponentialSums(ExponentialSums&&) noexcept = default;
ExponentialSums& ExponentialSums::operator=(ExponentialSums&&) noexcept = default;
ExponentialSums::~ExponentialSums() = default;

Result<ExponentialSums> ExponentialSums::create(double x0, double dx, std::size_t n_in, double y0,
                                                double dy, std::size_t n_out) {
    if (n_in < 1 || n_out < 1 || !(dx > 0.0) || !(dy > 0.0) || !std::isfinite(dx) ||
        !std::isfinite(dy) || !std::isfinite(x0) || !std::isfinite(y0)) {
        return fail(ErrorCode::kInvalidArgument,
                    "exponential sums need grids of >= 1 point with positive finite steps (got "
                    "{} points, step {}; {} points, step {})",
                    n_in, dx, n_out, dy);
    }
    auto planned = FastTransform::Chirp::plan(n_in, n_out);
    if (!planned) {
        return tl::unexpected(planned.error());
    }
    std::unique_ptr<FastTransform::Chirp> chirp = std::move(*planned);
    chirp->base = chirp->make_kernel(x0, dx, y0, dy);
    ExponentialSums sums;
    sums.chirp_ = std::move(chirp);
    return sums;
}

std::size_t ExponentialSums::input_size() const { return chirp_->n_q; }
std::size_t ExponentialSums::output_size() const { return chirp_->n_r; }

std::vector<std::complex<double>> ExponentialSums::evaluate(std::span<const double> a) const {
    assert(a.size() == chirp_->n_q && "one value per input grid point");
    const FftwBuffer work = allocate(chirp_->length);
    std::vector<Complex> out;
    chirp_->apply(chirp_->base, a, work.get(), out);
    return out;
}

std::mutex& fftw_planner_mutex() {
    static std::mutex mutex;
    return mutex;
}

}  // namespace anisoflow::physics
