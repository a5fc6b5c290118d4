#include "anisoflow/geometry/detector_geometry.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

namespace anisoflow::geometry {

namespace {
// 1e-10 m per angstrom: Q comes out in 1/A from a wavelength in metres.
constexpr double kMetresPerAngstrom = 1e-10;
}  // namespace

DetectorGeometry::DetectorGeometry(const PoniGeometry& poni) : poni_(poni) {
    // pyFAI geometry.calc_pos_zyx: (t1, t2, t3) = M (p1, p2, L) with the rotation matrix below
    // (rotations about dim1, dim2 and the beam, applied in pyFAI's order).
    const double c1 = std::cos(poni.rot1_rad);
    const double c2 = std::cos(poni.rot2_rad);
    const double c3 = std::cos(poni.rot3_rad);
    const double s1 = std::sin(poni.rot1_rad);
    const double s2 = std::sin(poni.rot2_rad);
    const double s3 = std::sin(poni.rot3_rad);
    m11_ = c2 * c3;
    m12_ = c3 * s1 * s2 - c1 * s3;
    m13_ = -(c1 * c3 * s2 + s1 * s3);
    m21_ = c2 * s3;
    m22_ = c1 * c3 + s1 * s2 * s3;
    m23_ = -(-(c3 * s1) + c1 * s2 * s3);
    m31_ = s2;
    m32_ = -c2 * s1;
    m33_ = c1 * c2;
}

DetectorGeometry::LabPosition DetectorGeometry::lab_position(double d1, double d2) const {
    // pyFAI forms the pixel position and subtracts the PONI in float32 (Detector
    // calc_cartesian_positions works on float32 index arrays); reproduce that rounding
    // (docs/adr/0002-pyfai-float32-pixel-positions.md). Contraction into FMA is off in ISO C++
    // mode, so each float operation rounds as numpy's does.
    const float p1_f = static_cast<float>(d1) * static_cast<float>(poni_.detector.pixel1_m) -
                       static_cast<float>(poni_.poni1_m);
    const float p2_f = static_cast<float>(d2) * static_cast<float>(poni_.detector.pixel2_m) -
                       static_cast<float>(poni_.poni2_m);
    const double p1 = p1_f;
    const double p2 = p2_f;
    const double distance = poni_.distance_m;
    return LabPosition{m11_ * p1 + m12_ * p2 + m13_ * distance,
                       m21_ * p1 + m22_ * p2 + m23_ * distance,
                       m31_ * p1 + m32_ * p2 + m33_ * distance};
}

ScatteringAngles DetectorGeometry::angles_at(double d1, double d2) const {
    const LabPosition t = lab_position(d1, d2);
    return ScatteringAngles{std::atan2(std::sqrt(t.t1 * t.t1 + t.t2 * t.t2), t.t3),
                            std::atan2(t.t1, t.t2)};
}

double DetectorGeometry::solid_angle(std::size_t row, std::size_t col) const {
    const LabPosition t =
        lab_position(static_cast<double>(row) + 0.5, static_cast<double>(col) + 0.5);
    const double cos_incidence =
        poni_.distance_m / std::sqrt(t.t1 * t.t1 + t.t2 * t.t2 + t.t3 * t.t3);
    return cos_incidence * cos_incidence * cos_incidence;
}

double DetectorGeometry::q_inv_angstrom(double two_theta_rad) const {
    return 4.0 * std::numbers::pi * std::sin(0.5 * two_theta_rad) /
           (poni_.wavelength_m / kMetresPerAngstrom);
}

double DetectorGeometry::two_theta_rad(double q_inv_angstrom) const {
    const double sin_theta =
        q_inv_angstrom * (poni_.wavelength_m / kMetresPerAngstrom) / (4.0 * std::numbers::pi);
    if (sin_theta > 1.0 || sin_theta < -1.0) {
        return std::nan("");
    }
    return 2.0 * std::asin(sin_theta);
}

DetectorGeometry::QRange DetectorGeometry::pixel_q_range() const {
    QRange range{std::numeric_limits<double>::infinity(), 0.0};
    const FrameShape detector = shape();
    for (std::size_t row = 0; row < detector.rows; ++row) {
        for (std::size_t col = 0; col < detector.cols; ++col) {
            const double q = q_inv_angstrom(pixel_centre(row, col).two_theta_rad);
            range.min_inv_angstrom = std::min(range.min_inv_angstrom, q);
            range.max_inv_angstrom = std::max(range.max_inv_angstrom, q);
        }
    }
    return range;
}

double DetectorGeometry::full_ring_q_inv_angstrom() const {
    double q_min = std::numeric_limits<double>::infinity();
    const FrameShape detector = shape();
    const auto visit = [&](std::size_t row, std::size_t col) {
        q_min = std::min(q_min, q_inv_angstrom(pixel_centre(row, col).two_theta_rad));
    };
    for (std::size_t col = 0; col < detector.cols; ++col) {
        visit(0, col);
        visit(detector.rows - 1, col);
    }
    for (std::size_t row = 0; row < detector.rows; ++row) {
        visit(row, 0);
        visit(row, detector.cols - 1);
    }
    return q_min;
}

double DetectorGeometry::polarization(const ScatteringAngles& angles, double factor) {
    const double cos_2th = std::cos(angles.two_theta_rad);
    const double cos2_2th = cos_2th * cos_2th;
    return 0.5 * (1.0 + cos2_2th - factor * std::cos(2.0 * angles.chi_rad) * (1.0 - cos2_2th));
}

}  // namespace anisoflow::geometry
