#pragma once
// Isotropic and strained structure factors for the simulator (issue 3): a Percus-Yevick hard-sphere
// liquid, damped towards 1 at high Q by a Debye-Waller-like factor, and its exact affine
// deformation under uniaxial strain. Conventions are SPEC 3-4's, derived here independently of
// lib/physics so that a convention error in one cannot cancel one in the other.

#include <vector>

#include "anisoflow/core/result.hpp"

namespace anisoflow::sim {

/// Hard spheres of diameter sigma at packing fraction eta = pi rho0 sigma^3 / 6.
struct HardSphereParameters {
    double number_density_per_cubic_angstrom = 0.0553;  ///< rho0 of a Zr-based metallic glass
    double packing_fraction = 0.55;
    double debye_waller_angstrom = 0.15;  ///< sigma_DW: S - 1 is damped by exp(-sigma_DW^2 Q^2)
};

/// S(Q) of the Percus-Yevick hard-sphere liquid (Wertheim's and Thiele's closed form), damped:
/// S(Q) = 1 + [S_PY(Q) - 1] exp(-sigma_DW^2 Q^2). S >= 0 everywhere since S_PY >= 0 and the
/// damping is in [0, 1]; S(0) = (1 - eta)^4 / (1 + 2 eta)^2 (0.0093 at eta = 0.55).
class HardSphereStructure {
  public:
    static Result<HardSphereStructure> create(const HardSphereParameters& parameters);

    [[nodiscard]] double diameter_angstrom() const { return diameter_; }
    [[nodiscard]] const HardSphereParameters& parameters() const { return parameters_; }
    /// Isotropic S(Q), Q in 1/A (Q >= 0).
    [[nodiscard]] double s(double q_inv_angstrom) const;
    /// dS/dQ by a five-point centred difference of the closed form (~1e-8 absolute): for tests
    /// and the first-order strain relation S2 = -(c eps/sqrt5) Q dS/dQ.
    [[nodiscard]] double ds_dq(double q_inv_angstrom) const;
    /// S(Q) without the table: the closed form (or quadrature at small Q), for tests.
    [[nodiscard]] double s_exact(double q_inv_angstrom) const;

  private:
    [[nodiscard]] double inverse_py(double k) const;  // 1 / S_PY at k = Q sigma

    HardSphereParameters parameters_;
    double diameter_ = 0.0;
    double alpha_ = 0.0, beta_ = 0.0, gamma_ = 0.0;  // c(x) = -alpha - beta x - gamma x^3, x < 1
    // S on a uniform Q grid for interpolation: a frame needs S at millions of Q.
    double table_step_ = 0.0;
    std::vector<double> table_;
};

/// Uniaxial strain about the loading axis: compression eps > 0 shortens the axis by (1 - eps)
/// and lengthens the transverse directions by (1 + nu eps) (SPEC 7's sign convention).
struct UniaxialStrain {
    double eps = 0.0;
    double poisson_ratio = 0.37;
};

/// Exact affine S'(Q, psi) = S(|F^T Q|) for a structure deformed by F (every pair vector r
/// becomes F r, so the scattering at Q probes the undeformed structure at F^T Q); psi is the
/// angle between Q and the loading axis.
double affine_structure_factor(const HardSphereStructure& structure, double q_inv_angstrom,
                               double cos_psi, const UniaxialStrain& strain);

}  // namespace anisoflow::sim
