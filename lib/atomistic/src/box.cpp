// LAMMPS boxes: edge matrix H = [a b c], reduced coordinates and the minimum image.

#include "anisoflow/atomistic/box.hpp"

#include <cmath>

#include <Eigen/Dense>

namespace anisoflow::atomistic {
namespace {

using RowMat = Eigen::Matrix<double, 3, 3, Eigen::RowMajor>;

Vec3 mul(const Mat3& m, const Vec3& v) {
    return {m[0] * v[0] + m[1] * v[1] + m[2] * v[2], m[3] * v[0] + m[4] * v[1] + m[5] * v[2],
            m[6] * v[0] + m[7] * v[1] + m[8] * v[2]};
}

}  // namespace

Result<Box> Box::create(const Vec3& origin, const Vec3& lengths, double xy, double xz, double yz) {
    for (int k = 0; k < 3; ++k) {
        if (!(lengths[k] > 0.0) || !std::isfinite(lengths[k])) {
            return fail(ErrorCode::kInvalidArgument, "box length along {} is {}, not positive",
                        "xyz"[k], lengths[k]);
        }
        if (!std::isfinite(origin[k])) {
            return fail(ErrorCode::kInvalidArgument, "box origin along {} is not finite", "xyz"[k]);
        }
    }
    if (!std::isfinite(xy) || !std::isfinite(xz) || !std::isfinite(yz)) {
        return fail(ErrorCode::kInvalidArgument, "box tilt factors are not finite");
    }
    Box box;
    box.origin_ = origin;
    box.h_ = {lengths[0], xy, xz, 0.0, lengths[1], yz, 0.0, 0.0, lengths[2]};
    return box.deformed({1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0});
}

Box Box::deformed(const Mat3& m) const {
    const Eigen::Map<const RowMat> mm(m.data());
    const Eigen::Map<const RowMat> h(h_.data());
    Box out;
    out.origin_ = origin_;
    Eigen::Map<RowMat>(out.h_.data()) = mm * h;
    const Eigen::Map<const RowMat> nh(out.h_.data());
    Eigen::Map<RowMat>(out.h_inv_.data()) = nh.inverse();
    out.volume_ = nh.determinant();
    return out;
}

bool Box::triclinic() const {
    return h_[1] != 0.0 || h_[2] != 0.0 || h_[3] != 0.0 || h_[5] != 0.0 || h_[6] != 0.0 ||
           h_[7] != 0.0;
}

Vec3 Box::perpendicular_widths() const {
    // Row k of H^-1 is the reciprocal vector of face pair k; its length is 1 / width.
    Vec3 w{};
    for (std::size_t k = 0; k < 3; ++k) {
        const double* row = &h_inv_[3 * k];
        w[k] = 1.0 / std::sqrt(row[0] * row[0] + row[1] * row[1] + row[2] * row[2]);
    }
    return w;
}

Vec3 Box::to_reduced(const Vec3& position) const {
    return mul(h_inv_,
               {position[0] - origin_[0], position[1] - origin_[1], position[2] - origin_[2]});
}

Vec3 Box::from_reduced(const Vec3& s) const {
    const Vec3 d = mul(h_, s);
    return {d[0] + origin_[0], d[1] + origin_[1], d[2] + origin_[2]};
}

Vec3 Box::reduced_separation(const Vec3& d) const { return mul(h_inv_, d); }

Vec3 Box::minimum_image(const Vec3& d) const {
    Vec3 s = mul(h_inv_, d);
    for (double& v : s) {
        v -= std::round(v);
    }
    return mul(h_, s);
}

}  // namespace anisoflow::atomistic
