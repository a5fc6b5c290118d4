#pragma once
// Composition averages of the X-ray atomic form factors and incoherent (Compton) scattering
// (SPEC 5): <f>^2 = (sum c_i f_i)^2, <f^2> = sum c_i f_i^2, C(Q) = sum c_i S_i(Q), from xraylib
// with x = Q / (4 pi) in 1/A.

#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "anisoflow/core/result.hpp"
#include "anisoflow/physics/composition.hpp"
#include "anisoflow/physics/curves.hpp"

namespace anisoflow::physics {

/// The three composition averages at one Q.
struct ScatteringAverages {
    double mean_f_squared = 0.0;  ///< <f>^2 = (sum c_i f_i)^2, electrons^2
    double mean_squared_f = 0.0;  ///< <f^2> = sum c_i f_i^2, electrons^2
    double compton = 0.0;         ///< C(Q) = sum c_i S_i(Q), electrons (0 at Q = 0)
};

/// Tabulated (xraylib) scattering factors averaged over a composition. Values carry no
/// uncertainty: the vectorised curves have variance 0.
class ScatteringFactors {
  public:
    /// Checks the composition (non-empty, 1 <= Z <= 98, positive fractions) and normalises the
    /// fractions to sum 1.
    [[nodiscard]] static Result<ScatteringFactors> from_composition(std::vector<Element> elements);
    /// parse_composition() followed by from_composition().
    [[nodiscard]] static Result<ScatteringFactors> from_formula(std::string_view formula);

    [[nodiscard]] const std::vector<Element>& elements() const { return elements_; }

    /// All three averages at Q (1/A) in one pass over the elements; NaN for Q < 0 or NaN.
    [[nodiscard]] ScatteringAverages at(double q_inv_angstrom) const;
    [[nodiscard]] double mean_f_squared(double q_inv_angstrom) const;
    [[nodiscard]] double mean_squared_f(double q_inv_angstrom) const;
    [[nodiscard]] double compton(double q_inv_angstrom) const;

    /// The same on a Q grid (1/A); each curve has the grid as its Q axis and variance 0.
    [[nodiscard]] QCurve mean_f_squared(std::span<const double> q_inv_angstrom) const;
    [[nodiscard]] QCurve mean_squared_f(std::span<const double> q_inv_angstrom) const;
    [[nodiscard]] QCurve compton(std::span<const double> q_inv_angstrom) const;

  private:
    explicit ScatteringFactors(std::vector<Element> elements) : elements_(std::move(elements)) {}
    std::vector<Element> elements_;
};

}  // namespace anisoflow::physics
