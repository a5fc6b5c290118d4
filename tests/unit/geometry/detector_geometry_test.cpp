// Per-pixel geometry against pyFAI 0.21.3 (shared/reference/geometry/*.json, SPEC 1).

#include "anisoflow/geometry/detector_geometry.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numbers>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "anisoflow/geometry/poni.hpp"
#include "anisoflow/testing/test_paths.hpp"

namespace anisoflow::geometry {
namespace {

// SPEC 1 tolerances: 1e-6 rad for angles, 1e-6 relative for solid angle and polarization.
constexpr double kAngleToleranceRad = 1e-6;
constexpr double kRelativeTolerance = 1e-6;
// pyFAI stores the polarization array as float32: 1e-6 relative is still far above its 6e-8 ulp.
constexpr double kPolarizationFactor = 0.99;

std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

double angle_difference(double a, double b) {
    // chi is periodic: compare on the circle so that -pi and pi agree.
    return std::abs(std::remainder(a - b, 2.0 * std::numbers::pi));
}

class PyfaiGeometryReference : public ::testing::TestWithParam<std::string> {};

TEST_P(PyfaiGeometryReference, EveryPointMatchesPyfaiWithinSpecTolerance) {
    const auto dir = testing::reference_dir() / "geometry";
    const auto reference = nlohmann::json::parse(read_text(dir / (GetParam() + ".json")));
    const auto poni_name = reference.at("poni").get<std::string>();
    auto parsed = parse_poni(read_text(dir / poni_name));
    ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
    const DetectorGeometry geometry(parsed->geometry);

    const auto& points = reference.at("points");
    ASSERT_EQ(points.size(), 200U);
    for (const auto& point : points) {
        const auto row = point.at("row").get<std::size_t>();
        const auto col = point.at("col").get<std::size_t>();
        SCOPED_TRACE("pixel (" + std::to_string(row) + ", " + std::to_string(col) + ")");
        const ScatteringAngles angles = geometry.pixel_centre(row, col);
        EXPECT_LE(std::abs(angles.two_theta_rad - point.at("tth_rad").get<double>()),
                  kAngleToleranceRad);
        EXPECT_LE(angle_difference(angles.chi_rad, point.at("chi_rad").get<double>()),
                  kAngleToleranceRad);
        EXPECT_GT(angles.chi_rad, -std::numbers::pi);
        EXPECT_LE(angles.chi_rad, std::numbers::pi);
        const double q_expected = point.at("q_inv_angstrom").get<double>();
        EXPECT_LE(std::abs(geometry.q_inv_angstrom(angles.two_theta_rad) - q_expected),
                  kRelativeTolerance * q_expected);
        const double sa_expected = point.at("solid_angle").get<double>();
        EXPECT_LE(std::abs(geometry.solid_angle(row, col) - sa_expected),
                  kRelativeTolerance * sa_expected);
        const double pol_expected = point.at("polarization_0_99").get<double>();
        EXPECT_LE(
            std::abs(DetectorGeometry::polarization(angles, kPolarizationFactor) - pol_expected),
            kRelativeTolerance * pol_expected);
    }
}

INSTANTIATE_TEST_SUITE_P(SharedReferences, PyfaiGeometryReference,
                         ::testing::Values("centred", "tilted", "rot3_offcentre"));

TEST(DetectorGeometry, PoniVersion21GivesTheSameAnglesAsVersion2) {
    const auto dir = testing::reference_dir() / "geometry";
    auto v2 = parse_poni(read_text(dir / "tilted.poni"));
    auto v21 = parse_poni(read_text(dir / "tilted_v21.poni"));
    ASSERT_TRUE(v2.has_value() && v21.has_value());
    const DetectorGeometry a(v2->geometry);
    const DetectorGeometry b(v21->geometry);
    for (std::size_t row : {0U, 700U, 2047U}) {
        for (std::size_t col : {0U, 1500U, 2047U}) {
            EXPECT_EQ(a.pixel_centre(row, col).two_theta_rad,
                      b.pixel_centre(row, col).two_theta_rad);
            EXPECT_EQ(a.pixel_centre(row, col).chi_rad, b.pixel_centre(row, col).chi_rad);
        }
    }
}

TEST(DetectorGeometry, FullRingEndsAtTheNearestEdgeWithAnOffCentreBeam) {
    PoniGeometry poni;
    poni.detector = DetectorModel{"Detector", 100e-6, 100e-6, FrameShape{400, 600}};
    poni.distance_m = 0.3;
    poni.poni1_m = 0.015;  // 150 pixels from the top edge (rows), 250 from the bottom
    poni.poni2_m = 0.035;  // 350 pixels from the left edge (cols), 250 from the right
    poni.wavelength_m = 0.123984e-10;
    const DetectorGeometry geometry(poni);
    // The nearest edge is the top one: its nearest pixel centre is 149.5 pixels above the PONI
    // and half a pixel aside. The largest ring that stays whole has that radius, well inside
    // the corner's Q.
    const double radius = std::hypot(149.5, 0.5) * 100e-6;
    const double expected = geometry.q_inv_angstrom(std::atan(radius / 0.3));
    EXPECT_NEAR(geometry.full_ring_q_inv_angstrom(), expected, 1e-6 * expected);
    EXPECT_LT(geometry.full_ring_q_inv_angstrom(), 0.5 * geometry.pixel_q_range().max_inv_angstrom);
}

TEST(DetectorGeometry, UntiltedDetectorFollowsTheTextbookFormulas) {
    PoniGeometry poni;
    poni.detector = DetectorModel{"Detector", 100e-6, 100e-6, FrameShape{1000, 1000}};
    poni.distance_m = 0.5;
    poni.poni1_m = 0.05;  // the PONI is the corner between pixels 499 and 500
    poni.poni2_m = 0.05;
    poni.wavelength_m = 0.123984e-10;  // 100 keV
    const DetectorGeometry geometry(poni);
    // Pixel (499, 899): 0.5 pixel below the PONI along dim1, 399.5 pixels along dim2.
    const double y = -0.5 * 100e-6;
    const double x = 399.5 * 100e-6;
    const ScatteringAngles angles = geometry.pixel_centre(499, 899);
    const double radius = std::hypot(x, y);
    // Positions are rounded to float32 as pyFAI does (ADR 0002): ~4e-9 m at 0.05 m, i.e. 1e-8 rad.
    constexpr double kFloat32PositionTolerance = 3e-8;
    EXPECT_NEAR(angles.two_theta_rad, std::atan(radius / 0.5), kFloat32PositionTolerance);
    EXPECT_NEAR(angles.chi_rad, std::atan2(y, x), 1e-6);
    const double cos_incidence = 0.5 / std::hypot(radius, 0.5);
    EXPECT_NEAR(geometry.solid_angle(499, 899), std::pow(cos_incidence, 3),
                kFloat32PositionTolerance);
    const double q = geometry.q_inv_angstrom(angles.two_theta_rad);
    EXPECT_NEAR(q, 4 * std::numbers::pi * std::sin(angles.two_theta_rad / 2) / 0.123984, 1e-12);
    EXPECT_NEAR(geometry.two_theta_rad(q), angles.two_theta_rad, 1e-12);
    EXPECT_TRUE(std::isnan(geometry.two_theta_rad(1e3)));
    // The PONI sits on a pixel corner: the nearest centres are the four around it, half a pixel
    // diagonal away (float32 rounding picks one), and the farthest centre is pixel (0, 999).
    const auto range = geometry.pixel_q_range();
    double nearest = 1e9;
    for (std::size_t row : {499U, 500U}) {
        for (std::size_t col : {499U, 500U}) {
            nearest = std::min(
                nearest, geometry.q_inv_angstrom(geometry.pixel_centre(row, col).two_theta_rad));
        }
    }
    EXPECT_EQ(range.min_inv_angstrom, nearest);
    EXPECT_NEAR(range.max_inv_angstrom,
                geometry.q_inv_angstrom(geometry.pixel_centre(0, 999).two_theta_rad), 1e-12);
    // Unpolarised beam: (1 + cos^2 2theta) / 2 whatever chi is.
    const double c = std::cos(angles.two_theta_rad);
    EXPECT_NEAR(DetectorGeometry::polarization(angles, 0.0), 0.5 * (1 + c * c), 1e-15);
}

}  // namespace
}  // namespace anisoflow::geometry
