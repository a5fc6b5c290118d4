// Structure factor of a periodic configuration on its reciprocal lattice, and its P0/P2 fit per
// |Q| bin (SPEC 4). For reduced coordinates s = H^-1 (x - origin) and Q = 2 pi H^-T n,
// Q.x = 2 pi n.s (+ a phase from the origin that |rho|^2 drops), so rho(n) = sum_j exp(-2 pi i
// n.s_j) is a 3-D Fourier series over the unit cube of s: an FFT over reduced coordinates serves
// orthogonal and triclinic boxes alike. Derivations and the aliasing bound:
// docs/atomistic-diffraction.md.

#include "anisoflow/atomistic/diffraction.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <memory>
#include <mutex>
#include <numbers>

#include <fftw3.h>

#include "anisoflow/physics/fftw_planner.hpp"

namespace anisoflow::atomistic {
namespace {

const double kSqrt5 = std::sqrt(5.0);
constexpr int kMinSplineOrder = 4;
constexpr int kMaxSplineOrder = 12;
// A bin's directions must separate P0 from P2: det(X^T X) / (n sum x^2) above this (1 for
// directions that sample P2 symmetrically about its mean, 0 when every point has one psi).
constexpr double kMinDesignSpread = 1e-6;

// FFTW's planner is not thread-safe: every plan of this module is made and destroyed under the
// process' one planner mutex, which lib/physics' transforms hold too.
std::mutex& planner_mutex() { return physics::fftw_planner_mutex(); }

struct PlanDestroy {
    void operator()(fftw_plan_s* plan) const {
        const std::lock_guard lock(planner_mutex());
        fftw_destroy_plan(plan);
    }
};
using FftwPlan = std::unique_ptr<fftw_plan_s, PlanDestroy>;

struct Checked {
    Vec3 axis{};
    std::array<double, 3> edge_length{};  // |a|, |b|, |c|
    std::array<int, 3> n_max{};           // largest |n_k| inside the q_max sphere
    Mat3 q_of_n{};                        // Q = q_of_n n = 2 pi H^-T n, row-major
};

Result<Checked> check(const Box& box, std::span<const Vec3> positions,
                      const DiffractionOptions& o) {
    if (positions.empty()) {
        return fail(ErrorCode::kInvalidArgument, "diffraction of no atoms");
    }
    if (!(o.q_max > 0.0) || !std::isfinite(o.q_max)) {
        return fail(ErrorCode::kInvalidArgument, "diffraction: q_max {} is not positive", o.q_max);
    }
    if (!(o.q_bin_width > 0.0) || !(o.q_bin_width < o.q_max)) {
        return fail(ErrorCode::kInvalidArgument,
                    "diffraction: Q bin width {} must satisfy 0 < width < q_max {}", o.q_bin_width,
                    o.q_max);
    }
    if (o.method == DiffractionMethod::kFft) {
        if (o.spline_order < kMinSplineOrder || o.spline_order > kMaxSplineOrder ||
            o.spline_order % 2 != 0) {
            return fail(ErrorCode::kInvalidArgument,
                        "diffraction: B-spline order {} is not even in [{}, {}]", o.spline_order,
                        kMinSplineOrder, kMaxSplineOrder);
        }
        if (!(o.oversampling > 1.0) || !std::isfinite(o.oversampling)) {
            return fail(ErrorCode::kInvalidArgument,
                        "diffraction: oversampling {} is not above 1 (at 1 the grid edge aliases "
                        "fully)",
                        o.oversampling);
        }
        if (o.max_grid < 2 * static_cast<std::size_t>(o.spline_order)) {
            return fail(ErrorCode::kInvalidArgument,
                        "diffraction: max_grid {} is below twice the spline order {}", o.max_grid,
                        o.spline_order);
        }
    }
    const Vec3& a = o.loading_axis;
    const double norm = std::sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]);
    if (!(norm > 0.0) || !std::isfinite(norm)) {
        return fail(ErrorCode::kInvalidArgument, "loading axis is not a non-zero vector");
    }
    Checked c;
    c.axis = {a[0] / norm, a[1] / norm, a[2] / norm};
    const Mat3& h = box.edges();
    // H^-T: columns of H^-1 as rows. Box::reduced_separation applies H^-1; its images of the
    // unit vectors are the columns of H^-1.
    for (std::size_t col = 0; col < 3; ++col) {
        Vec3 e{};
        e[col] = 1.0;
        const Vec3 h_inv_col = box.reduced_separation(e);
        for (std::size_t row = 0; row < 3; ++row) {
            // (H^-T)[col][row] = (H^-1)[row][col]
            c.q_of_n[3 * col + row] = 2.0 * std::numbers::pi * h_inv_col[row];
        }
        // n_k = a_k . Q / (2 pi), a_k the k-th edge (column k of H).
        c.edge_length[col] =
            std::sqrt(h[col] * h[col] + h[3 + col] * h[3 + col] + h[6 + col] * h[6 + col]);
        c.n_max[col] = static_cast<int>(
            std::floor(o.q_max * c.edge_length[col] / (2.0 * std::numbers::pi) + 1e-9));
    }
    if (c.n_max[0] + c.n_max[1] + c.n_max[2] == 0) {
        return fail(ErrorCode::kInvalidArgument,
                    "diffraction: no reciprocal-lattice point within q_max {} of a box of edges "
                    "{:.4g}, {:.4g}, {:.4g} (the smallest |Q| is about 2 pi / edge)",
                    o.q_max, c.edge_length[0], c.edge_length[1], c.edge_length[2]);
    }
    return c;
}

Vec3 q_vector(const Checked& c, int n0, int n1, int n2) {
    const double a = n0;
    const double b = n1;
    const double d = n2;
    const Mat3& m = c.q_of_n;
    return {m[0] * a + m[1] * b + m[2] * d, m[3] * a + m[4] * b + m[5] * d,
            m[6] * a + m[7] * b + m[8] * d};
}

// One of each +-n: the half space n2 > 0, or n2 = 0 and n1 > 0, or n2 = n1 = 0 and n0 > 0.
bool in_half_space(int n0, int n1, int n2) {
    return n2 > 0 || (n2 == 0 && (n1 > 0 || (n1 == 0 && n0 > 0)));
}

LatticeIntensity make_point(const Checked& c, std::array<int, 3> n, double s, int fold) {
    LatticeIntensity p;
    p.n = n;
    p.q = q_vector(c, n[0], n[1], n[2]);
    p.s = s;
    p.fold = fold;
    const double q = std::sqrt(p.q[0] * p.q[0] + p.q[1] * p.q[1] + p.q[2] * p.q[2]);
    p.cos_psi = (p.q[0] * c.axis[0] + p.q[1] * c.axis[1] + p.q[2] * c.axis[2]) / q;
    return p;
}

double norm2(const Vec3& q) { return q[0] * q[0] + q[1] * q[1] + q[2] * q[2]; }

// Reduced coordinates wrapped into [0, 1).
std::vector<Vec3> reduced_positions(const Box& box, std::span<const Vec3> positions) {
    std::vector<Vec3> s(positions.size());
    for (std::size_t i = 0; i < positions.size(); ++i) {
        s[i] = box.to_reduced(positions[i]);
        for (double& v : s[i]) {
            v -= std::floor(v);
            if (v >= 1.0) {  // -tiny wraps to 1.0 in floating point
                v = 0.0;
            }
        }
    }
    return s;
}

std::vector<LatticeIntensity> direct_sums(const Checked& c, std::span<const Vec3> reduced,
                                          double q_max) {
    const double q_max2 = q_max * q_max;
    std::vector<std::array<int, 3>> ns;
    for (int n2 = 0; n2 <= c.n_max[2]; ++n2) {
        for (int n1 = -c.n_max[1]; n1 <= c.n_max[1]; ++n1) {
            for (int n0 = -c.n_max[0]; n0 <= c.n_max[0]; ++n0) {
                if (in_half_space(n0, n1, n2) && norm2(q_vector(c, n0, n1, n2)) <= q_max2) {
                    ns.push_back({n0, n1, n2});
                }
            }
        }
    }
    std::vector<std::complex<double>> rho(ns.size());
    // Table positions n_k + n_max_k of each point.
    std::vector<std::array<std::size_t, 3>> offset(ns.size());
    for (std::size_t i = 0; i < ns.size(); ++i) {
        for (std::size_t k = 0; k < 3; ++k) {
            const int position = ns[i][k] + c.n_max[k];  // >= 0
            offset[i][k] = static_cast<std::size_t>(position);
        }
    }
    // exp(-2 pi i n s) for n in [-n_max, n_max] per axis, by one sincos per atom and axis and
    // powers (rounding grows ~n eps: 1e-14 at n = 100).
    std::array<std::vector<std::complex<double>>, 3> table;
    for (std::size_t k = 0; k < 3; ++k) {
        table[k].resize(2 * static_cast<std::size_t>(c.n_max[k]) + 1);
    }
    for (const Vec3& s : reduced) {
        for (std::size_t k = 0; k < 3; ++k) {
            const auto nk = static_cast<std::size_t>(c.n_max[k]);
            const std::complex<double> step = std::polar(1.0, -2.0 * std::numbers::pi * s[k]);
            table[k][nk] = 1.0;
            std::complex<double> up = 1.0;
            for (std::size_t m = 1; m <= nk; ++m) {
                up *= step;
                table[k][nk + m] = up;
                table[k][nk - m] = std::conj(up);
            }
        }
        for (std::size_t i = 0; i < ns.size(); ++i) {
            const auto& t = offset[i];
            rho[i] += table[0][t[0]] * table[1][t[1]] * table[2][t[2]];
        }
    }
    const double inv_n = 1.0 / static_cast<double>(reduced.size());
    std::vector<LatticeIntensity> out;
    out.reserve(ns.size());
    for (std::size_t i = 0; i < ns.size(); ++i) {
        out.push_back(make_point(c, ns[i], std::norm(rho[i]) * inv_n, 1));
    }
    return out;
}

// Smallest even m >= n whose prime factors are 2, 3 and 5 (fast FFTW sizes).
std::size_t good_fft_size(std::size_t n) {
    for (std::size_t m = std::max<std::size_t>(n + (n % 2), 2);; m += 2) {
        std::size_t r = m;
        for (const std::size_t p : {2U, 3U, 5U}) {
            while (r % p == 0) {
                r /= p;
            }
        }
        if (r == 1) {
            return m;
        }
    }
}

// Values M_p(w + i), i = 0 .. p - 1, of the cardinal B-spline of order p (support [0, p]) for
// w in [0, 1), by M_n(x) = [x M_{n-1}(x) + (n - x) M_{n-1}(x - 1)] / (n - 1), M_1 = 1 on [0, 1).
void bspline_weights(double w, int p, double* out) {
    out[0] = 1.0;
    for (int n = 2; n <= p; ++n) {
        const double inv = 1.0 / static_cast<double>(n - 1);
        // Descending i so that out[i - 1] is still M_{n-1} when M_n(w + i) is formed.
        out[n - 1] = (static_cast<double>(n) - w - (n - 1)) * out[n - 2] * inv;
        for (int i = n - 2; i >= 1; --i) {
            const double x = w + i;
            out[i] = (x * out[i] + (static_cast<double>(n) - x) * out[i - 1]) * inv;
        }
        out[0] = w * out[0] * inv;
    }
}

// sinc(pi xi)^p: the Fourier transform of the centred cardinal B-spline at xi cycles per cell.
double spline_transform(double xi, int p) {
    if (xi == 0.0) {
        return 1.0;
    }
    const double x = std::numbers::pi * xi;
    return std::pow(std::sin(x) / x, p);
}

class FftGrid {
  public:
    // Error when the grid cannot be allocated or planned (a --md-grid too large for memory).
    static Result<FftGrid> create(std::array<std::size_t, 3> m, int order) {
        FftGrid grid(m, order);
        const std::size_t mc = m[2] / 2 + 1;
        grid.real_.reset(fftw_alloc_real(m[0] * m[1] * m[2]));
        grid.spectrum_.reset(fftw_alloc_complex(m[0] * m[1] * mc));
        if (grid.real_ != nullptr && grid.spectrum_ != nullptr) {
            const std::lock_guard lock(planner_mutex());
            grid.plan_.reset(fftw_plan_dft_r2c_3d(static_cast<int>(m[0]), static_cast<int>(m[1]),
                                                  static_cast<int>(m[2]), grid.real_.get(),
                                                  grid.spectrum_.get(), FFTW_ESTIMATE));
        }
        if (grid.plan_ == nullptr) {
            return fail(ErrorCode::kInvalidArgument,
                        "diffraction: cannot allocate or plan an FFT grid of {} x {} x {} ({} MB)",
                        m[0], m[1], m[2], 16 * m[0] * m[1] * m[2] / 1000000);
        }
        return grid;
    }

    // Spreads the atoms, folded by k (s -> frac(k s)), and transforms: spectrum(m) = sum_j
    // W(m) exp(-2 pi i m.frac(k s_j)) + aliases = W(m) rho(k m) + aliases.
    void transform(std::span<const Vec3> reduced, int fold) {
        const std::size_t total = m_[0] * m_[1] * m_[2];
        std::fill(real_.get(), real_.get() + total, 0.0);
        std::array<std::array<double, kMaxSplineOrder>, 3> w{};
        std::array<std::array<std::size_t, kMaxSplineOrder>, 3> index{};
        const auto p = static_cast<std::size_t>(order_);
        for (const Vec3& s : reduced) {
            for (std::size_t k = 0; k < 3; ++k) {
                double f = s[k] * fold;
                f -= std::floor(f);
                const double u = f * static_cast<double>(m_[k]);
                const double cell = std::floor(u);
                bspline_weights(u - cell, order_, w[k].data());
                // Weight M_p(w + i) belongs to grid point floor(u) + p/2 - i (centred spline).
                const auto base = static_cast<long>(cell) + static_cast<long>(p / 2);
                const auto mk = static_cast<long>(m_[k]);
                for (std::size_t i = 0; i < p; ++i) {
                    index[k][i] =
                        static_cast<std::size_t>(((base - static_cast<long>(i)) % mk + mk) % mk);
                }
            }
            for (std::size_t i0 = 0; i0 < p; ++i0) {
                for (std::size_t i1 = 0; i1 < p; ++i1) {
                    const double w01 = w[0][i0] * w[1][i1];
                    double* row = real_.get() + (index[0][i0] * m_[1] + index[1][i1]) * m_[2];
                    for (std::size_t i2 = 0; i2 < p; ++i2) {
                        row[index[2][i2]] += w01 * w[2][i2];
                    }
                }
            }
        }
        fftw_execute(plan_.get());
    }

    // rho(k m) ~ spectrum(m) / W(m), for m2 >= 0 and |m_k| < M_k / 2.
    [[nodiscard]] std::complex<double> deconvolved(int m0, int m1, int m2) const {
        const std::size_t mc = m_[2] / 2 + 1;
        const auto wrap = [](int v, std::size_t mk) {
            return static_cast<std::size_t>(v < 0 ? v + static_cast<int>(mk) : v);
        };
        const fftw_complex& z = spectrum_.get()[(wrap(m0, m_[0]) * m_[1] + wrap(m1, m_[1])) * mc +
                                                static_cast<std::size_t>(m2)];
        const double w = spline_transform(m0 / static_cast<double>(m_[0]), order_) *
                         spline_transform(m1 / static_cast<double>(m_[1]), order_) *
                         spline_transform(m2 / static_cast<double>(m_[2]), order_);
        return {z[0] / w, z[1] / w};
    }

  private:
    FftGrid(std::array<std::size_t, 3> m, int order) : m_(m), order_(order) {}

    struct FreeReal {
        void operator()(double* p) const { fftw_free(p); }
    };
    struct FreeComplex {
        void operator()(fftw_complex* p) const { fftw_free(p); }
    };
    std::array<std::size_t, 3> m_;
    int order_;
    std::unique_ptr<double, FreeReal> real_;
    std::unique_ptr<fftw_complex, FreeComplex> spectrum_;
    FftwPlan plan_;
};

Result<std::vector<LatticeIntensity>> fft_sums(const Checked& c, std::span<const Vec3> reduced,
                                               const DiffractionOptions& o) {
    // Per axis: a grid of M points resolves |m| <= u = M / (2 oversampling) with aliases
    // suppressed to (u / (M - u))^p; beyond the sphere the grids reach, fold by 2, 4, ...
    std::array<std::size_t, 3> m{};
    std::array<int, 3> reach{};
    double q_reach = std::numeric_limits<double>::infinity();
    for (std::size_t k = 0; k < 3; ++k) {
        const auto wanted =
            static_cast<std::size_t>(std::ceil(2.0 * o.oversampling * std::max(c.n_max[k], 1)));
        m[k] =
            std::min(o.max_grid - o.max_grid % 2,
                     good_fft_size(std::max(wanted, 2 * static_cast<std::size_t>(o.spline_order))));
        // Below M / 2, so that +-m are distinct grid frequencies.
        reach[k] = std::min(
            static_cast<int>(std::floor(static_cast<double>(m[k]) / (2.0 * o.oversampling))),
            static_cast<int>(m[k] / 2) - 1);
        if (reach[k] < 1) {
            return fail(ErrorCode::kInvalidArgument,
                        "diffraction: a grid of {} points at oversampling {} reaches no lattice "
                        "point",
                        m[k], o.oversampling);
        }
        q_reach = std::min(q_reach, 2.0 * std::numbers::pi * reach[k] / c.edge_length[k]);
    }
    const double inv_n = 1.0 / static_cast<double>(reduced.size());
    auto created = FftGrid::create(m, o.spline_order);
    if (!created) {
        return tl::unexpected(created.error());
    }
    FftGrid& grid = *created;
    std::vector<LatticeIntensity> out;
    double q_done = 0.0;  // points with |Q| <= q_done came from a finer grid
    for (int fold = 1; q_done < o.q_max; fold *= 2) {
        const double q_hi = std::min(o.q_max, q_reach * fold);
        grid.transform(reduced, fold);
        const double lo2 = q_done * q_done;
        const double hi2 = q_hi * q_hi;
        for (int m2 = 0; m2 <= reach[2]; ++m2) {
            for (int m1 = -reach[1]; m1 <= reach[1]; ++m1) {
                for (int m0 = -reach[0]; m0 <= reach[0]; ++m0) {
                    if (!in_half_space(m0, m1, m2)) {
                        continue;
                    }
                    const double q2 = norm2(q_vector(c, fold * m0, fold * m1, fold * m2));
                    if (q2 <= lo2 || q2 > hi2) {
                        continue;
                    }
                    const std::complex<double> rho = grid.deconvolved(m0, m1, m2);
                    out.push_back(make_point(c, {fold * m0, fold * m1, fold * m2},
                                             std::norm(rho) * inv_n, fold));
                }
            }
        }
        q_done = q_hi;
    }
    return out;
}

}  // namespace

Result<std::vector<LatticeIntensity>> lattice_structure_factor(const Box& box,
                                                               std::span<const Vec3> positions,
                                                               const DiffractionOptions& options) {
    auto checked = check(box, positions, options);
    if (!checked) {
        return tl::unexpected(checked.error());
    }
    const std::vector<Vec3> reduced = reduced_positions(box, positions);
    std::vector<LatticeIntensity> points;
    if (options.method == DiffractionMethod::kDirect) {
        points = direct_sums(*checked, reduced, options.q_max);
    } else {
        auto fft = fft_sums(*checked, reduced, options);
        if (!fft) {
            return tl::unexpected(fft.error());
        }
        points = std::move(*fft);
    }
    if (points.empty()) {
        return fail(ErrorCode::kInvalidArgument,
                    "diffraction: no reciprocal-lattice point within q_max {}", options.q_max);
    }
    return points;
}

StructureFactor project_harmonics(std::span<const LatticeIntensity> points, std::size_t atoms,
                                  double number_density, const DiffractionOptions& options) {
    const double w = options.q_bin_width;
    const auto n_bins = static_cast<std::size_t>(std::floor(options.q_max / w + 1e-9));
    // Normal equations of S ~ b0 + b1 x, x = sqrt5 P2(cos psi), per bin.
    struct Sums {
        double n = 0, q = 0, x = 0, xx = 0, y = 0, xy = 0, yy = 0;
        int fold = 0;
    };
    std::vector<Sums> sums(n_bins);
    for (const LatticeIntensity& p : points) {
        const double q = std::sqrt(norm2(p.q));
        const auto bin = static_cast<std::size_t>(q / w);
        if (bin >= n_bins) {
            continue;
        }
        const double x = kSqrt5 * 0.5 * (3.0 * p.cos_psi * p.cos_psi - 1.0);
        Sums& s = sums[bin];
        s.n += 1.0;
        s.q += q;
        s.x += x;
        s.xx += x * x;
        s.y += p.s;
        s.xy += x * p.s;
        s.yy += p.s * p.s;
        s.fold = std::max(s.fold, p.fold);
    }
    StructureFactor out;
    out.atoms = atoms;
    out.number_density = number_density;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (physics::QCurve* c : {&out.s0, &out.s2}) {
        c->q_inv_angstrom.resize(n_bins);
        c->value.assign(n_bins, nan);
        c->variance.assign(n_bins, nan);
    }
    out.count.resize(n_bins);
    out.fold.resize(n_bins);
    for (std::size_t k = 0; k < n_bins; ++k) {
        const Sums& s = sums[k];
        out.count[k] = static_cast<std::size_t>(s.n);
        out.fold[k] = s.fold;
        const double centre = (static_cast<double>(k) + 0.5) * w;
        const double q = s.n > 0 ? s.q / s.n : centre;
        out.s0.q_inv_angstrom[k] = q;
        out.s2.q_inv_angstrom[k] = q;
        const double det = s.n * s.xx - s.x * s.x;
        if (out.count[k] < kMinPointsPerBin || !(det > kMinDesignSpread * s.n * s.xx)) {
            continue;
        }
        const double b0 = (s.xx * s.y - s.x * s.xy) / det;
        const double b1 = (s.n * s.xy - s.x * s.y) / det;
        const double rss = std::max(0.0, s.yy - b0 * s.y - b1 * s.xy);
        const double sigma2 = rss / (s.n - 2.0);
        out.s0.value[k] = b0;
        out.s2.value[k] = b1;
        out.s0.variance[k] = sigma2 * s.xx / det;
        out.s2.variance[k] = sigma2 * s.n / det;
    }
    return out;
}

Result<StructureFactor> structure_factor(const Box& box, std::span<const Vec3> positions,
                                         const DiffractionOptions& options) {
    auto points = lattice_structure_factor(box, positions, options);
    if (!points) {
        return tl::unexpected(points.error());
    }
    return project_harmonics(*points, positions.size(),
                             static_cast<double>(positions.size()) / box.volume(), options);
}

}  // namespace anisoflow::atomistic
