#pragma once
// Per-pixel scattering angles, Q, solid angle and polarization exactly as pyFAI computes them
// (SPEC 1). pyFAI (0.21) forms pixel positions in float32 before the double-precision rotation;
// we reproduce that rounding, since it alone moves chi by up to 1.7e-6 rad near the PONI, above
// SPEC 1's 1e-6 rad tolerance (docs/adr/0002-pyfai-float32-pixel-positions.md).

#include <cstddef>

#include "anisoflow/geometry/poni.hpp"

namespace anisoflow::geometry {

/// Scattering direction of one point of the detector.
struct ScatteringAngles {
    double two_theta_rad = 0.0;
    double chi_rad = 0.0;  ///< pyFAI chi, in (-pi, pi]
};

/// A PONI geometry ready for per-pixel evaluation. Cheap to copy.
class DetectorGeometry {
  public:
    explicit DetectorGeometry(const PoniGeometry& poni);

    [[nodiscard]] const PoniGeometry& poni() const { return poni_; }
    [[nodiscard]] FrameShape shape() const { return poni_.detector.max_shape; }

    /// Angles at fractional detector coordinates (d1, d2) in pixel units along dim1/dim2:
    /// the centre of pixel (row, col) is (row + 0.5, col + 0.5), its corners are integers.
    [[nodiscard]] ScatteringAngles angles_at(double d1, double d2) const;
    [[nodiscard]] ScatteringAngles pixel_centre(std::size_t row, std::size_t col) const {
        return angles_at(static_cast<double>(row) + 0.5, static_cast<double>(col) + 0.5);
    }

    /// Solid angle of the pixel at (row, col) relative to a pixel at the PONI (pyFAI
    /// solidAngleArray): (distance / |sample-to-pixel|)^3.
    [[nodiscard]] double solid_angle(std::size_t row, std::size_t col) const;

    /// Q = 4 pi sin(2theta / 2) / lambda in 1/A.
    [[nodiscard]] double q_inv_angstrom(double two_theta_rad) const;
    /// Inverse of q_inv_angstrom(); NaN when Q exceeds 4 pi / lambda.
    [[nodiscard]] double two_theta_rad(double q_inv_angstrom) const;

    /// Smallest and largest Q (1/A) over all pixel centres: pyFAI's default radial range.
    struct QRange {
        double min_inv_angstrom;
        double max_inv_angstrom;
    };
    [[nodiscard]] QRange pixel_q_range() const;
    /// The largest Q (1/A) whose whole ring lies on the detector: the smallest Q over the edge
    /// pixels. Above it chi coverage is partial, which the harmonic extraction cannot use.
    [[nodiscard]] double full_ring_q_inv_angstrom() const;

    /// pyFAI polarization(factor, axis_offset=0): 0.5 (1 + cos^2 2th - f cos(2 chi) sin^2 2th).
    /// factor 0 is unpolarised, +1 fully polarised horizontally (the synchrotron case).
    [[nodiscard]] static double polarization(const ScatteringAngles& angles, double factor);

  private:
    struct LabPosition {
        double t1, t2, t3;  ///< pyFAI's lab frame: t3 along the beam
    };
    [[nodiscard]] LabPosition lab_position(double d1, double d2) const;

    PoniGeometry poni_;
    // Rotation matrix rows of pyFAI's calc_pos_zyx, precomputed once.
    double m11_, m12_, m13_, m21_, m22_, m23_, m31_, m32_, m33_;
};

}  // namespace anisoflow::geometry
