#include "anisoflow/physics/anisotropy_analysis.hpp"

#include <cmath>
#include <mutex>
#include <numbers>
#include <string>
#include <vector>

#include "anisoflow/physics/transform_covariance.hpp"
#include "anisoflow/physics/transforms.hpp"

namespace anisoflow::physics {

namespace {

// The 99 % quantile of chi^2 with k degrees of freedom (Wilson-Hilferty: accurate to a few
// tenths of a percent for k >= 10, which any S2 curve exceeds).
double chi2_quantile_99(std::size_t k) {
    const double n = static_cast<double>(k);
    constexpr double kZ99 = 2.3263478740408408;  // standard normal 99 % quantile
    const double a = 2.0 / (9.0 * n);
    const double root = 1.0 - a + kZ99 * std::sqrt(a);
    return n * root * root * root;
}

// The curves the transforms take: the valid span of S (NaN bins at the ends trimmed), with
// interior gaps interpolated linearly in value and variance.
struct TrimmedCurves {
    QCurve s0;
    QCurve s2;
    std::size_t interpolated = 0;
};

Result<TrimmedCurves> trim_and_fill(const StructureFunctions& structure) {
    const QCurve& s0 = structure.s0;
    const QCurve& s2 = structure.s2;
    const auto valid = [&](std::size_t k) {
        return std::isfinite(s0.value[k]) && std::isfinite(s2.value[k]) &&
               std::isfinite(s0.variance[k]) && std::isfinite(s2.variance[k]);
    };
    std::size_t first = 0;
    while (first < s0.size() && !valid(first)) {
        ++first;
    }
    std::size_t last = s0.size();
    while (last > first && !valid(last - 1)) {
        --last;
    }
    if (last - first < 16) {
        return fail(ErrorCode::kInvalidArgument,
                    "only {} Q bins hold S0 and S2: too few for the transforms (check the Q "
                    "range against the detector's coverage)",
                    last - first);
    }
    TrimmedCurves out;
    const auto slice = [&](const QCurve& c) {
        QCurve t;
        t.q_inv_angstrom.assign(c.q_inv_angstrom.begin() + static_cast<std::ptrdiff_t>(first),
                                c.q_inv_angstrom.begin() + static_cast<std::ptrdiff_t>(last));
        t.value.assign(c.value.begin() + static_cast<std::ptrdiff_t>(first),
                       c.value.begin() + static_cast<std::ptrdiff_t>(last));
        t.variance.assign(c.variance.begin() + static_cast<std::ptrdiff_t>(first),
                          c.variance.begin() + static_cast<std::ptrdiff_t>(last));
        return t;
    };
    out.s0 = slice(s0);
    out.s2 = slice(s2);
    for (std::size_t k = 1; k + 1 < out.s0.size(); ++k) {
        if (valid(first + k)) {
            continue;
        }
        std::size_t next = k + 1;
        while (!valid(first + next)) {
            ++next;  // terminates: the last sample is valid
        }
        for (QCurve* c : {&out.s0, &out.s2}) {
            const double t = 1.0 / static_cast<double>(next - k + 1);
            c->value[k] = c->value[k - 1] + t * (c->value[next] - c->value[k - 1]);
            c->variance[k] = c->variance[k - 1] + t * (c->variance[next] - c->variance[k - 1]);
        }
        ++out.interpolated;
    }
    return out;
}

}  // namespace

// Variance of dg0/dr on the r grid, propagated exactly from S0's (independent) Q-bin variances:
// g0 - 1 = 1/(2 pi^2 rho0 r) sum_k w_k Q_k (S0_k - 1) sin(Q_k r) (trapezoid weights w_k, times
// the Lorch window when on), so dg0/dr = c sum_k w_k Q_k (S0_k - 1) (Q_k r cos - sin)(Q_k r)/r^2.
// The transform's g0 is band-limited and its noise correlated over ~pi/q_max, far more than the
// r step: the derivative of the independent-sample propagation overestimates this ~10-fold.
std::vector<double> g0_derivative_variance(const QCurve& s0, const std::vector<double>& r,
                                           double density, bool lorch) {
    const std::vector<double>& q = s0.q_inv_angstrom;
    const std::size_t n = q.size();
    std::vector<double> b(n, 0.0);  // (w_k Q_k)^2 var S0_k
    const double q_max = q.back();
    for (std::size_t k = 0; k < n; ++k) {
        const double left = k > 0 ? q[k] - q[k - 1] : 0.0;
        const double right = k + 1 < n ? q[k + 1] - q[k] : 0.0;
        double w = 0.5 * (left + right);
        if (lorch) {
            const double x = std::numbers::pi * q[k] / q_max;
            w *= k + 1 == n ? 0.0 : std::sin(x) / x;
        }
        const double wq = w * q[k];
        b[k] = wq * wq * s0.variance[k];
    }
    const double c = 1.0 / (2.0 * std::numbers::pi * std::numbers::pi * density);
    // (x cos x - sin x) / r^2 at x = Q r, with its small-x limit -x^3 / 3 / r^2 = -Q^3 r / 3.
    const auto kernel = [](double q_k, double r_j, double x, double cos_x, double sin_x) {
        return x < 1e-3 ? -q_k * q_k * q_k * r_j / 3.0 : (x * cos_x - sin_x) / (r_j * r_j);
    };
    // On a uniform Q grid, cos(Q r) and sin(Q r) follow from the previous sample by one rotation
    // (re-seeded exactly every kReseed steps, so rounding cannot drift): the sum then costs a
    // few multiplies per term instead of two trig calls, which dominated the whole analysis.
    constexpr std::size_t kReseed = 64;
    const auto grid = uniform_q_grid_of(q);
    std::vector<double> out(r.size(), 0.0);
    for (std::size_t j = 0; j < r.size(); ++j) {
        const double rj = r[j];
        double sum = 0.0;
        if (grid) {
            const double step_cos = std::cos(grid->dq_inv_angstrom * rj);
            const double step_sin = std::sin(grid->dq_inv_angstrom * rj);
            double cos_x = 0.0;
            double sin_x = 0.0;
            for (std::size_t k = 0; k < n; ++k) {
                const double x = q[k] * rj;
                if (k % kReseed == 0) {
                    cos_x = std::cos(x);
                    sin_x = std::sin(x);
                } else {
                    const double next_cos = cos_x * step_cos - sin_x * step_sin;
                    sin_x = sin_x * step_cos + cos_x * step_sin;
                    cos_x = next_cos;
                }
                const double value = kernel(q[k], rj, x, cos_x, sin_x);
                sum += b[k] * value * value;
            }
        } else {
            for (std::size_t k = 0; k < n; ++k) {
                const double x = q[k] * rj;
                const double value = kernel(q[k], rj, x, std::cos(x), std::sin(x));
                sum += b[k] * value * value;
            }
        }
        out[j] = c * c * sum;
    }
    return out;
}

std::string_view to_string(ExtractionMode mode) {
    return mode == ExtractionMode::kPn ? "pn" : "single";
}

Result<ExtractionMode> parse_extraction_mode(std::string_view name) {
    if (name == "pn") {
        return ExtractionMode::kPn;
    }
    if (name == "single") {
        return ExtractionMode::kSingle;
    }
    return fail(ErrorCode::kInvalidArgument, "mode '{}' is not one of: pn, single", name);
}

Result<void> AnalysisSettings::validate() const {
    std::string problems;
    const auto add = [&problems](const std::string& problem) {
        problems += (problems.empty() ? "" : "; ") + problem;
    };
    if (!(density_per_cubic_angstrom > 0.0) || !std::isfinite(density_per_cubic_angstrom)) {
        add(fmt::format("density {} atoms/A^3 is not positive", density_per_cubic_angstrom));
    }
    if (!(nu > -1.0 && nu < 0.5)) {
        add(fmt::format("nu {} is outside (-1, 0.5)", nu));
    }
    if (!(wavelength_angstrom > 0.0)) {
        add(fmt::format("wavelength {} A is not positive", wavelength_angstrom));
    }
    if (!(r_max_angstrom > 0.0) || n_r < 16) {
        add(fmt::format("r grid (r_max {} A, {} points) is too small", r_max_angstrom, n_r));
    }
    if (!(r_fit_min_angstrom > 0.0 && r_fit_min_angstrom < r_fit_max_angstrom &&
          r_fit_max_angstrom <= r_max_angstrom)) {
        add(fmt::format("fit range [{}, {}] A is not inside (0, r_max = {}]", r_fit_min_angstrom,
                        r_fit_max_angstrom, r_max_angstrom));
    }
    if (composition.empty()) {
        add("composition is empty");
    }
    if (!problems.empty()) {
        return fail(ErrorCode::kInvalidArgument, "{}", problems);
    }
    return {};
}

// Transform plans for the last Q grid seen; cakes of one run keep their grid, so this is built
// once per run (creating FFTW plans costs more than using them).
struct AnisotropyAnalyzer::Plans {
    std::mutex mutex;
    std::optional<UniformQGrid> grid;
    std::unique_ptr<FastTransform> transform;
    std::shared_ptr<const ExponentialSums> noise_sums;  ///< r grid -> Q grid, for the errors
};

AnisotropyAnalyzer::AnisotropyAnalyzer() = default;
AnisotropyAnalyzer::AnisotropyAnalyzer(AnisotropyAnalyzer&&) noexcept = default;
AnisotropyAnalyzer& AnisotropyAnalyzer::operator=(AnisotropyAnalyzer&&) noexcept = default;
AnisotropyAnalyzer::~AnisotropyAnalyzer() = default;

Result<AnisotropyAnalyzer> AnisotropyAnalyzer::create(const AnalysisSettings& settings) {
    if (auto valid = settings.validate(); !valid) {
        return tl::unexpected(valid.error());
    }
    auto factors = ScatteringFactors::from_formula(settings.composition);
    if (!factors) {
        return tl::unexpected(factors.error().with_context("composition"));
    }
    AnisotropyAnalyzer analyzer;
    analyzer.settings_ = settings;
    analyzer.factors_ = std::make_unique<ScatteringFactors>(std::move(*factors));
    analyzer.plans_ = std::make_unique<Plans>();
    return analyzer;
}

Result<AnisotropyResult> AnisotropyAnalyzer::analyse(const reduce::Cake& p,
                                                     const reduce::Cake* n) const {
    const AnalysisSettings& s = settings_;
    HarmonicsOptions harmonics_options;
    harmonics_options.loading_axis_chi_deg = s.loading_axis_chi_deg;
    harmonics_options.wavelength_angstrom = s.wavelength_angstrom;
    AnisotropyResult result;
    if (s.mode == ExtractionMode::kPn) {
        if (n == nullptr) {
            return fail(ErrorCode::kInvalidArgument, "pn mode needs an N cake besides the P cake");
        }
        auto harmonics = extract_pn(p, *n, harmonics_options);
        if (!harmonics) {
            return tl::unexpected(harmonics.error());
        }
        result.harmonics = std::move(*harmonics);
    } else {
        auto harmonics = extract_single(p, harmonics_options);
        if (!harmonics) {
            return tl::unexpected(harmonics.error());
        }
        result.harmonics = std::move(*harmonics);
    }

    // SPEC 5: normalise on [q_norm_min, q_max], q_norm_min = 0.65 q_max by default.
    const double q_max = p.axes.q_max_inv_angstrom;
    const double q_norm_min = s.q_norm_min_inv_angstrom.value_or(kDefaultQNormMinFraction * q_max);
    Result<StructureFunctions> structure =
        s.normalisation == Normalisation::kAdhoc
            ? normalise_adhoc(
                  result.harmonics, *factors_,
                  AdhocOptions{s.r_poly_angstrom, std::nullopt, std::nullopt, q_norm_min})
            : normalise_high_q(result.harmonics, *factors_, q_norm_min);
    if (!structure) {
        return tl::unexpected(structure.error());
    }
    result.structure = std::move(*structure);

    // Isotropy test (SPEC 7): S2 against zero with its propagated variances, at 99 %.
    for (std::size_t k = 0; k < result.structure.s2.size(); ++k) {
        const double value = result.structure.s2.value[k];
        const double variance = result.structure.s2.variance[k];
        if (std::isfinite(value) && variance > 0.0 && std::isfinite(variance)) {
            result.s2_chi2 += value * value / variance;
            ++result.s2_dof;
        }
    }
    result.s2_consistent_with_zero =
        result.s2_dof > 0 && result.s2_chi2 <= chi2_quantile_99(result.s2_dof);

    auto curves = trim_and_fill(result.structure);
    if (!curves) {
        return tl::unexpected(curves.error());
    }
    result.interpolated_q_bins = curves->interpolated;
    auto grid = uniform_q_grid_of(curves->s0.q_inv_angstrom);
    if (!grid) {
        return tl::unexpected(grid.error());
    }
    {
        const std::lock_guard lock(plans_->mutex);
        const bool same_grid = plans_->grid && plans_->grid->n == grid->n &&
                               plans_->grid->q_first_inv_angstrom == grid->q_first_inv_angstrom &&
                               plans_->grid->dq_inv_angstrom == grid->dq_inv_angstrom;
        if (!same_grid) {
            auto transform =
                FastTransform::create(*grid, uniform_r_grid(s.r_max_angstrom, s.n_r),
                                      TransformOptions{s.density_per_cubic_angstrom, s.lorch});
            if (!transform) {
                return tl::unexpected(transform.error());
            }
            plans_->transform = std::make_unique<FastTransform>(std::move(*transform));
            plans_->noise_sums.reset();
            plans_->grid = *grid;
        }
        auto g0 = plans_->transform->transform_l0(curves->s0);
        if (!g0) {
            return tl::unexpected(g0.error());
        }
        auto g2 = plans_->transform->transform_l2(curves->s2);
        if (!g2) {
            return tl::unexpected(g2.error());
        }
        result.g0 = std::move(*g0);
        result.g2 = std::move(*g2);
    }
    auto reduced = reduced_pair_distribution(result.g0, s.density_per_cubic_angstrom);
    if (!reduced) {
        return tl::unexpected(reduced.error());
    }
    result.reduced_g = std::move(*reduced);

    AffineFitOptions fit;
    fit.nu = s.nu;
    fit.r_fit_min = s.r_fit_min_angstrom;
    fit.r_fit_max = s.r_fit_max_angstrom;
    fit.s2_consistent_with_zero = result.s2_consistent_with_zero;
    // The windows behind A(r) are the widest sums of correlated samples the fit forms; beyond
    // them, correlations of transformed noise are left out (docs/physics-fits.md).
    const double h = result.g0.r_angstrom[1] - result.g0.r_angstrom[0];
    const auto max_lag = static_cast<std::size_t>(std::ceil(fit.window_angstrom / h)) + 1;
    const TransformOptions transform_options{s.density_per_cubic_angstrom, s.lorch};
    std::shared_ptr<const ExponentialSums> sums;
    {
        const std::lock_guard lock(plans_->mutex);
        sums = plans_->noise_sums;
    }
    auto noise = TransformNoise::create(curves->s0, curves->s2, result.g0.r_angstrom,
                                        transform_options, max_lag, sums);
    if (!noise) {
        return tl::unexpected(noise.error());
    }
    {
        const std::lock_guard lock(plans_->mutex);
        plans_->noise_sums = noise->sums();
    }
    fit.transform_noise = std::make_shared<const TransformNoise>(std::move(*noise));
    auto affine = analyse_affine(result.g0, result.g2, fit);
    if (!affine) {
        return tl::unexpected(affine.error());
    }
    result.affine = std::move(*affine);
    return result;
}

}  // namespace anisoflow::physics
