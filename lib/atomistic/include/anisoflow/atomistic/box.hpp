#pragma once
// A periodic simulation cell as LAMMPS defines it (orthogonal or triclinic, docs/atomistic.md):
// edge vectors a = (lx, 0, 0), b = (xy, ly, 0), c = (xz, yz, lz) from the origin (xlo, ylo, zlo).

#include <array>

#include "anisoflow/core/result.hpp"

namespace anisoflow::atomistic {

/// A Cartesian vector or position, in the length unit of the dump (angstrom for metal units).
using Vec3 = std::array<double, 3>;
/// A 3x3 matrix, row-major: m[3 * row + col].
using Mat3 = std::array<double, 9>;

class Box {
  public:
    /// Validates lx, ly, lz > 0 and the tilts; errors name the offending value.
    static Result<Box> create(const Vec3& origin, const Vec3& lengths, double xy = 0.0,
                              double xz = 0.0, double yz = 0.0);
    /// The box whose edge matrix is m * H (an affine deformation of this box about its origin).
    [[nodiscard]] Box deformed(const Mat3& m) const;

    [[nodiscard]] const Vec3& origin() const { return origin_; }
    /// H: the edge vectors a, b, c as columns (upper triangular for a LAMMPS box).
    [[nodiscard]] const Mat3& edges() const { return h_; }
    /// Whether an edge matrix entry off the diagonal is non-zero.
    [[nodiscard]] bool triclinic() const;
    [[nodiscard]] double volume() const { return volume_; }
    /// Distances between opposite faces (equal to lx, ly, lz for an orthogonal box).
    [[nodiscard]] Vec3 perpendicular_widths() const;

    /// Reduced (fractional) coordinates s = H^-1 (x - origin); 0 <= s < 1 inside the box.
    [[nodiscard]] Vec3 to_reduced(const Vec3& position) const;
    [[nodiscard]] Vec3 from_reduced(const Vec3& s) const;
    /// H^-1 d for a separation d (no origin).
    [[nodiscard]] Vec3 reduced_separation(const Vec3& d) const;
    [[nodiscard]] Vec3 cartesian_separation(const Vec3& ds) const {
        return {h_[0] * ds[0] + h_[1] * ds[1] + h_[2] * ds[2],
                h_[3] * ds[0] + h_[4] * ds[1] + h_[5] * ds[2],
                h_[6] * ds[0] + h_[7] * ds[1] + h_[8] * ds[2]};
    }
    /// The periodic image of d with every reduced component in [-0.5, 0.5]: the minimum image for
    /// separations shorter than half the smallest perpendicular width.
    [[nodiscard]] Vec3 minimum_image(const Vec3& d) const;

  private:
    Vec3 origin_{};
    Mat3 h_{};
    Mat3 h_inv_{};
    double volume_ = 0.0;
};

}  // namespace anisoflow::atomistic
