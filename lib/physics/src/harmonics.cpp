// Harmonic extraction from cakes, SPEC 3-5 (see docs/physics-structure.md for the derivation of
// the weights and variances).

#include "anisoflow/physics/harmonics.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numbers>
#include <string>
#include <string_view>
#include <vector>

#include <Eigen/Dense>

namespace anisoflow::physics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kSqrt5 = std::sqrt(5.0);
// Two cakes share a layout when their Q ranges agree to this relative precision (they come from
// the same integrator configuration; this only absorbs text round trips of the range).
constexpr double kLayoutRelativeTolerance = 1e-9;

std::string describe(const reduce::CakeAxes& a) {
    return fmt::format("n_q={} n_chi={} q=[{}, {}] 1/A", a.n_q, a.n_chi, a.q_min_inv_angstrom,
                       a.q_max_inv_angstrom);
}

bool close(double a, double b) {
    return std::abs(a - b) <= kLayoutRelativeTolerance * std::max({1.0, std::abs(a), std::abs(b)});
}

Result<bool> check_options(const HarmonicsOptions& options) {
    if (!(options.wavelength_angstrom > 0.0) || !std::isfinite(options.wavelength_angstrom)) {
        return fail(ErrorCode::kInvalidArgument, "wavelength {} A must be positive and finite",
                    options.wavelength_angstrom);
    }
    if (!std::isfinite(options.loading_axis_chi_deg)) {
        return fail(ErrorCode::kInvalidArgument, "loading axis chi {} deg must be finite",
                    options.loading_axis_chi_deg);
    }
    return true;
}

// Checks that the arrays of a cake have the sizes its axes promise.
Result<bool> check_cake(const reduce::Cake& cake, std::string_view name) {
    const auto& a = cake.axes;
    const std::size_t cells = a.cell_count();
    if (a.n_q == 0 || a.n_chi == 0) {
        return fail(ErrorCode::kInvalidArgument, "{} cake is empty ({})", name, describe(a));
    }
    if (cake.q_inv_angstrom.size() != a.n_q || cake.chi_deg.size() != a.n_chi ||
        cake.intensity.size() != cells || cake.variance.size() != cells ||
        cake.count.size() != cells) {
        return fail(ErrorCode::kCorrupt,
                    "{} cake arrays do not match its layout ({}): q {}, chi {}, intensity {}, "
                    "variance {}, count {}",
                    name, describe(a), cake.q_inv_angstrom.size(), cake.chi_deg.size(),
                    cake.intensity.size(), cake.variance.size(), cake.count.size());
    }
    return true;
}

bool usable(const reduce::Cake& cake, std::size_t index) {
    return cake.count[index] > 0.0 && std::isfinite(cake.intensity[index]);
}

QCurve nan_curve(const std::vector<double>& q) {
    return QCurve{q, std::vector<double>(q.size(), kNaN), std::vector<double>(q.size(), kNaN)};
}

}  // namespace

double legendre_p2(double x) { return 0.5 * (3.0 * x * x - 1.0); }

double legendre_p4(double x) {
    const double x2 = x * x;
    return (35.0 * x2 * x2 - 30.0 * x2 + 3.0) / 8.0;
}

double cos_psi(double q_inv_angstrom, double chi_deg, double loading_axis_chi_deg,
               double wavelength_angstrom) {
    const double sin_theta = q_inv_angstrom * wavelength_angstrom / (4.0 * std::numbers::pi);
    if (!(sin_theta >= 0.0) || sin_theta > 1.0) {
        return kNaN;
    }
    const double cos_theta = std::sqrt(1.0 - sin_theta * sin_theta);
    const double delta = (chi_deg - loading_axis_chi_deg) * std::numbers::pi / 180.0;
    return cos_theta * std::cos(delta);
}

Result<Harmonics> extract_pn(const reduce::Cake& p, const reduce::Cake& n,
                             const HarmonicsOptions& options) {
    if (auto ok = check_options(options); !ok) {
        return tl::unexpected(ok.error());
    }
    if (auto ok = check_cake(p, "P"); !ok) {
        return tl::unexpected(ok.error());
    }
    if (auto ok = check_cake(n, "N"); !ok) {
        return tl::unexpected(ok.error());
    }
    if (p.axes.n_q != n.axes.n_q || p.axes.n_chi != n.axes.n_chi ||
        !close(p.axes.q_min_inv_angstrom, n.axes.q_min_inv_angstrom) ||
        !close(p.axes.q_max_inv_angstrom, n.axes.q_max_inv_angstrom)) {
        return fail(ErrorCode::kInvalidArgument, "P and N cakes differ in layout: P {}, N {}",
                    describe(p.axes), describe(n.axes));
    }

    const std::size_t n_q = p.axes.n_q;
    const std::size_t n_chi = p.axes.n_chi;
    const double chi_p = options.loading_axis_chi_deg;
    const double chi_n = options.loading_axis_chi_deg + 90.0;  // SPEC 3

    Harmonics out;
    out.i0 = nan_curve(p.q_inv_angstrom);
    out.a2 = nan_curve(p.q_inv_angstrom);
    out.reduced_chi2.assign(n_q, kNaN);
    out.n_cells.assign(n_q, 0);

    struct CellData {
        double d, m, x, s, var_p, var_n, w;
    };
    std::vector<CellData> cells;
    cells.reserve(n_chi);
    for (std::size_t iq = 0; iq < n_q; ++iq) {
        const double q = p.q_inv_angstrom[iq];
        cells.clear();
        for (std::size_t ic = 0; ic < n_chi; ++ic) {
            const std::size_t k = p.cell(ic, iq);
            if (!usable(p, k) || !usable(n, k)) {
                continue;
            }
            const double var_sum = p.variance[k] + n.variance[k];
            if (!(var_sum > 0.0) || !std::isfinite(var_sum)) {
                continue;
            }
            const double p2_p =
                legendre_p2(cos_psi(q, p.chi_deg[ic], chi_p, options.wavelength_angstrom));
            const double p2_n =
                legendre_p2(cos_psi(q, p.chi_deg[ic], chi_n, options.wavelength_angstrom));
            if (!std::isfinite(p2_p) || !std::isfinite(p2_n)) {
                continue;
            }
            cells.push_back(CellData{p.intensity[k] - n.intensity[k],
                                     0.5 * (p.intensity[k] + n.intensity[k]),
                                     kSqrt5 * (p2_p - p2_n), 0.5 * (p2_p + p2_n), p.variance[k],
                                     n.variance[k], 1.0 / var_sum});
        }
        out.n_cells[iq] = cells.size();
        if (cells.size() < kMinCellsPerBin) {
            continue;
        }
        // a2 = sum w x D / sum w x^2 (one-parameter weighted LSQ through the origin).
        double sxx = 0.0;
        double sxd = 0.0;
        double sw = 0.0;
        double swm = 0.0;
        double sws = 0.0;
        for (const CellData& c : cells) {
            sxx += c.w * c.x * c.x;
            sxd += c.w * c.x * c.d;
            sw += c.w;
            swm += c.w * c.m;
            sws += c.w * c.s;
        }
        if (!(sxx > 0.0)) {
            continue;  // no lever arm: every cell sits where P2(psi_P) = P2(psi_N)
        }
        const double a2 = sxd / sxx;
        const double mean_m = swm / sw;
        const double c_corr = kSqrt5 * sws / sw;  // sqrt(5) <[P2_P + P2_N]/2>
        const double i0 = mean_m - c_corr * a2;

        // I0 = M - c a2 is linear in the data: M = sum u_k m_k and a2 = sum v_k D_k with
        // u_k = w_k / sw, v_k = w_k x_k / sxx. P and N cells are independent, so
        // var(m_k) = (vP + vN)/4, var(D_k) = vP + vN and cov(m_k, D_k) = (vP - vN)/2.
        double var_m = 0.0;
        double var_a2 = 0.0;
        double cov_ma = 0.0;
        double chi2 = 0.0;
        for (const CellData& c : cells) {
            const double u = c.w / sw;
            const double v = c.w * c.x / sxx;
            var_m += u * u * 0.25 * (c.var_p + c.var_n);
            var_a2 += v * v * (c.var_p + c.var_n);
            cov_ma += u * v * 0.5 * (c.var_p - c.var_n);
            const double r = c.d - a2 * c.x;
            chi2 += c.w * r * r;
        }
        out.a2.value[iq] = a2;
        out.a2.variance[iq] = var_a2;
        out.i0.value[iq] = i0;
        out.i0.variance[iq] = var_m + c_corr * c_corr * var_a2 - 2.0 * c_corr * cov_ma;
        out.reduced_chi2[iq] = chi2 / static_cast<double>(cells.size() - 1);
    }
    return out;
}

Result<Harmonics> extract_single(const reduce::Cake& cake, const HarmonicsOptions& options) {
    if (auto ok = check_options(options); !ok) {
        return tl::unexpected(ok.error());
    }
    if (auto ok = check_cake(cake, "single"); !ok) {
        return tl::unexpected(ok.error());
    }
    const std::size_t n_q = cake.axes.n_q;
    const std::size_t n_chi = cake.axes.n_chi;
    const Eigen::Index n_par = options.fit_p4 ? 3 : 2;

    Harmonics out;
    out.i0 = nan_curve(cake.q_inv_angstrom);
    out.a2 = nan_curve(cake.q_inv_angstrom);
    if (options.fit_p4) {
        out.a4 = nan_curve(cake.q_inv_angstrom);
    }
    out.reduced_chi2.assign(n_q, kNaN);
    out.n_cells.assign(n_q, 0);

    struct Row {
        Eigen::Vector3d basis;
        double y, w;
    };
    std::vector<Row> rows;
    rows.reserve(n_chi);
    for (std::size_t iq = 0; iq < n_q; ++iq) {
        const double q = cake.q_inv_angstrom[iq];
        rows.clear();
        for (std::size_t ic = 0; ic < n_chi; ++ic) {
            const std::size_t k = cake.cell(ic, iq);
            const double var = cake.variance[k];
            if (!usable(cake, k) || !(var > 0.0) || !std::isfinite(var)) {
                continue;
            }
            const double c = cos_psi(q, cake.chi_deg[ic], options.loading_axis_chi_deg,
                                     options.wavelength_angstrom);
            if (!std::isfinite(c)) {
                continue;
            }
            rows.push_back(Row{Eigen::Vector3d(1.0, kSqrt5 * legendre_p2(c), 3.0 * legendre_p4(c)),
                               cake.intensity[k], 1.0 / var});
        }
        out.n_cells[iq] = rows.size();
        if (rows.size() < kMinCellsPerBin || rows.size() < static_cast<std::size_t>(n_par)) {
            continue;
        }
        Eigen::Matrix3d normal = Eigen::Matrix3d::Zero();
        Eigen::Vector3d rhs = Eigen::Vector3d::Zero();
        for (const Row& r : rows) {
            normal.noalias() += r.w * r.basis * r.basis.transpose();
            rhs += r.w * r.y * r.basis;
        }
        const Eigen::MatrixXd a = normal.topLeftCorner(n_par, n_par);
        const Eigen::FullPivLU<Eigen::MatrixXd> lu(a);
        if (!lu.isInvertible()) {
            continue;  // e.g. every usable cell at the same |cos psi|
        }
        const Eigen::MatrixXd covariance = lu.inverse();
        const Eigen::VectorXd beta = covariance * rhs.head(n_par);
        double chi2 = 0.0;
        for (const Row& r : rows) {
            const double res = r.y - r.basis.head(n_par).dot(beta);
            chi2 += r.w * res * res;
        }
        out.i0.value[iq] = beta(0);
        out.i0.variance[iq] = covariance(0, 0);
        out.a2.value[iq] = beta(1);
        out.a2.variance[iq] = covariance(1, 1);
        if (options.fit_p4) {
            out.a4.value[iq] = beta(2);
            out.a4.variance[iq] = covariance(2, 2);
        }
        const std::size_t dof = rows.size() - static_cast<std::size_t>(n_par);
        out.reduced_chi2[iq] = dof > 0 ? chi2 / static_cast<double>(dof) : kNaN;
    }
    return out;
}

}  // namespace anisoflow::physics
