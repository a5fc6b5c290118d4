// A structure given by its harmonics on Q samples (diffraction from atoms, issue 7): resampled
// onto the renderer's tables it is the model it was sampled from, and frames drawn from it use
// the same intensity model as the built-in modes.

#include "anisoflow/sim/tabulated_structure.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "anisoflow/sim/frame_renderer.hpp"
#include "anisoflow/sim/structure_model.hpp"

namespace anisoflow::sim {
namespace {

constexpr double kSampleStep = 0.05;  // the |Q| bins of atomistic::structure_factor's default
constexpr double kQFirst = 0.5;
constexpr double kQLast = 20.0;
// S2 of an affine strain to first order, -(c eps / sqrt5) Q dS0/dQ (docs/physics-simulator.md).
constexpr double kAffineFactor = 2.0 * (1.0 + 0.37) / 3.0 * 0.01;

const HardSphereStructure& glass() {
    static const HardSphereStructure structure = *HardSphereStructure::create({});
    return structure;
}

double s2_model(double q) { return -kAffineFactor / std::sqrt(5.0) * q * glass().ds_dq(q); }

HarmonicSamples sampled() {
    HarmonicSamples samples;
    for (double q = kQFirst; q <= kQLast + 1e-9; q += kSampleStep) {
        samples.q_inv_angstrom.push_back(q);
        samples.s0.push_back(glass().s(q));
        samples.s2.push_back(s2_model(q));
    }
    return samples;
}

// Linear interpolation between samples h apart errs by at most h^2 / 8 max |f''|.
double interpolation_bound(double (*f)(double)) {
    double worst = 0.0;
    const double d = 1e-3;
    for (double q = kQFirst + d; q < kQLast - d; q += 0.01) {
        worst = std::max(worst, std::abs(f(q + d) - 2.0 * f(q) + f(q - d)) / (d * d));
    }
    return kSampleStep * kSampleStep / 8.0 * worst;
}

double s0_model(double q) { return glass().s(q); }

TEST(TabulatedStructure, IsTheModelItWasSampledFrom) {
    auto model = tabulated_structure(sampled(), 25.0);
    ASSERT_TRUE(model) << model.error().message;
    EXPECT_EQ(model->kind(), StrainedStructure::Kind::kTabulated);
    // Both harmonics interpolate linearly; the cubic table on 0.002 steps adds ~1e-6.
    const double bound0 = interpolation_bound(s0_model) + 1e-5;
    const double bound2 = interpolation_bound(s2_model) + 1e-5;
    for (double q = kQFirst; q < kQLast; q += 0.0173) {
        for (const double c : {0.0, 0.5, 1.0}) {
            const double p2 = 0.5 * (3.0 * c * c - 1.0);
            EXPECT_NEAR(model->s(q, c), glass().s(q) + std::sqrt(5.0) * s2_model(q) * p2,
                        bound0 + std::sqrt(5.0) * bound2)
                << "Q " << q << " cos psi " << c;
        }
    }
    // Beyond the samples S = 1; below the first, S0 is held and S2 falls to 0 at Q = 0.
    EXPECT_DOUBLE_EQ(model->s(22.0, 1.0), 1.0);
    EXPECT_NEAR(model->s(0.0, 1.0), glass().s(kQFirst), 1e-12);
}

TEST(TabulatedStructure, SkipsMissingSamplesAndRefusesBadInput) {
    HarmonicSamples samples = sampled();
    samples.s0[10] = std::numeric_limits<double>::quiet_NaN();  // an empty bin
    auto model = tabulated_structure(samples, 25.0);
    ASSERT_TRUE(model);
    const double q10 = samples.q_inv_angstrom[10];
    // Interpolated across the gap from its neighbours.
    EXPECT_NEAR(model->s(q10, std::sqrt(1.0 / 3.0)), 0.5 * (samples.s0[9] + samples.s0[11]), 1e-6);
    HarmonicSamples short_s2 = sampled();
    short_s2.s2.pop_back();
    EXPECT_FALSE(tabulated_structure(short_s2, 25.0));
    HarmonicSamples descending = sampled();
    std::swap(descending.q_inv_angstrom[3], descending.q_inv_angstrom[4]);
    EXPECT_FALSE(tabulated_structure(descending, 25.0));
    EXPECT_FALSE(tabulated_structure(sampled(), 0.0));
    EXPECT_FALSE(tabulated_structure(HarmonicSamples{{1.0}, {1.0}, {0.0}}, 25.0));
}

TEST(TabulatedStructure, RendersLikeTheHarmonicModelItSamples) {
    geometry::PoniGeometry poni;
    poni.detector = geometry::DetectorModel{"Detector", 200e-6, 200e-6, FrameShape{96, 128}};
    poni.distance_m = 0.06;
    poni.poni1_m = 48 * 200e-6;
    poni.poni2_m = 64 * 200e-6;
    poni.wavelength_m = 0.123984e-10;  // 100 keV
    const geometry::DetectorGeometry geometry(poni);
    auto renderer = FrameRenderer::create(
        geometry, AtomicTermsTable{{0.0, 100.0}, {100.0, 100.0}, {120.0, 120.0}, {0.0, 0.0}});
    ASSERT_TRUE(renderer);
    const double q_max = geometry.pixel_q_range().max_inv_angstrom + 0.1;
    ASSERT_LT(q_max, kQLast);
    std::vector<double> s2;
    for (double q = 0.0; q <= q_max + 0.1; q += kHarmonicTableStepInvAngstrom) {
        s2.push_back(s2_model(q));
    }
    const auto harmonic =
        StrainedStructure::harmonic(glass(), HarmonicTable(kHarmonicTableStepInvAngstrom, s2));
    auto tabulated = tabulated_structure(sampled(), q_max);
    ASSERT_TRUE(tabulated);
    RenderSettings settings;
    settings.loading_axis_chi_deg = 30.0;
    const double bound = 100.0 * (interpolation_bound(s0_model) +
                                  std::sqrt(5.0) * interpolation_bound(s2_model) + 1e-5);
    for (const auto orientation : {Orientation::kP, Orientation::kN}) {
        settings.orientation = orientation;
        const auto a = renderer->expected_signal(harmonic, settings);
        const auto b = renderer->expected_signal(*tabulated, settings);
        ASSERT_EQ(a.size(), b.size());
        double worst = 0.0;
        for (std::size_t i = 0; i < a.size(); ++i) {
            // counts = K [<f>^2 (S - 1) + ...] sa pol: a difference in S of dS moves the counts
            // by K <f>^2 dS sa pol <= 100 dS (K = 1, sa <= 1, pol <= 1).
            worst = std::max(worst, std::abs(a[i] - b[i]));
        }
        EXPECT_LT(worst, bound);
    }
}

}  // namespace
}  // namespace anisoflow::sim
