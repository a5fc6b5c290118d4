#pragma once
// Diffraction from atoms (issue 7): the structure factor S(Q) = |sum_j exp(-i Q.x_j)|^2 / N of a
// periodic configuration on its reciprocal lattice Q = 2 pi H^-T n, and its expansion about a
// loading axis in SPEC 4's normalisation, S(Q, psi) = S0(Q) + sqrt5 S2(Q) P2(cos psi), fitted per
// |Q| bin, so that SPEC 6's transforms of S0 and S2 give back g0 and g2 of pair_distribution.hpp.
// Two evaluations of the same lattice sums: exact direct sums (small systems, the reference) and
// B-spline charge assignment on FFT grids with deconvolution and folding (docs/atomistic-
// diffraction.md gives the aliasing bound and the measured errors).

#include <array>
#include <cstddef>
#include <span>
#include <vector>

#include "anisoflow/atomistic/box.hpp"
#include "anisoflow/core/result.hpp"
#include "anisoflow/physics/curves.hpp"

namespace anisoflow::atomistic {

enum class DiffractionMethod {
    /// rho(n) = sum_j exp(-2 pi i n.s_j) summed atom by atom: exact to rounding, O(N n_Q).
    kDirect,
    /// B-spline assignment of the atoms to an FFT grid over reduced coordinates, deconvolved by
    /// the spline's transform; lattice points beyond one grid's reach come from grids of the
    /// positions folded by 2, 4, ... (s -> frac(k s) gives rho at n = k m). O(N p^3 + M^3 log M)
    /// per grid.
    kFft,
};

struct DiffractionOptions {
    Vec3 loading_axis{0.0, 0.0, 1.0};  ///< psi is measured from it (normalised inside)
    double q_max = 20.0;               ///< 1/length unit of the positions (1/A for metal units)
    double q_bin_width = 0.05;         ///< |Q| bins [k w, (k + 1) w), k = 0 .. q_max / w - 1
    DiffractionMethod method = DiffractionMethod::kFft;
    /// kFft: order p of the cardinal B-spline (even, 4 to 12). The alias at n - M of a lattice
    /// point used at |n| <= M / (2 oversampling) is at most (1 / (2 oversampling - 1))^p of it
    /// per axis after deconvolution: 3^-8 = 1.5e-4 at the defaults.
    int spline_order = 8;
    double oversampling = 2.0;  ///< kFft: grid points per axis over twice the largest |n| used
    /// kFft: the largest grid per axis (memory: M^3 doubles and as much for the spectrum, 2 x
    /// 57 MB at 192). Lattice points beyond its reach come from folded grids, every k-th lattice
    /// point (k = 2, 4, ...): a high-Q bin then holds k^3 fewer points, so its shot noise grows
    /// by k^1.5.
    std::size_t max_grid = 192;
};

/// S at one reciprocal-lattice point (one of each pair +-Q: S(Q) = S(-Q) for real densities).
struct LatticeIntensity {
    std::array<int, 3> n{};  ///< Miller-like index: Q = 2 pi H^-T n
    Vec3 q{};                ///< 1/length
    double s = 0.0;          ///< |rho(n)|^2 / N
    double cos_psi = 0.0;    ///< cosine of the angle between Q and the loading axis
    int fold = 1;            ///< kFft: the folding factor k of the grid that gave it
};

/// Per |Q| bin: least-squares fit of S over the bin's lattice points on {1, sqrt5 P2(cos psi)}
/// (a fit, not a plain average, since a shell's lattice directions are not uniform on the
/// sphere). Variances from the residual scatter (speckle): var = sigma^2 (X^T X)^-1. Bins with
/// fewer than kMinPointsPerBin points, or whose directions cannot separate P0 from P2, are NaN.
struct StructureFactor {
    physics::QCurve s0;              ///< at the bins' mean |Q|
    physics::QCurve s2;              ///< SPEC 4: S = S0 + sqrt5 S2 P2(cos psi)
    std::vector<std::size_t> count;  ///< lattice points (half space) per bin
    std::vector<int> fold;           ///< the largest folding factor among a bin's points
    double number_density = 0.0;     ///< N / V
    std::size_t atoms = 0;
};

inline constexpr std::size_t kMinPointsPerBin = 6;

/// S at every reciprocal-lattice point 0 < |Q| <= q_max of a half space (n_c > 0, or n_c = 0
/// and n_b > 0, or n_c = n_b = 0 and n_a > 0). Errors: no atoms, q_max not positive, a zero
/// loading axis, a spline order or oversampling out of range, a box so small or q_max so low
/// that no lattice point lies inside.
Result<std::vector<LatticeIntensity>> lattice_structure_factor(const Box& box,
                                                               std::span<const Vec3> positions,
                                                               const DiffractionOptions& options);

/// The P0/P2 fit of lattice_structure_factor per |Q| bin (S0 and S2 on the bins' mean |Q|).
Result<StructureFactor> structure_factor(const Box& box, std::span<const Vec3> positions,
                                         const DiffractionOptions& options);

/// The same fit of given lattice intensities (for tests and for subsets of the points).
StructureFactor project_harmonics(std::span<const LatticeIntensity> points, std::size_t atoms,
                                  double number_density, const DiffractionOptions& options);

}  // namespace anisoflow::atomistic
