#pragma once
// Bonds between two configurations of the same atoms (issue 7; formulas in docs/atomistic.md):
// which reference bonds break, the fraction per atom averaged in D2_min bins with a weighted
// linear fit, and the change Delta P(phi) of the distribution of bond angles to the loading axis.

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "anisoflow/atomistic/box.hpp"
#include "anisoflow/core/result.hpp"

namespace anisoflow::atomistic {

/// The bonds of one configuration: pairs i < j closer than the cutoff, with their separation
/// d = x_j - x_i (minimum image).
struct Bonds {
    std::vector<std::array<std::uint32_t, 2>> atoms;
    std::vector<Vec3> separation;
    [[nodiscard]] std::size_t size() const { return atoms.size(); }
};

/// Every pair closer than `cutoff`. Errors: those of CellList::build (cutoff not positive or
/// at least half the smallest box width).
Result<Bonds> find_bonds(const Box& box, std::span<const Vec3> positions, double cutoff);

/// The separations of the same pairs in another configuration of the same atoms: the image of j
/// whose reduced separation from i is closest to the one in `bonds` (as compute_d2min pairs
/// atoms), so wrapped or unwrapped coordinates and a deformed box give the same vectors.
/// Errors: sizes that differ.
Result<std::vector<Vec3>> follow_bonds(const Box& box, const Bonds& bonds, const Box& other_box,
                                       std::span<const Vec3> other);

struct BondBreakingOptions {
    /// Bonds are the reference pairs closer than this (typically the first minimum of g(r)).
    double cutoff = 0.0;
    /// A bond is broken when its deformed length is at least break_factor * cutoff (1: the same
    /// cutoff; above 1, a margin against bonds that only cross the cutoff by a small strain).
    double break_factor = 1.0;
};

/// Per-atom bond breaking between a reference and a deformed configuration.
struct BondBreaking {
    std::vector<int> bonds;   ///< reference bonds of each atom
    std::vector<int> broken;  ///< of those, broken in the deformed configuration
    /// broken / bonds per atom; NaN for an atom without reference bonds.
    std::vector<double> fraction;
    std::size_t total_bonds = 0;  ///< unordered reference bonds
    std::size_t total_broken = 0;
};

/// Errors: sizes that differ, a cutoff the reference box cannot hold, a break_factor below 1 or
/// not finite (below 1, bonds that did not change would count as broken).
Result<BondBreaking> compute_bond_breaking(const Box& reference_box,
                                           std::span<const Vec3> reference, const Box& deformed_box,
                                           std::span<const Vec3> deformed,
                                           const BondBreakingOptions& options);

/// How bin edges over D2_min (or any per-atom value) are chosen.
enum class BinScheme {
    kQuantile,  ///< equal numbers of atoms per bin (the default: D2_min is heavy-tailed)
    kUniform,   ///< equal widths between the smallest and the largest value
};

/// Bins of a per-atom value: n + 1 increasing edges, and each atom's bin (-1 for NaN values).
/// The last bin includes its upper edge.
struct Binning {
    std::vector<double> edges;
    std::vector<int> bin;
    [[nodiscard]] std::size_t size() const { return edges.empty() ? 0 : edges.size() - 1; }
};

/// Errors: n_bins = 0, fewer finite values than bins, all values equal.
Result<Binning> bin_values(std::span<const double> values, std::size_t n_bins, BinScheme scheme);

/// Bond breaking averaged over the atoms of one D2_min bin.
struct BondBreakingBin {
    double lower = 0.0;  ///< bin edges (D2_min, length^2)
    double upper = 0.0;
    double d2min_mean = std::numeric_limits<double>::quiet_NaN();  ///< over atoms with bonds
    std::size_t atoms = 0;                                         ///< atoms with bonds
    std::size_t bonds = 0;   ///< sum of the atoms' bond counts (a bond counts at both ends)
    std::size_t broken = 0;  ///< the same for broken bonds
    double fraction_mean = std::numeric_limits<double>::quiet_NaN();  ///< mean per-atom fraction
    /// Variance of fraction_mean: the sample variance / atoms, floored by the binomial variance
    /// p (1 - p) / bonds with p = (broken + 1/2) / (bonds + 1), so a bin with no broken bond
    /// still has a finite weight in the fit. NaN with fewer than 2 atoms.
    double fraction_variance = std::numeric_limits<double>::quiet_NaN();
};

/// Errors: sizes of breaking, d2min and binning.bin that differ.
Result<std::vector<BondBreakingBin>> bin_bond_breaking(const BondBreaking& breaking,
                                                       std::span<const double> d2min,
                                                       const Binning& binning);

/// y = intercept + slope x by weighted least squares (weights 1 / variance). Standard errors from
/// the weights alone ((X^T W X)^-1, the variances taken as known); reduced chi^2 says whether
/// they are (NaN with no degree of freedom).
struct LinearFit {
    double slope = std::numeric_limits<double>::quiet_NaN();
    double slope_stderr = std::numeric_limits<double>::quiet_NaN();
    double intercept = std::numeric_limits<double>::quiet_NaN();
    double intercept_stderr = std::numeric_limits<double>::quiet_NaN();
    double covariance = std::numeric_limits<double>::quiet_NaN();  ///< cov(slope, intercept)
    double reduced_chi2 = std::numeric_limits<double>::quiet_NaN();
    std::size_t n_points = 0;
};

/// Points with a non-finite x, y or variance, or a variance <= 0, are left out. Errors: fewer
/// than 2 points left, or all at the same x.
Result<LinearFit> fit_line(std::span<const double> x, std::span<const double> y,
                           std::span<const double> variance);

/// The fit of fraction_mean against d2min_mean over the bins (weights 1 / fraction_variance).
Result<LinearFit> fit_bond_breaking(const std::vector<BondBreakingBin>& bins);

/// Which bonds the deformed distribution counts.
enum class BondSet {
    kOwn,      ///< each configuration's own bonds (pairs closer than the cutoff in it)
    kTracked,  ///< the reference bonds, followed into the deformed configuration
};

struct BondOrientationOptions {
    double cutoff = 0.0;
    Vec3 loading_axis{0.0, 0.0, 1.0};  ///< normalised inside
    std::size_t n_bins = 18;           ///< bins of phi over [0, 90] deg
    BondSet bond_set = BondSet::kOwn;
    /// Unordered type pairs a bond must join (e.g. {1, 2}); empty: every bond.
    std::vector<std::pair<int, int>> type_pairs;
};

/// The distribution of phi, the angle between a bond and the loading axis folded into
/// [0, 90] deg, per unit solid angle: P_k = n_k / (N (cos phi_k - cos phi_k+1)), so that an
/// isotropic distribution is 1 in every bin. Variance: Poisson, n_k / (N dOmega_k)^2.
struct OrientationHistogram {
    std::vector<double> phi_edges_deg;  ///< n_bins + 1
    std::vector<double> phi_deg;        ///< bin centres
    std::vector<std::size_t> counts;
    std::vector<double> p;
    std::vector<double> p_variance;
    std::size_t total = 0;  ///< bonds counted
};

/// The histogram of the given bond separations (none: counts 0 and P = 0).
OrientationHistogram orientation_histogram(std::span<const Vec3> separations, const Vec3& axis,
                                           std::size_t n_bins);

struct BondOrientationChange {
    OrientationHistogram reference;
    OrientationHistogram deformed;
    std::vector<double> delta_p;           ///< deformed.p - reference.p
    std::vector<double> delta_p_variance;  ///< the sum of the two Poisson variances
};

/// Delta P(phi) between the configurations. `types` (per atom, may be empty when type_pairs is)
/// selects bonds by type_pairs. Errors: sizes that differ, a zero axis, n_bins = 0, a cutoff
/// either box cannot hold, type_pairs given without types.
Result<BondOrientationChange> bond_orientation_change(const Box& reference_box,
                                                      std::span<const Vec3> reference,
                                                      const Box& deformed_box,
                                                      std::span<const Vec3> deformed,
                                                      std::span<const int> types,
                                                      const BondOrientationOptions& options);

}  // namespace anisoflow::atomistic
