#pragma once
// The simulator's own real-space side (issue 3): g0(r) of the hard-sphere structure by a sine
// transform of its S(Q), and the l = 2 transform that turns an anisotropic pair distribution
// g2(r) into S2(Q). Both are derived in docs/physics-simulator.md from the pair density
// and the plane-wave expansion, independently of lib/physics, so that a sign or normalisation
// error in the analysis' transforms (SPEC 6) cannot be cancelled by the same error here.

#include <span>
#include <vector>

#include "anisoflow/core/result.hpp"
#include "anisoflow/sim/structure_model.hpp"

namespace anisoflow::sim {

/// Grids of the simulator's transforms. The trapezoid rule is spectrally accurate here: S(Q) - 1
/// is even in Q and damped to nothing, and the S2 integrands vanish at both ends of the r grid.
/// g0 - 1 itself decays slowly (3e-4 at 40 A at eta = 0.55), so no integral may rely on it having
/// vanished at r_max (radial_strain_s2 takes its long-range part in closed form).
struct PairGrid {
    double r_max_angstrom = 40.0;       ///< the g2 models must have vanished here
    double r_step_angstrom = 0.01;      ///< r grid of g0 and of the S2 quadrature
    double q_step_inv_angstrom = 0.01;  ///< Q grid of the g0 transform (aliases at 2 pi/step)
};

/// S(Q) - 1 of a damped structure falls below this where the g0 transform stops: exp(-sigma_DW^2
/// Q^2) = 1e-14 at Q = 5.7/sigma_DW.
inline constexpr double kMinDebyeWallerForTransformAngstrom = 0.05;

/// g0(r) and dg0/dr of a HardSphereStructure on a uniform r grid from 0 to r_max, by
///   g0(r)    = 1 + 1/(2 pi^2 rho0) Int_0^Qmax Q^2 [S(Q) - 1] j0(Qr) dQ
///   dg0/dr   =   - 1/(2 pi^2 rho0) Int_0^Qmax Q^3 [S(Q) - 1] j1(Qr) dQ
/// (the derivative is the analytic derivative of the same integral, not a finite difference).
/// Q_max is where the Debye-Waller damping has removed S - 1, so nothing is truncated: g0 is the
/// 3-D Gaussian smoothing of the Percus-Yevick g, >= 0 and ~0 inside the core, without ripples.
class IsotropicPairDistribution {
  public:
    /// Fails when sigma_DW < kMinDebyeWallerForTransformAngstrom (S - 1 would not decay) or the
    /// grid is not positive.
    static Result<IsotropicPairDistribution> create(const HardSphereStructure& structure,
                                                    const PairGrid& grid = {});

    [[nodiscard]] double number_density_per_cubic_angstrom() const { return rho_; }
    [[nodiscard]] double r_step_angstrom() const { return r_step_; }
    [[nodiscard]] double q_max_inv_angstrom() const { return q_max_; }
    /// r_k = k r_step, k = 0 .. n - 1.
    [[nodiscard]] const std::vector<double>& r_angstrom() const { return r_; }
    [[nodiscard]] const std::vector<double>& g0() const { return g0_; }
    [[nodiscard]] const std::vector<double>& dg0_dr_per_angstrom() const { return dg0_dr_; }
    /// The same transform at any r >= 0 (for tests and off-grid use).
    [[nodiscard]] double g0_at(double r_angstrom) const;
    [[nodiscard]] double dg0_dr_at(double r_angstrom) const;

  private:
    struct Pair {
        double g0 = 0.0;
        double dg0_dr = 0.0;
    };
    [[nodiscard]] Pair evaluate(double r_angstrom) const;

    double rho_ = 0.0;
    double r_step_ = 0.0;
    double q_step_ = 0.0;
    double q_max_ = 0.0;
    std::vector<double> weighted_h_;  ///< trapezoid weight x [S(Q_j) - 1] / (2 pi^2 rho0)
    std::vector<double> r_;
    std::vector<double> g0_;
    std::vector<double> dg0_dr_;
};

/// j2(x) = (3/x^3 - 1/x) sin x - 3 cos x / x^2, by its series below x = 0.5 where the closed form
/// cancels.
double spherical_bessel_j2(double x);

/// The l = 2 transform (paper normalisation, SPEC 4; derived in docs/physics-simulator.md):
///   S2(Q) = -4 pi rho0 Int_0^rmax r^2 g2(r) j2(Qr) dr,
/// the inverse of SPEC 6's g2(r) = -1/(2 pi^2 rho0) Int Q^2 S2(Q) j2(Qr) dQ. g2 is sampled at
/// r_k = k r_step (k = 0 .. n - 1) and must vanish towards the last sample (trapezoid rule).
std::vector<double> l2_transform(std::span<const double> g2, double r_step_angstrom,
                                 double number_density_per_cubic_angstrom,
                                 std::span<const double> q_inv_angstrom);

}  // namespace anisoflow::sim
