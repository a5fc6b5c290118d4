// D2_min (Falk & Langer 1998, eqs. 2.11-2.14): for atom i with reference neighbours j,
// X = sum_j d'_ij d_ij^T, Y = sum_j d_ij d_ij^T, J = X Y^-1, D2_min = sum_j |d'_ij - J d_ij|^2.

#include "anisoflow/atomistic/d2min.hpp"

#include <cmath>
#include <limits>

#include <Eigen/Dense>

#include "anisoflow/atomistic/cell_list.hpp"

namespace anisoflow::atomistic {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Y is singular (neighbours in a plane or a line) when its smallest eigenvalue is below this
// fraction of its largest: J would then be fitted to noise of the rounding.
constexpr double kMinConditionRatio = 1e-10;

}  // namespace

Result<D2MinResult> compute_d2min(const Box& reference_box, std::span<const Vec3> reference,
                                  const Box& deformed_box, std::span<const Vec3> deformed,
                                  const D2MinOptions& options) {
    if (reference.size() != deformed.size()) {
        return fail(ErrorCode::kInvalidArgument,
                    "reference has {} atoms, deformed configuration {}: D2_min needs the same "
                    "atoms in both",
                    reference.size(), deformed.size());
    }
    auto cells = CellList::build(reference_box, reference, options.cutoff);
    if (!cells) {
        return tl::unexpected(cells.error().with_context("D2_min"));
    }
    const std::size_t n = reference.size();
    // Deformed positions in reduced coordinates of the deformed box (not wrapped: the image is
    // chosen per pair below).
    std::vector<Vec3> s_def(n);
    for (std::size_t i = 0; i < n; ++i) {
        s_def[i] = deformed_box.to_reduced(deformed[i]);
    }
    D2MinResult out;
    out.d2min.assign(n, kNaN);
    out.affine.assign(n, Mat3{kNaN, kNaN, kNaN, kNaN, kNaN, kNaN, kNaN, kNaN, kNaN});
    out.neighbour_count.assign(n, 0);
    std::vector<Eigen::Vector3d> d_ref;
    std::vector<Eigen::Vector3d> d_def;
    for (std::size_t i = 0; i < n; ++i) {
        d_ref.clear();
        d_def.clear();
        cells->for_each_neighbour(i, [&](std::size_t j, const Vec3& d, double /*r2*/) {
            // The deformed separation: the image of j whose reduced separation from i is closest
            // to the reference one (robust to wrapping and to a deformed box).
            const Vec3 ds_ref = reference_box.reduced_separation(d);
            Vec3 ds{};
            for (int k = 0; k < 3; ++k) {
                const double raw = s_def[j][k] - s_def[i][k];
                ds[k] = raw - std::round(raw - ds_ref[k]);
            }
            const Vec3 dd = deformed_box.cartesian_separation(ds);
            d_ref.emplace_back(d[0], d[1], d[2]);
            d_def.emplace_back(dd[0], dd[1], dd[2]);
        });
        out.neighbour_count[i] = static_cast<int>(d_ref.size());
        if (d_ref.size() < 3) {
            continue;
        }
        Eigen::Matrix3d x = Eigen::Matrix3d::Zero();
        Eigen::Matrix3d y = Eigen::Matrix3d::Zero();
        for (std::size_t m = 0; m < d_ref.size(); ++m) {
            x.noalias() += d_def[m] * d_ref[m].transpose();
            y.noalias() += d_ref[m] * d_ref[m].transpose();
        }
        const Eigen::SelfAdjointEigenSolver<Eigen::Matrix3d> eig(y, Eigen::EigenvaluesOnly);
        if (!(eig.eigenvalues()(0) > kMinConditionRatio * eig.eigenvalues()(2))) {
            continue;
        }
        // J = X Y^-1, i.e. J^T = Y^-1 X^T (Y symmetric positive definite).
        const Eigen::Matrix3d j_mat = y.llt().solve(x.transpose()).transpose();
        double d2 = 0.0;
        for (std::size_t m = 0; m < d_ref.size(); ++m) {
            d2 += (d_def[m] - j_mat * d_ref[m]).squaredNorm();
        }
        out.d2min[i] = d2;
        Mat3& a = out.affine[i];
        for (Eigen::Index r = 0; r < 3; ++r) {
            for (Eigen::Index c = 0; c < 3; ++c) {
                a[static_cast<std::size_t>(3 * r + c)] = j_mat(r, c);
            }
        }
    }
    return out;
}

}  // namespace anisoflow::atomistic
