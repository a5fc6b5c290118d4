// The simulator's structure model and forward model against analytic cases, and against the
// reduction it must feed.

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <set>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "anisoflow/reduce/cake_integrator.hpp"
#include "anisoflow/sim/frame_renderer.hpp"
#include "anisoflow/sim/strained_structure.hpp"
#include "anisoflow/sim/structure_model.hpp"

namespace anisoflow::sim {
namespace {

using ::testing::HasSubstr;

HardSphereStructure glass() {
    auto structure = HardSphereStructure::create(HardSphereParameters{});
    EXPECT_TRUE(structure.has_value());
    return std::move(*structure);
}

TEST(HardSphereStructure, LowQLimitIsThePercusYevickCompressibility) {
    const HardSphereStructure s = glass();
    const double eta = 0.55;
    EXPECT_NEAR(s.s(0.0), std::pow(1 - eta, 4) / std::pow(1 + 2 * eta, 2), 1e-12);
    EXPECT_NEAR(s.s(0.0), 0.0093, 1e-4);  // the S(0) ~ 0.01
    // eta = pi rho sigma^3 / 6 at rho0 = 0.0553 /A^3
    EXPECT_NEAR(std::numbers::pi * 0.0553 * std::pow(s.diameter_angstrom(), 3) / 6.0, eta, 1e-12);
}

TEST(HardSphereStructure, IsNonNegativePeaksLikeAMetallicGlassAndTendsToOne) {
    const HardSphereStructure s = glass();
    double peak_q = 0.0;
    double peak = 0.0;
    for (double q = 0.0; q <= 40.0; q += 0.001) {
        const double value = s.s(q);
        ASSERT_GE(value, 0.0) << "Q = " << q;
        if (value > peak) {
            peak = value;
            peak_q = q;
        }
    }
    EXPECT_GT(peak_q, 2.4);  // Zr-based glasses: first peak near 2.5-2.7 1/A
    EXPECT_LT(peak_q, 3.0);
    EXPECT_GT(peak, 2.0);
    EXPECT_NEAR(s.s(40.0), 1.0, 1e-3);
}

TEST(HardSphereStructure, TableMatchesTheClosedFormAndBranchesJoin) {
    const HardSphereStructure s = glass();
    std::mt19937 rng(3);
    std::uniform_real_distribution<double> q(0.0, 50.0);
    for (int i = 0; i < 2000; ++i) {
        const double x = q(rng);
        // Cubic interpolation on 0.001 1/A steps: far below any counting noise.
        ASSERT_NEAR(s.s(x), s.s_exact(x), 1e-7 * std::max(1.0, s.s_exact(x))) << "Q = " << x;
    }
    // Quadrature below k = Q sigma = 1, closed form above: they must meet.
    const double q_join = 1.0 / s.diameter_angstrom();
    EXPECT_NEAR(s.s_exact(q_join * (1 - 1e-9)), s.s_exact(q_join * (1 + 1e-9)), 1e-9);
}

TEST(HardSphereStructure, RejectsUnphysicalParameters) {
    auto dense = HardSphereStructure::create(HardSphereParameters{0.0553, 0.8, 0.1});
    ASSERT_FALSE(dense.has_value());
    EXPECT_THAT(dense.error().message, HasSubstr("packing fraction 0.8"));
    EXPECT_FALSE(HardSphereStructure::create(HardSphereParameters{-1.0, 0.5, 0.1}).has_value());
}

// P2 projection with SPEC 4's normalisation: S(Q, psi) = S0 + sqrt5 S2 P2(cos psi), so
// S2 = (5 / (2 sqrt5)) Int_{-1}^{1} S P2 dmu. The isotropic S(Q) integrates to zero against P2
// exactly but not numerically, so it is subtracted first; the midpoint rule then only sees the
// small anisotropic part.
double project_s2(const HardSphereStructure& s, double q, const UniaxialStrain& strain) {
    constexpr int kNodes = 256;
    const double isotropic = s.s(q);
    double sum = 0.0;
    for (int i = 0; i < kNodes; ++i) {
        const double mu = -1.0 + (i + 0.5) * 2.0 / kNodes;
        const double p2 = 0.5 * (3 * mu * mu - 1);
        sum += (affine_structure_factor(s, q, mu, strain) - isotropic) * p2 * (2.0 / kNodes);
    }
    return 5.0 / (2.0 * std::sqrt(5.0)) * sum;
}

TEST(AffineStructureFactor, FirstOrderS2IsMinusCEpsOverSqrt5TimesQdS0dQ) {
    const HardSphereStructure s = glass();
    const UniaxialStrain strain{1e-4, 0.37};
    const double c = 2.0 * (1.0 + strain.poisson_ratio) / 3.0;
    double largest = 0.0;
    double worst = 0.0;
    for (double q = 1.0; q <= 12.0; q += 0.05) {
        const double expected = -(c * strain.eps / std::sqrt(5.0)) * q * s.ds_dq(q);
        largest = std::max(largest, std::abs(expected));
        worst = std::max(worst, std::abs(project_s2(s, q, strain) - expected));
    }
    // Second-order terms are eps times smaller than the first-order ones (plus midpoint error).
    EXPECT_LT(worst, 2e-3 * largest);
    EXPECT_GT(largest, 1e-4);
    // No strain, no anisotropy.
    EXPECT_EQ(affine_structure_factor(s, 2.7, 0.3, UniaxialStrain{0.0, 0.37}), s.s(2.7));
}

TEST(AffineStructureFactor, CompressionMovesAxialFeaturesToHigherQ) {
    const HardSphereStructure s = glass();
    // Pairs along the compressed axis shorten: S along the axis is S(Q (1 - eps)).
    const UniaxialStrain strain{0.01, 0.37};
    EXPECT_NEAR(affine_structure_factor(s, 3.0, 1.0, strain), s.s(3.0 * 0.99), 1e-12);
    EXPECT_NEAR(affine_structure_factor(s, 3.0, 0.0, strain), s.s(3.0 * 1.0037), 1e-12);
}

geometry::PoniGeometry small_detector() {
    geometry::PoniGeometry poni;
    poni.detector = geometry::DetectorModel{"Detector", 200e-6, 200e-6, FrameShape{128, 160}};
    poni.distance_m = 0.06;
    poni.poni1_m = 64 * 200e-6;
    poni.poni2_m = 80 * 200e-6;
    poni.wavelength_m = 0.123984e-10;  // 100 keV
    return poni;
}

AtomicTermsTable flat_atomic_terms() {
    // Q-independent terms make the expected intensity easy to state: <f>^2 = 100, <f^2> = 120.
    return AtomicTermsTable{{0.0, 100.0}, {100.0, 100.0}, {120.0, 120.0}, {0.0, 0.0}};
}

TEST(FrameRenderer, IsotropicSampleLooksTheSameInBothOrientations) {
    const geometry::DetectorGeometry geometry(small_detector());
    auto renderer = FrameRenderer::create(geometry, flat_atomic_terms());
    ASSERT_TRUE(renderer.has_value()) << renderer.error().message;
    RenderSettings p;
    p.loading_axis_chi_deg = 20.0;
    RenderSettings n = p;
    n.orientation = Orientation::kN;
    const auto a = renderer->expected_signal(glass(), p);
    const auto b = renderer->expected_signal(glass(), n);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        ASSERT_NEAR(a[i], b[i], 1e-12 * a[i]) << "pixel " << i;
    }
}

TEST(FrameRenderer, StrainedSampleIsBrighterAlongTheAxisAboveThePeak) {
    const geometry::DetectorGeometry geometry(small_detector());
    auto renderer = *FrameRenderer::create(geometry, flat_atomic_terms());
    const HardSphereStructure s = glass();
    RenderSettings p;
    p.loading_axis_chi_deg = 0.0;  // axis along +chi = 0 (the dim2 direction)
    p.strain = UniaxialStrain{0.01, 0.37};
    RenderSettings n = p;
    n.orientation = Orientation::kN;
    const auto signal_p = renderer.expected_signal(s, p);
    const auto signal_n = renderer.expected_signal(s, n);
    // Pixel on the chi = 0 side, at Q a little above the first peak: the compressed axis
    // probes S(Q (1 - eps)), nearer the peak, so P (axis here) is brighter than N.
    std::size_t chosen = 0;
    double best = 1e9;
    for (std::size_t col = 80; col < 160; ++col) {
        const double q = geometry.q_inv_angstrom(geometry.pixel_centre(64, col).two_theta_rad);
        if (std::abs(q - 3.1) < best) {
            best = std::abs(q - 3.1);
            chosen = 64 * 160 + col;
        }
    }
    ASSERT_LT(best, 0.05);
    EXPECT_GT(signal_p[chosen], signal_n[chosen]);
}

TEST(FrameRenderer, ReductionOfANoiseFreeFrameGivesBackTheIntensityModel) {
    // Independent conventions meet: the renderer applies solid angle and polarization from the
    // scattering geometry; the integrator divides them out. What remains is K [..] per atom.
    const geometry::DetectorGeometry geometry(small_detector());
    auto renderer = *FrameRenderer::create(geometry, flat_atomic_terms());
    const HardSphereStructure s = glass();
    RenderSettings settings;
    settings.counts_scale = 50.0;
    const auto signal = renderer.expected_signal(s, settings);
    std::vector<double> frame_values(signal.size());
    for (std::size_t i = 0; i < signal.size(); ++i) {
        frame_values[i] = signal[i] + settings.dark_counts;
    }
    reduce::DetectorCorrections corrections;
    corrections.dark_counts.assign(signal.size(), static_cast<float>(settings.dark_counts));
    corrections.polarization_factor = settings.polarization_factor;
    const reduce::CakeAxes axes{200, 1, 1.0, 8.0};
    auto integrator = reduce::CakeIntegrator::create(
        geometry, {axes, reduce::PixelSplitting::kNone, 1}, corrections);
    ASSERT_TRUE(integrator.has_value());
    const auto cake =
        integrator->integrate(Frame::from_vector(geometry.shape(), frame_values).view());
    ASSERT_TRUE(cake.has_value());
    // What each bin must hold: the model at each pixel's own Q, averaged with the weights a
    // ratio of sums gives it (solid angle x polarization), computed here from the geometry.
    std::vector<double> weighted(axes.n_q, 0.0);
    std::vector<double> weights(axes.n_q, 0.0);
    const FrameShape shape = geometry.shape();
    for (std::size_t r = 0; r < shape.rows; ++r) {
        for (std::size_t c = 0; c < shape.cols; ++c) {
            const auto angles = geometry.pixel_centre(r, c);
            const double q = geometry.q_inv_angstrom(angles.two_theta_rad);
            const double f = (q - axes.q_min_inv_angstrom) / axes.q_step();
            if (f < 0.0 || f >= static_cast<double>(axes.n_q)) {
                continue;
            }
            const double w =
                geometry.solid_angle(r, c) * geometry::DetectorGeometry::polarization(angles, 0.99);
            const auto bin = static_cast<std::size_t>(f);
            weighted[bin] += w * 50.0 * (100.0 * (s.s(q) - 1.0) + 120.0);
            weights[bin] += w;
        }
    }
    std::size_t checked = 0;
    for (std::size_t iq = 0; iq < axes.n_q; ++iq) {
        if (weights[iq] > 0.0) {
            // The integrator keeps per-pixel norms in float32 (6e-8 relative each).
            EXPECT_NEAR(cake->intensity_1d[iq], weighted[iq] / weights[iq],
                        1e-6 * cake->intensity_1d[iq])
                << "Q = " << cake->q_inv_angstrom[iq];
            ++checked;
        }
    }
    EXPECT_GT(checked, 150U);
}

TEST(FrameRenderer, NoiseFollowsPoissonStatisticsAndSaturates) {
    const geometry::DetectorGeometry geometry(small_detector());
    auto renderer = *FrameRenderer::create(geometry, flat_atomic_terms());
    RenderSettings settings;
    settings.counts_scale = 5.0;
    settings.seed = 11;
    const auto expected = renderer.expected_signal(glass(), settings);
    const auto frame = *renderer.render(glass(), settings);
    const auto& pixels = std::get<std::vector<std::uint16_t>>(frame.pixels);
    double chi2 = 0.0;
    for (std::size_t i = 0; i < pixels.size(); ++i) {
        const double d = pixels[i] - settings.dark_counts - expected[i];
        chi2 += d * d / expected[i];
    }
    // Poisson: chi^2 per pixel ~ 1 (plus 1/12 rounding variance relative to the mean).
    EXPECT_NEAR(chi2 / static_cast<double>(pixels.size()), 1.0, 0.05);
    settings.saturation_counts = 300.0;
    const auto clipped = *renderer.render(glass(), settings);
    const auto& clipped_pixels = std::get<std::vector<std::uint16_t>>(clipped.pixels);
    EXPECT_EQ(*std::max_element(clipped_pixels.begin(), clipped_pixels.end()), 300);
    // Same seed, same frame: simulations are reproducible.
    settings.saturation_counts = 65535.0;
    EXPECT_EQ(std::get<std::vector<std::uint16_t>>(renderer.render(glass(), settings)->pixels),
              pixels);
}

TEST(FrameSeed, EveryRunSeriesAndFrameGetsItsOwnStream) {
    // Runs with neighbouring seeds must share no frame: the old seed + frame counter gave run
    // s + 2's P frames the noise of run s's N frames.
    std::set<std::uint64_t> seen;
    std::size_t drawn = 0;
    for (std::uint64_t run = 1; run <= 20; ++run) {
        for (const FrameSeries series : {FrameSeries::kP, FrameSeries::kN, FrameSeries::kDark}) {
            for (std::size_t index = 0; index < 16; ++index) {
                seen.insert(frame_seed(run, series, index));
                ++drawn;
            }
        }
    }
    EXPECT_EQ(seen.size(), drawn);
    EXPECT_EQ(frame_seed(7, FrameSeries::kN, 3), frame_seed(7, FrameSeries::kN, 3));
}

TEST(FrameRenderer, DarkFramesHoldTheDarkLevelAndReadNoiseOnly) {
    const geometry::DetectorGeometry geometry(small_detector());
    auto renderer = *FrameRenderer::create(geometry, flat_atomic_terms());
    RenderSettings settings;
    settings.dark_counts = 100.0;
    settings.read_noise_counts = 3.0;
    const auto dark = renderer.render_dark(settings);
    const auto& pixels = std::get<std::vector<std::uint16_t>>(dark.pixels);
    double sum = 0.0;
    double sum2 = 0.0;
    for (const auto p : pixels) {
        sum += p;
        sum2 += static_cast<double>(p) * p;
    }
    const double n = static_cast<double>(pixels.size());
    const double mean = sum / n;
    EXPECT_NEAR(mean, 100.0, 0.1);
    // Gaussian read noise of 3 counts plus the 1/12 count^2 of rounding.
    EXPECT_NEAR(std::sqrt(sum2 / n - mean * mean), std::sqrt(9.0 + 1.0 / 12.0), 0.1);
}

// A first-order model can ask for S(Q, psi) < 0 (docs/physics-simulator.md, "Low-Q content"). A
// detector's frames clip it at 0 photons; float32 expected-count frames keep it, so that the
// analysis chain, linear in the counts, can be checked against the model as it stands.
TEST(FrameRenderer, FloatFramesKeepNegativeModelIntensityThatCountFramesClip) {
    const geometry::DetectorGeometry geometry(small_detector());
    auto renderer = *FrameRenderer::create(geometry, flat_atomic_terms());
    // S2 = -1 at every Q: along the axis S = S0 - sqrt5 < 0, so 100 (S - 1) + 120 < 0.
    constexpr double kTableStep = 0.01;
    const auto structure = StrainedStructure::harmonic(
        glass(), HarmonicTable(kTableStep, std::vector<double>(3000, -1.0)));
    RenderSettings settings;
    settings.counts_scale = 10.0;
    settings.dark_counts = 100.0;
    settings.poisson_noise = false;
    const std::vector<double> expected = renderer.expected_signal(structure, settings);
    ASSERT_LT(*std::min_element(expected.begin(), expected.end()), -settings.dark_counts);

    const auto counts = *renderer.render(structure, settings);
    const auto& count_pixels = std::get<std::vector<std::uint16_t>>(counts.pixels);
    settings.pixel_output = PixelOutput::kFloat32Expected;
    const auto exact = *renderer.render(structure, settings);
    const auto& exact_pixels = std::get<std::vector<float>>(exact.pixels);
    ASSERT_EQ(exact_pixels.size(), expected.size());
    std::size_t negative = 0;
    for (std::size_t i = 0; i < expected.size(); ++i) {
        // uint16: no fewer than 0 photons, then the dark, rounded.
        EXPECT_EQ(static_cast<double>(count_pixels[i]),
                  std::round(std::max(expected[i], 0.0) + 100.0))
            << i;
        // float32: the model as it is, below the dark and below 0 where it asks for that.
        EXPECT_EQ(exact_pixels[i], static_cast<float>(expected[i] + 100.0)) << i;
        negative += expected[i] < 0.0 ? 1U : 0U;
    }
    EXPECT_GT(negative, expected.size() / 10);
    const auto dark = renderer.render_dark(settings);
    const auto& dark_pixels = std::get<std::vector<float>>(dark.pixels);
    EXPECT_TRUE(std::all_of(dark_pixels.begin(), dark_pixels.end(),
                            [](float value) { return value == 100.0F; }));
    // A negative expected count has no Poisson law: noisy float frames are refused.
    settings.poisson_noise = true;
    const auto noisy = renderer.render(structure, settings);
    ASSERT_FALSE(noisy.has_value());
    EXPECT_THAT(noisy.error().message, HasSubstr("noiseless"));
}

}  // namespace
}  // namespace anisoflow::sim
