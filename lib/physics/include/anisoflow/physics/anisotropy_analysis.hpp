#pragma once
// The whole analysis of SPEC 5-7 from accumulated cakes to the summary a scientist reads:
// harmonics -> S0, S2 -> g0, g2, G -> alpha, eps_aff, r_c, eps(r), mechanism. One function, used
// by `anisoflow analyze` and the analyze service alike.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "anisoflow/core/result.hpp"
#include "anisoflow/physics/affine_fit.hpp"
#include "anisoflow/physics/curves.hpp"
#include "anisoflow/physics/harmonics.hpp"
#include "anisoflow/physics/normalisation.hpp"
#include "anisoflow/physics/scattering_factors.hpp"
#include "anisoflow/reduce/cake.hpp"

namespace anisoflow::physics {

enum class ExtractionMode { kPn, kSingle };
std::string_view to_string(ExtractionMode mode);
Result<ExtractionMode> parse_extraction_mode(std::string_view name);  ///< "pn" or "single"

/// Variance of dg0/dr at each r, propagated exactly from S0's independent Q-bin variances
/// through the SPEC 6 l = 0 transform (trapezoid rule over S0's samples, Lorch window when
/// `lorch`): g0 is band-limited to q_max and its noise correlated over ~pi/q_max, so this is
/// ~10x below what a derivative stencil on g0's own (marginal) variances gives. The analysis no
/// longer calls it (TransformNoise's band carries the same diagonal and the correlations); it
/// is kept as the exact reference the tests compare the scatter of dg0/dr against.
std::vector<double> g0_derivative_variance(const QCurve& s0, const std::vector<double>& r,
                                           double rho0_per_cubic_angstrom, bool lorch);

/// Everything the analysis needs besides the cakes (SPEC 8's keys, in their units).
struct AnalysisSettings {
    ExtractionMode mode = ExtractionMode::kPn;
    std::string composition;                        ///< formula, e.g. Zr52.5Cu17.9Ni14.6Al10Ti5
    double density_per_cubic_angstrom = 0.0;        ///< rho0
    double nu = 0.0;                                ///< Poisson ratio, (-1, 0.5)
    double loading_axis_chi_deg = 0.0;              ///< pyFAI chi of the axis in orientation P
    double wavelength_angstrom = 0.0;               ///< from the PONI
    std::optional<double> q_norm_min_inv_angstrom;  ///< default 0.65 q_max (SPEC 5)
    Normalisation normalisation = Normalisation::kHighQ;  ///< SPEC 5; "adhoc": PDFgetX3-style
    double r_poly_angstrom = kDefaultRPolyAngstrom;       ///< adhoc only: polynomial's reach
    double r_max_angstrom = 25.0;
    std::size_t n_r = 2000;
    double r_fit_min_angstrom = 2.3;
    double r_fit_max_angstrom = 20.0;
    bool lorch = false;

    /// Reports every out-of-domain value at once, naming the key.
    [[nodiscard]] Result<void> validate() const;
};

struct AnisotropyResult {
    Harmonics harmonics;
    StructureFunctions structure;  ///< S0, S2 (SPEC 4-5)
    RCurve g0;
    RCurve g2;
    RCurve reduced_g;  ///< G(r) = 4 pi rho0 r (g0 - 1)
    AffineAnalysis affine;
    double s2_chi2 = 0.0;  ///< sum (S2 / sigma)^2 over valid bins: the isotropy test
    std::size_t s2_dof = 0;
    bool s2_consistent_with_zero = false;  ///< chi^2 below its 99 % quantile
    /// Q bins without data inside the range (no usable chi cell): S0/S2 there are interpolated
    /// from their neighbours before the transforms.
    std::size_t interpolated_q_bins = 0;
};

/// Analysis of one P and one N cake (pn mode) or a single cake (single mode: `n` is null).
class AnisotropyAnalyzer {
  public:
    static Result<AnisotropyAnalyzer> create(const AnalysisSettings& settings);
    AnisotropyAnalyzer(AnisotropyAnalyzer&&) noexcept;
    AnisotropyAnalyzer& operator=(AnisotropyAnalyzer&&) noexcept;
    ~AnisotropyAnalyzer();

    [[nodiscard]] const AnalysisSettings& settings() const { return settings_; }
    /// Runs the chain; the transform plans are kept between calls on the same Q grid.
    [[nodiscard]] Result<AnisotropyResult> analyse(const reduce::Cake& p,
                                                   const reduce::Cake* n) const;

  private:
    struct Plans;
    AnisotropyAnalyzer();
    AnalysisSettings settings_;
    std::unique_ptr<ScatteringFactors> factors_;
    std::unique_ptr<Plans> plans_;
};

}  // namespace anisoflow::physics
