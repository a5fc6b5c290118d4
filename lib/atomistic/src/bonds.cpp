// Bond breaking and bond orientation between two configurations (issue 7, docs/atomistic.md).
// Bonds are pairs closer than a cutoff (the first minimum of g(r)); a reference bond is broken
// when its deformed length reaches break_factor * cutoff; phi is the angle between a bond and
// the loading axis folded into [0, 90] deg, and P(phi) is normalised per unit solid angle.

#include "anisoflow/atomistic/bonds.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numbers>

#include "anisoflow/atomistic/cell_list.hpp"

namespace anisoflow::atomistic {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kDegPerRad = 180.0 / std::numbers::pi;
constexpr double kRightAngleDeg = 90.0;
// Jeffreys' pseudo-counts of the binomial variance floor of a bin's mean fraction: a bin with
// no broken bond (p = 0) keeps a finite weight in the fit.
constexpr double kPseudoBroken = 0.5;
constexpr double kPseudoBonds = 1.0;

double norm(const Vec3& v) { return std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]); }

Result<Vec3> unit_axis(const Vec3& axis) {
    const double n = norm(axis);
    if (!(n > 0.0) || !std::isfinite(n)) {
        return fail(ErrorCode::kInvalidArgument, "loading axis is not a non-zero vector");
    }
    return Vec3{axis[0] / n, axis[1] / n, axis[2] / n};
}

bool joins(const std::vector<std::pair<int, int>>& pairs, int a, int b) {
    return std::any_of(pairs.begin(), pairs.end(), [&](const std::pair<int, int>& p) {
        return (p.first == a && p.second == b) || (p.first == b && p.second == a);
    });
}

Bonds select_types(const Bonds& bonds, std::span<const int> types,
                   const std::vector<std::pair<int, int>>& pairs) {
    if (pairs.empty()) {
        return bonds;
    }
    Bonds out;
    for (std::size_t k = 0; k < bonds.size(); ++k) {
        const auto [i, j] = bonds.atoms[k];
        if (joins(pairs, types[i], types[j])) {
            out.atoms.push_back(bonds.atoms[k]);
            out.separation.push_back(bonds.separation[k]);
        }
    }
    return out;
}

}  // namespace

Result<Bonds> find_bonds(const Box& box, std::span<const Vec3> positions, double cutoff) {
    auto cells = CellList::build(box, positions, cutoff);
    if (!cells) {
        return tl::unexpected(cells.error().with_context("bonds"));
    }
    Bonds bonds;
    for (std::size_t i = 0; i < positions.size(); ++i) {
        cells->for_each_neighbour(i, [&](std::size_t j, const Vec3& d, double /*r2*/) {
            if (j > i) {
                bonds.atoms.push_back(
                    {static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(j)});
                bonds.separation.push_back(d);
            }
        });
    }
    return bonds;
}

Result<std::vector<Vec3>> follow_bonds(const Box& box, const Bonds& bonds, const Box& other_box,
                                       std::span<const Vec3> other) {
    std::vector<Vec3> s_other(other.size());
    for (std::size_t i = 0; i < other.size(); ++i) {
        s_other[i] = other_box.to_reduced(other[i]);
    }
    std::vector<Vec3> out(bonds.size());
    for (std::size_t k = 0; k < bonds.size(); ++k) {
        const auto [i, j] = bonds.atoms[k];
        if (i >= other.size() || j >= other.size()) {
            return fail(ErrorCode::kInvalidArgument,
                        "bond {}-{} is outside the other configuration's {} atoms", i, j,
                        other.size());
        }
        // As compute_d2min: the image of j whose reduced separation is closest to the original.
        const Vec3 ds_ref = box.reduced_separation(bonds.separation[k]);
        Vec3 ds{};
        for (std::size_t c = 0; c < 3; ++c) {
            const double raw = s_other[j][c] - s_other[i][c];
            ds[c] = raw - std::round(raw - ds_ref[c]);
        }
        out[k] = other_box.cartesian_separation(ds);
    }
    return out;
}

Result<BondBreaking> compute_bond_breaking(const Box& reference_box,
                                           std::span<const Vec3> reference, const Box& deformed_box,
                                           std::span<const Vec3> deformed,
                                           const BondBreakingOptions& options) {
    if (reference.size() != deformed.size()) {
        return fail(ErrorCode::kInvalidArgument,
                    "reference has {} atoms, deformed configuration {}: bond breaking needs the "
                    "same atoms in both",
                    reference.size(), deformed.size());
    }
    if (!(options.break_factor >= 1.0) || !std::isfinite(options.break_factor)) {
        return fail(ErrorCode::kInvalidArgument,
                    "break factor {} must be finite and at least 1 (below 1, unchanged bonds "
                    "would count as broken)",
                    options.break_factor);
    }
    auto bonds = find_bonds(reference_box, reference, options.cutoff);
    if (!bonds) {
        return tl::unexpected(bonds.error().with_context("bond breaking"));
    }
    auto followed = follow_bonds(reference_box, *bonds, deformed_box, deformed);
    if (!followed) {
        return tl::unexpected(followed.error());
    }
    const double limit = options.break_factor * options.cutoff;
    const double limit2 = limit * limit;
    BondBreaking out;
    const std::size_t n = reference.size();
    out.bonds.assign(n, 0);
    out.broken.assign(n, 0);
    out.total_bonds = bonds->size();
    for (std::size_t k = 0; k < bonds->size(); ++k) {
        const auto [i, j] = bonds->atoms[k];
        ++out.bonds[i];
        ++out.bonds[j];
        const Vec3& d = (*followed)[k];
        if (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] >= limit2) {
            ++out.broken[i];
            ++out.broken[j];
            ++out.total_broken;
        }
    }
    out.fraction.assign(n, kNaN);
    for (std::size_t i = 0; i < n; ++i) {
        if (out.bonds[i] > 0) {
            out.fraction[i] = static_cast<double>(out.broken[i]) / out.bonds[i];
        }
    }
    return out;
}

Result<Binning> bin_values(std::span<const double> values, std::size_t n_bins, BinScheme scheme) {
    if (n_bins == 0) {
        return fail(ErrorCode::kInvalidArgument, "number of bins must be positive");
    }
    std::vector<double> finite;
    finite.reserve(values.size());
    for (const double v : values) {
        if (std::isfinite(v)) {
            finite.push_back(v);
        }
    }
    if (finite.size() < n_bins) {
        return fail(ErrorCode::kInvalidArgument, "{} bins for {} atoms with a finite value", n_bins,
                    finite.size());
    }
    std::sort(finite.begin(), finite.end());
    const double lo = finite.front();
    const double hi = finite.back();
    if (!(hi > lo)) {
        return fail(ErrorCode::kInvalidArgument, "every value is {}: nothing to bin", lo);
    }
    Binning out;
    out.edges.resize(n_bins + 1);
    for (std::size_t k = 0; k <= n_bins; ++k) {
        const double t = static_cast<double>(k) / static_cast<double>(n_bins);
        if (scheme == BinScheme::kUniform) {
            out.edges[k] = lo + t * (hi - lo);
        } else {
            // Linear interpolation between order statistics.
            const double pos = t * static_cast<double>(finite.size() - 1);
            const auto below = static_cast<std::size_t>(std::floor(pos));
            const std::size_t above = std::min(below + 1, finite.size() - 1);
            const double w = pos - static_cast<double>(below);
            out.edges[k] = (1.0 - w) * finite[below] + w * finite[above];
        }
    }
    out.edges.front() = lo;
    out.edges.back() = hi;
    for (std::size_t k = 0; k < n_bins; ++k) {
        if (!(out.edges[k + 1] > out.edges[k])) {
            return fail(ErrorCode::kInvalidArgument,
                        "{} quantile bins: edges {} and {} coincide (many equal values); use "
                        "fewer bins or uniform ones",
                        n_bins, k, k + 1);
        }
    }
    out.bin.assign(values.size(), -1);
    const auto interior_begin = out.edges.begin() + 1;
    const auto interior_end = out.edges.end() - 1;
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (std::isfinite(values[i])) {
            out.bin[i] = static_cast<int>(
                std::upper_bound(interior_begin, interior_end, values[i]) - interior_begin);
        }
    }
    return out;
}

Result<std::vector<BondBreakingBin>> bin_bond_breaking(const BondBreaking& breaking,
                                                       std::span<const double> d2min,
                                                       const Binning& binning) {
    const std::size_t n = breaking.fraction.size();
    if (d2min.size() != n || binning.bin.size() != n || breaking.bonds.size() != n ||
        breaking.broken.size() != n) {
        return fail(ErrorCode::kInvalidArgument,
                    "bond breaking of {} atoms, D2_min of {}, bins of {}: sizes differ", n,
                    d2min.size(), binning.bin.size());
    }
    const std::size_t n_bins = binning.size();
    std::vector<BondBreakingBin> bins(n_bins);
    std::vector<double> sum_d2(n_bins, 0.0);
    std::vector<double> sum_f(n_bins, 0.0);
    std::vector<double> sum_f2(n_bins, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
        const int b = binning.bin[i];
        if (b < 0 || !std::isfinite(breaking.fraction[i])) {
            continue;
        }
        const auto k = static_cast<std::size_t>(b);
        BondBreakingBin& bin = bins[k];
        ++bin.atoms;
        bin.bonds += static_cast<std::size_t>(breaking.bonds[i]);
        bin.broken += static_cast<std::size_t>(breaking.broken[i]);
        sum_d2[k] += d2min[i];
        sum_f[k] += breaking.fraction[i];
        sum_f2[k] += breaking.fraction[i] * breaking.fraction[i];
    }
    for (std::size_t k = 0; k < n_bins; ++k) {
        BondBreakingBin& bin = bins[k];
        bin.lower = binning.edges[k];
        bin.upper = binning.edges[k + 1];
        if (bin.atoms == 0) {
            continue;
        }
        const auto m = static_cast<double>(bin.atoms);
        bin.d2min_mean = sum_d2[k] / m;
        bin.fraction_mean = sum_f[k] / m;
        if (bin.atoms >= 2) {
            const double sample_variance =
                std::max(0.0, (sum_f2[k] - m * bin.fraction_mean * bin.fraction_mean) / (m - 1.0));
            const double p = (static_cast<double>(bin.broken) + kPseudoBroken) /
                             (static_cast<double>(bin.bonds) + kPseudoBonds);
            const double binomial = p * (1.0 - p) / static_cast<double>(bin.bonds);
            bin.fraction_variance = std::max(sample_variance / m, binomial);
        }
    }
    return bins;
}

Result<LinearFit> fit_line(std::span<const double> x, std::span<const double> y,
                           std::span<const double> variance) {
    if (x.size() != y.size() || x.size() != variance.size()) {
        return fail(ErrorCode::kInvalidArgument, "linear fit: {} x, {} y, {} variances", x.size(),
                    y.size(), variance.size());
    }
    double s = 0.0;
    double sx = 0.0;
    double sy = 0.0;
    std::size_t n = 0;
    const auto usable = [&](std::size_t k) {
        return std::isfinite(x[k]) && std::isfinite(y[k]) && std::isfinite(variance[k]) &&
               variance[k] > 0.0;
    };
    for (std::size_t k = 0; k < x.size(); ++k) {
        if (usable(k)) {
            const double w = 1.0 / variance[k];
            s += w;
            sx += w * x[k];
            sy += w * y[k];
            ++n;
        }
    }
    if (n < 2) {
        return fail(ErrorCode::kInvalidArgument,
                    "linear fit: {} usable points (finite, with a positive variance), need 2", n);
    }
    // Centred on the weighted mean of x, so that tiny or offset x values stay well conditioned.
    const double x_mean = sx / s;
    const double y_mean = sy / s;
    double suu = 0.0;
    double suy = 0.0;
    for (std::size_t k = 0; k < x.size(); ++k) {
        if (usable(k)) {
            const double w = 1.0 / variance[k];
            const double u = x[k] - x_mean;
            suu += w * u * u;
            suy += w * u * (y[k] - y_mean);
        }
    }
    if (!(suu > 0.0)) {
        return fail(ErrorCode::kInvalidArgument, "linear fit: every point has the same x");
    }
    LinearFit fit;
    fit.n_points = n;
    fit.slope = suy / suu;
    fit.intercept = y_mean - fit.slope * x_mean;
    fit.slope_stderr = std::sqrt(1.0 / suu);
    fit.intercept_stderr = std::sqrt(1.0 / s + x_mean * x_mean / suu);
    fit.covariance = -x_mean / suu;
    if (n > 2) {
        double chi2 = 0.0;
        for (std::size_t k = 0; k < x.size(); ++k) {
            if (usable(k)) {
                const double r = y[k] - fit.intercept - fit.slope * x[k];
                chi2 += r * r / variance[k];
            }
        }
        fit.reduced_chi2 = chi2 / static_cast<double>(n - 2);
    }
    return fit;
}

Result<LinearFit> fit_bond_breaking(const std::vector<BondBreakingBin>& bins) {
    std::vector<double> x;
    std::vector<double> y;
    std::vector<double> v;
    for (const BondBreakingBin& bin : bins) {
        x.push_back(bin.d2min_mean);
        y.push_back(bin.fraction_mean);
        v.push_back(bin.fraction_variance);
    }
    auto fit = fit_line(x, y, v);
    if (!fit) {
        return tl::unexpected(fit.error().with_context("bond-breaking fraction vs D2_min"));
    }
    return fit;
}

OrientationHistogram orientation_histogram(std::span<const Vec3> separations, const Vec3& axis,
                                           std::size_t n_bins) {
    assert(n_bins > 0 && "at least one phi bin");
    const double axis_norm = norm(axis);
    const Vec3 n{axis[0] / axis_norm, axis[1] / axis_norm, axis[2] / axis_norm};
    OrientationHistogram h;
    const double width_deg = kRightAngleDeg / static_cast<double>(n_bins);
    h.phi_edges_deg.resize(n_bins + 1);
    h.phi_deg.resize(n_bins);
    for (std::size_t k = 0; k <= n_bins; ++k) {
        h.phi_edges_deg[k] = width_deg * static_cast<double>(k);
    }
    h.phi_edges_deg.back() = kRightAngleDeg;
    for (std::size_t k = 0; k < n_bins; ++k) {
        h.phi_deg[k] = 0.5 * (h.phi_edges_deg[k] + h.phi_edges_deg[k + 1]);
    }
    h.counts.assign(n_bins, 0);
    for (const Vec3& d : separations) {
        const double r = norm(d);
        if (!(r > 0.0)) {
            continue;
        }
        const double c = std::min(1.0, std::abs(d[0] * n[0] + d[1] * n[1] + d[2] * n[2]) / r);
        const double phi_deg = std::acos(c) * kDegPerRad;
        const auto k = std::min(static_cast<std::size_t>(phi_deg / width_deg), n_bins - 1);
        ++h.counts[k];
        ++h.total;
    }
    h.p.assign(n_bins, 0.0);
    h.p_variance.assign(n_bins, 0.0);
    if (h.total == 0) {
        return h;
    }
    const auto total = static_cast<double>(h.total);
    for (std::size_t k = 0; k < n_bins; ++k) {
        // Fraction of the sphere in the folded bin: both hemispheres, 2 x 2 pi (cos a - cos b)
        // over 4 pi.
        const double solid = std::cos(h.phi_edges_deg[k] / kDegPerRad) -
                             std::cos(h.phi_edges_deg[k + 1] / kDegPerRad);
        const double scale = 1.0 / (total * solid);
        h.p[k] = static_cast<double>(h.counts[k]) * scale;
        h.p_variance[k] = static_cast<double>(h.counts[k]) * scale * scale;
    }
    return h;
}

Result<BondOrientationChange> bond_orientation_change(const Box& reference_box,
                                                      std::span<const Vec3> reference,
                                                      const Box& deformed_box,
                                                      std::span<const Vec3> deformed,
                                                      std::span<const int> types,
                                                      const BondOrientationOptions& options) {
    if (reference.size() != deformed.size()) {
        return fail(ErrorCode::kInvalidArgument,
                    "reference has {} atoms, deformed configuration {}: bond orientation needs "
                    "the same atoms in both",
                    reference.size(), deformed.size());
    }
    auto axis = unit_axis(options.loading_axis);
    if (!axis) {
        return tl::unexpected(axis.error());
    }
    if (options.n_bins == 0) {
        return fail(ErrorCode::kInvalidArgument, "number of phi bins must be positive");
    }
    if (!options.type_pairs.empty() && types.size() != reference.size()) {
        return fail(ErrorCode::kInvalidArgument,
                    "bond types selected but {} atom types given for {} atoms", types.size(),
                    reference.size());
    }
    auto all_reference = find_bonds(reference_box, reference, options.cutoff);
    if (!all_reference) {
        return tl::unexpected(all_reference.error().with_context("reference configuration"));
    }
    const Bonds ref_bonds = select_types(*all_reference, types, options.type_pairs);
    std::vector<Vec3> def_separations;
    if (options.bond_set == BondSet::kTracked) {
        auto followed = follow_bonds(reference_box, ref_bonds, deformed_box, deformed);
        if (!followed) {
            return tl::unexpected(followed.error());
        }
        def_separations = std::move(*followed);
    } else {
        auto all_deformed = find_bonds(deformed_box, deformed, options.cutoff);
        if (!all_deformed) {
            return tl::unexpected(all_deformed.error().with_context("deformed configuration"));
        }
        def_separations = select_types(*all_deformed, types, options.type_pairs).separation;
    }
    BondOrientationChange out;
    out.reference = orientation_histogram(ref_bonds.separation, *axis, options.n_bins);
    out.deformed = orientation_histogram(def_separations, *axis, options.n_bins);
    out.delta_p.resize(options.n_bins);
    out.delta_p_variance.resize(options.n_bins);
    for (std::size_t k = 0; k < options.n_bins; ++k) {
        out.delta_p[k] = out.deformed.p[k] - out.reference.p[k];
        out.delta_p_variance[k] = out.deformed.p_variance[k] + out.reference.p_variance[k];
    }
    return out;
}

}  // namespace anisoflow::atomistic
