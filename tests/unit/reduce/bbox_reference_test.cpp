// The bounding-box integrator against a slow, independent implementation written from the
// definition (pyFAI splitBBox, docs/reduction.md) in plain double precision. Layouts are chosen
// so that every record kind occurs: direct (one chi bin, <= 4 Q bins), separable (wider), and
// wide pixels near the beam centre with explicit weights.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include <gtest/gtest.h>

#include "anisoflow/reduce/cake_integrator.hpp"

#include "test_detector.hpp"

namespace anisoflow::reduce {
namespace {

// The integrator quantises edge weights to 16 bits (1.5e-5); over cells holding at least half
// a pixel that moves a ratio of weighted sums by well under 1e-3.
constexpr double kQuantisedWeightTolerance = 1e-3;
constexpr double kMinCountCompared = 0.5;

struct ReferenceCake {
    std::vector<double> intensity;
    std::vector<double> count;
};

// Fraction of [lo, hi) that falls in each whole bin of [0, n), normalised by hi - lo after
// clipping to the axis (pyFAI's convention: the clipped box carries the pixel's full weight).
std::vector<std::pair<std::size_t, double>> split(double lo, double hi, std::size_t n) {
    std::vector<std::pair<std::size_t, double>> shares;
    lo = std::max(lo, 0.0);
    hi = std::min(hi, static_cast<double>(n));
    if (!(hi > lo)) {
        return shares;
    }
    for (auto b = static_cast<std::size_t>(lo); b < n && static_cast<double>(b) < hi; ++b) {
        const double overlap =
            std::min(hi, static_cast<double>(b) + 1.0) - std::max(lo, static_cast<double>(b));
        if (overlap > 0.0) {
            shares.emplace_back(b, overlap / (hi - lo));
        }
    }
    return shares;
}

ReferenceCake reference_bbox(const geometry::DetectorGeometry& geometry, const CakeAxes& axes,
                             const std::vector<double>& raw) {
    const FrameShape shape = geometry.shape();
    std::vector<double> signal(axes.cell_count(), 0.0);
    std::vector<double> norm(axes.cell_count(), 0.0);
    ReferenceCake out{std::vector<double>(axes.cell_count(), 0.0),
                      std::vector<double>(axes.cell_count(), 0.0)};
    const double deg = 180.0 / std::numbers::pi;
    for (std::size_t r = 0; r < shape.rows; ++r) {
        for (std::size_t c = 0; c < shape.cols; ++c) {
            const auto centre = geometry.pixel_centre(r, c);
            const double q = geometry.q_inv_angstrom(centre.two_theta_rad);
            double dq = 0.0;
            double dchi = 0.0;
            for (const auto& [d1, d2] : {std::pair{0, 0}, {1, 0}, {0, 1}, {1, 1}}) {
                const auto corner =
                    geometry.angles_at(static_cast<double>(r + d1), static_cast<double>(c + d2));
                dq = std::max(dq, std::abs(geometry.q_inv_angstrom(corner.two_theta_rad) - q));
                const double d = std::abs(corner.chi_rad - centre.chi_rad) * deg;
                dchi = std::max(dchi, std::min(d, 360.0 - d));
            }
            const double chi = centre.chi_rad * deg;
            const auto q_shares =
                split((q - dq - axes.q_min_inv_angstrom) / axes.q_step(),
                      (q + dq - axes.q_min_inv_angstrom) / axes.q_step(), axes.n_q);
            const auto chi_shares = split((chi - dchi + 180.0) / axes.chi_step_deg(),
                                          (chi + dchi + 180.0) / axes.chi_step_deg(), axes.n_chi);
            const double sa = geometry.solid_angle(r, c);
            for (const auto& [ichi, wc] : chi_shares) {
                for (const auto& [iq, wq] : q_shares) {
                    const std::size_t cell = ichi * axes.n_q + iq;
                    signal[cell] += wc * wq * raw[r * shape.cols + c];
                    norm[cell] += wc * wq * sa;
                    out.count[cell] += wc * wq;
                }
            }
        }
    }
    for (std::size_t cell = 0; cell < signal.size(); ++cell) {
        out.intensity[cell] = norm[cell] > 0.0 ? signal[cell] / norm[cell] : 0.0;
    }
    return out;
}

struct Layout {
    const char* name;
    CakeAxes axes;
};

class BoundingBoxReference : public ::testing::TestWithParam<Layout> {};

TEST_P(BoundingBoxReference, EveryCellMatchesTheDefinition) {
    const geometry::DetectorGeometry geometry(test::small_detector_poni());
    const CakeAxes axes = GetParam().axes;
    const FrameShape shape = geometry.shape();
    std::vector<double> raw(shape.pixel_count());
    std::vector<std::uint32_t> raw_counts(shape.pixel_count());
    for (std::size_t i = 0; i < raw.size(); ++i) {
        // Smooth rings plus a pixel-to-pixel pattern: any misplaced share shows.
        const double q = geometry.q_inv_angstrom(
            geometry.pixel_centre(i / shape.cols, i % shape.cols).two_theta_rad);
        raw_counts[i] =
            static_cast<std::uint32_t>(1000.0 + 800.0 * std::sin(3.0 * q) * std::sin(3.0 * q) +
                                       static_cast<double>((i * 37) % 97));
        raw[i] = raw_counts[i];
    }
    DetectorCorrections corrections;  // solid angle only: the reference applies the same
    auto integrator =
        CakeIntegrator::create(geometry, {axes, PixelSplitting::kBoundingBox, 2}, corrections);
    ASSERT_TRUE(integrator.has_value()) << integrator.error().message;
    const auto cake = integrator->integrate(Frame::from_vector(shape, raw_counts).view());
    ASSERT_TRUE(cake.has_value());
    const ReferenceCake expected = reference_bbox(geometry, axes, raw);

    std::size_t compared = 0;
    for (std::size_t cell = 0; cell < axes.cell_count(); ++cell) {
        ASSERT_NEAR(cake->count[cell], expected.count[cell],
                    1e-3 * std::max(1.0, expected.count[cell]))
            << "cell " << cell;
        if (expected.count[cell] >= kMinCountCompared) {
            ++compared;
            ASSERT_NEAR(cake->intensity[cell], expected.intensity[cell],
                        kQuantisedWeightTolerance * expected.intensity[cell])
                << "cell " << cell << " (chi bin " << cell / axes.n_q << ", q bin "
                << cell % axes.n_q << ")";
        }
    }
    EXPECT_GT(compared, 300U);
    // The beam centre is on this detector: some pixels need the explicit side list.
    EXPECT_GT(integrator->lookup_size_bytes(),
              shape.pixel_count() * sizeof(CakeIntegrator::BoxRecord));
}

// Small detector: 96 x 128 pixels of 200 um at 5 cm, the beam centre on the detector.
INSTANTIATE_TEST_SUITE_P(
    Layouts, BoundingBoxReference,
    ::testing::Values(
        // Coarse Q: most pixels direct (one chi bin, <= 4 Q bins), wide ones at the centre.
        Layout{"coarse", CakeAxes{40, 36, 0.2, 14.0}},
        // Fine Q: pixels span 6-12 Q bins, the separable path.
        Layout{"fine", CakeAxes{400, 72, 0.2, 14.0}},
        // Fine chi: pixels span several chi bins away from the centre too.
        Layout{"fine_chi", CakeAxes{60, 720, 0.2, 14.0}}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace anisoflow::reduce
