#include "anisoflow/sim/structure_model.hpp"

#include <array>
#include <cmath>
#include <numbers>

namespace anisoflow::sim {

namespace {

// Table of S(Q): 0.001 1/A steps to 60 1/A, cubic interpolation (error < 1e-7 relative).
constexpr double kTableStep = 0.001;
constexpr double kTableMaxQ = 60.0;
// Below k = Q sigma = 1 the closed form loses digits to cancellation: integrate instead.
constexpr double kQuadratureBelowK = 1.0;

// 16-point Gauss-Legendre on [0, 1]: exact for polynomials of degree 31, ample for
// x^2 (alpha + beta x + gamma x^3) sin(kx)/(kx) at k < 1.
double gauss_legendre_01(const auto& f) {
    static constexpr std::array<double, 8> kNodes = {
        0.0950125098376374, 0.2816035507792589, 0.4580167776572274, 0.6178762444026438,
        0.7554044083550030, 0.8656312023878318, 0.9445750230732326, 0.9894009349916499};
    static constexpr std::array<double, 8> kWeights = {
        0.1894506104550685, 0.1826034150449236, 0.1691565193950025, 0.1495959888165767,
        0.1246289712555339, 0.0951585116824928, 0.0622535239386479, 0.0271524594117541};
    double sum = 0.0;
    for (std::size_t i = 0; i < kNodes.size(); ++i) {
        sum += kWeights[i] * (f(0.5 * (1.0 + kNodes[i])) + f(0.5 * (1.0 - kNodes[i])));
    }
    return 0.5 * sum;
}

}  // namespace

Result<HardSphereStructure> HardSphereStructure::create(const HardSphereParameters& parameters) {
    const double eta = parameters.packing_fraction;
    const double rho = parameters.number_density_per_cubic_angstrom;
    if (!(eta > 0.0 && eta < 0.74)) {
        return fail(ErrorCode::kInvalidArgument,
                    "packing fraction {} is outside (0, 0.74) (close packing)", eta);
    }
    if (!(rho > 0.0) || !std::isfinite(rho)) {
        return fail(ErrorCode::kInvalidArgument, "number density {} /A^3 is not positive", rho);
    }
    if (!(parameters.debye_waller_angstrom >= 0.0)) {
        return fail(ErrorCode::kInvalidArgument, "Debye-Waller width {} A is negative",
                    parameters.debye_waller_angstrom);
    }
    HardSphereStructure structure;
    structure.parameters_ = parameters;
    structure.diameter_ = std::cbrt(6.0 * eta / (std::numbers::pi * rho));
    // Percus-Yevick direct correlation function (Wertheim 1963, Thiele 1963).
    const double denominator = std::pow(1.0 - eta, 4);
    structure.alpha_ = (1.0 + 2.0 * eta) * (1.0 + 2.0 * eta) / denominator;
    structure.beta_ = -6.0 * eta * (1.0 + 0.5 * eta) * (1.0 + 0.5 * eta) / denominator;
    structure.gamma_ = 0.5 * eta * structure.alpha_;
    structure.table_step_ = kTableStep;
    const auto points = static_cast<std::size_t>(kTableMaxQ / kTableStep) + 4;
    structure.table_.resize(points);
    for (std::size_t i = 0; i < points; ++i) {
        structure.table_[i] = structure.s_exact(static_cast<double>(i) * kTableStep);
    }
    return structure;
}

double HardSphereStructure::inverse_py(double k) const {
    const double eta = parameters_.packing_fraction;
    if (k < kQuadratureBelowK) {
        // 1/S = 1 - rho c(k) = 1 + 24 eta Int_0^1 x^2 (alpha + beta x + gamma x^3) j0(k x) dx
        const double integral = gauss_legendre_01([&](double x) {
            const double kx = k * x;
            const double j0 = kx < 1e-8 ? 1.0 : std::sin(kx) / kx;
            return x * x * (alpha_ + beta_ * x + gamma_ * x * x * x) * j0;
        });
        return 1.0 + 24.0 * eta * integral;
    }
    const double s = std::sin(k);
    const double c = std::cos(k);
    const double k2 = k * k;
    const double t1 = (s - k * c) / (k2 * k);
    const double t2 = (2.0 * k * s - (k2 - 2.0) * c - 2.0) / (k2 * k2);
    const double t3 = (-k2 * k2 * c + 4.0 * ((3.0 * k2 - 6.0) * c + (k2 * k - 6.0 * k) * s + 6.0)) /
                      (k2 * k2 * k2);
    return 1.0 + 24.0 * eta * (alpha_ * t1 + beta_ * t2 + gamma_ * t3);
}

double HardSphereStructure::s_exact(double q_inv_angstrom) const {
    const double s_py = 1.0 / inverse_py(std::abs(q_inv_angstrom) * diameter_);
    const double sigma = parameters_.debye_waller_angstrom;
    return 1.0 + (s_py - 1.0) * std::exp(-sigma * sigma * q_inv_angstrom * q_inv_angstrom);
}

double HardSphereStructure::s(double q_inv_angstrom) const {
    const double x = std::abs(q_inv_angstrom) / table_step_;
    const auto i = static_cast<std::size_t>(x);
    if (i == 0 || i + 2 >= table_.size()) {
        return s_exact(q_inv_angstrom);
    }
    // Catmull-Rom cubic through table points i-1 .. i+2.
    const double t = x - static_cast<double>(i);
    const double p0 = table_[i - 1];
    const double p1 = table_[i];
    const double p2 = table_[i + 1];
    const double p3 = table_[i + 2];
    return p1 + 0.5 * t *
                    (p2 - p0 +
                     t * (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3 + t * (3.0 * (p1 - p2) + p3 - p0)));
}

double HardSphereStructure::ds_dq(double q_inv_angstrom) const {
    // Five-point centred difference of the closed form: truncation h^4 S^(5)/30 ~ 1e-8 at the
    // first peak (S^(5) ~ 3e5 A^5), rounding ~1e-16 S/h ~ 1e-12. The S2 of the radial mode
    // uses Q dS/dQ directly, so a plain centred difference (1e-5 there) would be its error.
    constexpr double kStep = 1e-3;
    const double q = q_inv_angstrom;
    return (8.0 * (s_exact(q + kStep) - s_exact(q - kStep)) -
            (s_exact(q + 2.0 * kStep) - s_exact(q - 2.0 * kStep))) /
           (12.0 * kStep);
}

double affine_structure_factor(const HardSphereStructure& structure, double q_inv_angstrom,
                               double cos_psi, const UniaxialStrain& strain) {
    // F = (1 - eps) a a^T + (1 + nu eps) (I - a a^T) is symmetric, so F^T Q has the axial
    // component scaled by (1 - eps) and the transverse one by (1 + nu eps).
    const double axial = cos_psi * (1.0 - strain.eps);
    const double transverse = std::sqrt(std::max(0.0, 1.0 - cos_psi * cos_psi)) *
                              (1.0 + strain.poisson_ratio * strain.eps);
    return structure.s(q_inv_angstrom * std::hypot(axial, transverse));
}

}  // namespace anisoflow::sim
