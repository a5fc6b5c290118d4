// Pair histograms about the loading axis. SPEC 4: g(r, psi) = g0(r) + sqrt5 g2(r) P2(cos psi).
// Projecting on P2 over the sphere (int P2^2 dOmega / 4 pi = 1/5) gives
// g2(r) = (2l + 1) / sqrt5 * <g(r, psi) P2(cos psi)>_sphere = sqrt5 <g P2>, and in a histogram of
// ordered pairs around N_c centres: g0 = n(r) / (N_c rho0 V_shell), g2 = sqrt5 sum P2 / (same).

#include "anisoflow/atomistic/pair_distribution.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "anisoflow/atomistic/cell_list.hpp"

namespace anisoflow::atomistic {
namespace {

const double kSqrt5 = std::sqrt(5.0);
// Bin counts are of ordered pairs: each unordered pair is seen from both ends, so the Poisson
// variance of a count is twice the count when every atom is a centre.
constexpr double kOrderedPairVariance = 2.0;
// A rise of the smoothed g0 by this much above the running minimum ends the search for the first
// minimum (noise of a 20,000-atom histogram at 0.02 bins is ~0.01).
constexpr double kMinimumRise = 0.05;
constexpr std::size_t kSmoothHalfWidth = 2;  // 5-bin moving average

struct Checked {
    std::size_t n_bins = 0;
    Vec3 axis{};
    double rho0 = 0.0;
};

Result<Checked> check(const Box& box, std::span<const Vec3> positions,
                      const PairDistributionOptions& o) {
    if (!(o.bin_width > 0.0) || !(o.r_max > o.bin_width)) {
        return fail(ErrorCode::kInvalidArgument,
                    "pair distribution: bin width {} and r_max {} must satisfy 0 < bin < r_max",
                    o.bin_width, o.r_max);
    }
    const double norm =
        std::sqrt(o.loading_axis[0] * o.loading_axis[0] + o.loading_axis[1] * o.loading_axis[1] +
                  o.loading_axis[2] * o.loading_axis[2]);
    if (!(norm > 0.0) || !std::isfinite(norm)) {
        return fail(ErrorCode::kInvalidArgument, "loading axis is not a non-zero vector");
    }
    if (positions.empty()) {
        return fail(ErrorCode::kInvalidArgument, "pair distribution of no atoms");
    }
    Checked c;
    c.n_bins = static_cast<std::size_t>(std::floor(o.r_max / o.bin_width + 1e-9));
    c.axis = {o.loading_axis[0] / norm, o.loading_axis[1] / norm, o.loading_axis[2] / norm};
    c.rho0 = static_cast<double>(positions.size()) / box.volume();
    return c;
}

double shell_volume(std::size_t k, double h) {
    const double lo = static_cast<double>(k) * h;
    const double hi = lo + h;
    return 4.0 / 3.0 * std::numbers::pi * (hi * hi * hi - lo * lo * lo);
}

// Calls f(bin, p2) for every neighbour of atom i within r_max.
template <class F>
void histogram_atom(const CellList& cells, std::size_t i, const Vec3& axis, double h, F&& f) {
    const double inv_h = 1.0 / h;
    cells.for_each_neighbour(i, [&](std::size_t /*j*/, const Vec3& d, double r2) {
        const double r = std::sqrt(r2);
        if (r == 0.0) {
            return;
        }
        const double c = (d[0] * axis[0] + d[1] * axis[1] + d[2] * axis[2]) / r;
        f(static_cast<std::size_t>(r * inv_h), 0.5 * (3.0 * c * c - 1.0));
    });
}

}  // namespace

Result<std::vector<PairDistribution>> grouped_pair_distribution(
    const Box& box, std::span<const Vec3> positions, std::span<const int> group,
    std::size_t n_groups, const PairDistributionOptions& options) {
    auto checked = check(box, positions, options);
    if (!checked) {
        return tl::unexpected(checked.error());
    }
    if (group.size() != positions.size()) {
        return fail(ErrorCode::kInvalidArgument, "{} group labels for {} atoms", group.size(),
                    positions.size());
    }
    const std::size_t nb = checked->n_bins;
    const double h = options.bin_width;
    auto cells = CellList::build(box, positions, static_cast<double>(nb) * h);
    if (!cells) {
        return tl::unexpected(cells.error().with_context("pair distribution"));
    }
    std::vector<double> count(n_groups * nb, 0.0);
    std::vector<double> p2(n_groups * nb, 0.0);
    std::vector<double> p2sq(n_groups * nb, 0.0);
    std::vector<std::size_t> centres(n_groups, 0);
    for (std::size_t i = 0; i < positions.size(); ++i) {
        if (group[i] < 0) {
            continue;
        }
        const auto g = static_cast<std::size_t>(group[i]);
        if (g >= n_groups) {
            return fail(ErrorCode::kInvalidArgument, "atom {} is in group {}, of only {}", i,
                        group[i], n_groups);
        }
        ++centres[g];
        double* cg = &count[g * nb];
        double* pg = &p2[g * nb];
        double* qg = &p2sq[g * nb];
        histogram_atom(*cells, i, checked->axis, h, [&](std::size_t bin, double w) {
            if (bin < nb) {
                cg[bin] += 1.0;
                pg[bin] += w;
                qg[bin] += w * w;
            }
        });
    }
    std::vector<PairDistribution> out(n_groups);
    for (std::size_t g = 0; g < n_groups; ++g) {
        PairDistribution& pd = out[g];
        pd.atoms = centres[g];
        for (physics::RCurve* c : {&pd.g0, &pd.g2}) {
            c->r_angstrom.resize(nb);
            c->value.assign(nb, 0.0);
            c->variance.assign(nb, 0.0);
        }
        for (std::size_t k = 0; k < nb; ++k) {
            const double r = (static_cast<double>(k) + 0.5) * h;
            pd.g0.r_angstrom[k] = r;
            pd.g2.r_angstrom[k] = r;
            if (centres[g] == 0) {
                continue;
            }
            const double norm =
                1.0 / (static_cast<double>(centres[g]) * checked->rho0 * shell_volume(k, h));
            pd.g0.value[k] = count[g * nb + k] * norm;
            pd.g0.variance[k] = kOrderedPairVariance * count[g * nb + k] * norm * norm;
            pd.g2.value[k] = kSqrt5 * p2[g * nb + k] * norm;
            pd.g2.variance[k] = kOrderedPairVariance * 5.0 * p2sq[g * nb + k] * norm * norm;
        }
    }
    return out;
}

Result<PairDistribution> pair_distribution(const Box& box, std::span<const Vec3> positions,
                                           const PairDistributionOptions& options) {
    const std::vector<int> all(positions.size(), 0);
    auto groups = grouped_pair_distribution(box, positions, all, 1, options);
    if (!groups) {
        return tl::unexpected(groups.error());
    }
    return std::move(groups->front());
}

Result<PerAtomG2> per_atom_g2(const Box& box, std::span<const Vec3> positions,
                              const PairDistributionOptions& options) {
    auto checked = check(box, positions, options);
    if (!checked) {
        return tl::unexpected(checked.error());
    }
    const std::size_t nb = checked->n_bins;
    const double h = options.bin_width;
    auto cells = CellList::build(box, positions, static_cast<double>(nb) * h);
    if (!cells) {
        return tl::unexpected(cells.error().with_context("per-atom g2"));
    }
    PerAtomG2 out;
    out.atoms = positions.size();
    out.r.resize(nb);
    std::vector<double> scale(nb);
    for (std::size_t k = 0; k < nb; ++k) {
        out.r[k] = (static_cast<double>(k) + 0.5) * h;
        scale[k] = kSqrt5 / (checked->rho0 * shell_volume(k, h));
    }
    out.g2.assign(positions.size() * nb, 0.0F);
    std::vector<double> row(nb);
    for (std::size_t i = 0; i < positions.size(); ++i) {
        std::fill(row.begin(), row.end(), 0.0);
        histogram_atom(*cells, i, checked->axis, h, [&](std::size_t bin, double w) {
            if (bin < nb) {
                row[bin] += w;
            }
        });
        float* dst = &out.g2[i * nb];
        for (std::size_t k = 0; k < nb; ++k) {
            dst[k] = static_cast<float>(row[k] * scale[k]);
        }
    }
    return out;
}

Result<double> first_minimum(const physics::RCurve& g0) {
    const std::size_t n = g0.size();
    if (n < 2 * kSmoothHalfWidth + 3 || g0.value.size() != n) {
        return fail(ErrorCode::kInvalidArgument, "first minimum: g(r) has too few points ({})", n);
    }
    std::vector<double> s(n, 0.0);
    for (std::size_t k = 0; k < n; ++k) {
        const std::size_t lo = k >= kSmoothHalfWidth ? k - kSmoothHalfWidth : 0;
        const std::size_t hi = std::min(n - 1, k + kSmoothHalfWidth);
        double sum = 0.0;
        for (std::size_t m = lo; m <= hi; ++m) {
            sum += g0.value[m];
        }
        s[k] = sum / static_cast<double>(hi - lo + 1);
    }
    std::size_t k = 0;
    while (k < n && s[k] <= 1.0) {
        ++k;
    }
    if (k == n) {
        return fail(ErrorCode::kInvalidArgument, "first minimum: g(r) never exceeds 1 (no peak)");
    }
    std::size_t peak = k;
    while (k < n && s[k] > 1.0) {
        if (s[k] > s[peak]) {
            peak = k;
        }
        ++k;
    }
    std::size_t low = peak;
    for (k = peak; k < n; ++k) {
        if (s[k] < s[low]) {
            low = k;
        } else if (s[k] > s[low] + kMinimumRise) {
            return g0.r_angstrom[low];
        }
    }
    return fail(ErrorCode::kInvalidArgument,
                "first minimum: g(r) does not rise again after its first peak at r = {} (extend "
                "r_max or give the cutoff)",
                g0.r_angstrom[peak]);
}

}  // namespace anisoflow::atomistic
