// Cake integration on a small synthetic detector: analytic cases for both splitting kinds.

#include "anisoflow/reduce/cake_integrator.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test_detector.hpp"

namespace anisoflow::reduce {
namespace {

using ::testing::HasSubstr;

// A frame whose corrected intensity is `level` everywhere: raw = dark + level * norm. Float
// pixels so that the expected values are exact up to rounding.
constexpr double kLevel = 250.0;
constexpr double kDark = 40.0;
constexpr double kPolarization = 0.99;
// Double sums of ~1e4 float pixels: relative rounding well below 1e-9.
constexpr double kExactTolerance = 1e-9;

struct SmallDetector {
    geometry::DetectorGeometry geometry{test::small_detector_poni()};
    CakeAxes axes;
    SmallDetector() {
        axes.n_q = 40;
        axes.n_chi = 36;
        axes.q_min_inv_angstrom = 0.2;
        axes.q_max_inv_angstrom = 14.0;
    }
    [[nodiscard]] FrameShape shape() const { return geometry.shape(); }
    [[nodiscard]] DetectorCorrections corrections() const {
        DetectorCorrections c;
        c.dark_counts.assign(shape().pixel_count(), static_cast<float>(kDark));
        c.polarization_factor = kPolarization;
        return c;
    }
    [[nodiscard]] std::vector<float> flat_image() const {
        std::vector<float> frame(shape().pixel_count());
        for (std::size_t r = 0; r < shape().rows; ++r) {
            for (std::size_t c = 0; c < shape().cols; ++c) {
                const double norm =
                    geometry.solid_angle(r, c) * geometry::DetectorGeometry::polarization(
                                                     geometry.pixel_centre(r, c), kPolarization);
                frame[r * shape().cols + c] = static_cast<float>(kDark + kLevel * norm);
            }
        }
        return frame;
    }
    [[nodiscard]] CakeIntegrator make(PixelSplitting splitting, DetectorCorrections c,
                                      unsigned threads = 1) const {
        auto integrator =
            CakeIntegrator::create(geometry, {axes, splitting, threads}, std::move(c));
        EXPECT_TRUE(integrator.has_value()) << integrator.error().message;
        return std::move(*integrator);
    }
};

class BothSplittings : public ::testing::TestWithParam<PixelSplitting> {};

TEST_P(BothSplittings, UniformCorrectedIntensityIsRecoveredInEveryPopulatedCell) {
    const SmallDetector setup;
    const auto integrator = setup.make(GetParam(), setup.corrections());
    const auto frame = Frame::from_vector(setup.shape(), setup.flat_image());
    const auto cake = integrator.integrate(frame.view());
    ASSERT_TRUE(cake.has_value()) << cake.error().message;
    std::size_t populated = 0;
    for (std::size_t c = 0; c < cake->intensity.size(); ++c) {
        if (cake->count[c] > 0.0) {
            ++populated;
            EXPECT_NEAR(cake->intensity[c], kLevel, kLevel * 1e-6) << "cell " << c;
        }
    }
    EXPECT_GT(populated, cake->intensity.size() / 3);
    for (std::size_t iq = 0; iq < setup.axes.n_q; ++iq) {
        if (cake->count_1d[iq] > 0.0) {
            EXPECT_NEAR(cake->intensity_1d[iq], kLevel, kLevel * 1e-6);
        }
    }
}

TEST_P(BothSplittings, EmptyCellsAreFlaggedNotZeroFilled) {
    SmallDetector setup;
    setup.axes.q_max_inv_angstrom = 40.0;  // far beyond the detector's reach
    const auto integrator = setup.make(GetParam(), setup.corrections());
    const auto frame = Frame::from_vector(setup.shape(), setup.flat_image());
    const auto cake = *integrator.integrate(frame.view());
    const std::size_t last_q = setup.axes.n_q - 1;
    for (std::size_t ichi = 0; ichi < setup.axes.n_chi; ++ichi) {
        EXPECT_TRUE(cake.is_empty(ichi, last_q));
        EXPECT_TRUE(std::isnan(cake.intensity[cake.cell(ichi, last_q)]));
        EXPECT_TRUE(std::isnan(cake.variance[cake.cell(ichi, last_q)]));
    }
    EXPECT_TRUE(std::isnan(cake.intensity_1d[last_q]));
    EXPECT_EQ(cake.count_1d[last_q], 0.0);
}

TEST_P(BothSplittings, PixelCountsAddUpToTheContributingPixels) {
    const SmallDetector setup;
    DetectorCorrections corrections = setup.corrections();
    corrections.mask.assign(setup.shape().pixel_count(), 0);
    for (std::size_t i = 0; i < corrections.mask.size(); i += 7) {
        corrections.mask[i] = 1;
    }
    const auto integrator = setup.make(GetParam(), corrections);
    const auto frame = Frame::from_vector(setup.shape(), setup.flat_image());
    const auto cake = *integrator.integrate(frame.view());
    const double total = std::accumulate(cake.count.begin(), cake.count.end(), 0.0);
    // Every pixel's shares sum to one (16-bit weights: 1.5e-5 per pixel at most).
    EXPECT_NEAR(total, static_cast<double>(integrator.contributing_pixel_count()), 1e-4 * total);
    EXPECT_LT(integrator.contributing_pixel_count(), setup.shape().pixel_count() * 6 / 7 + 1);
}

TEST_P(BothSplittings, TotalSignalIsConservedWhenTheRangeCoversTheDetector) {
    SmallDetector setup;
    setup.axes.q_min_inv_angstrom = 0.0;
    setup.axes.q_max_inv_angstrom = 20.0;
    // Without solid-angle and polarization corrections each cell's norm is its pixel count, so
    // sum_c I_c * count_c must give back sum_p (raw_p - dark) over the whole detector.
    DetectorCorrections corrections = setup.corrections();
    corrections.polarization_factor.reset();
    corrections.correct_solid_angle = false;
    const auto integrator = setup.make(GetParam(), corrections);
    ASSERT_EQ(integrator.contributing_pixel_count(), setup.shape().pixel_count());
    std::vector<std::uint16_t> raw(setup.shape().pixel_count());
    double expected = 0.0;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        raw[i] = static_cast<std::uint16_t>(kDark + 10.0 + static_cast<double>((i * 37) % 101));
        expected += static_cast<double>(raw[i]) - kDark;
    }
    const auto cake = *integrator.integrate(Frame::from_vector(setup.shape(), raw).view());
    double recovered = 0.0;
    double recovered_1d = 0.0;
    for (std::size_t c = 0; c < cake.intensity.size(); ++c) {
        if (cake.count[c] > 0.0) {
            recovered += cake.intensity[c] * cake.count[c];
        }
    }
    for (std::size_t iq = 0; iq < setup.axes.n_q; ++iq) {
        if (cake.count_1d[iq] > 0.0) {
            recovered_1d += cake.intensity_1d[iq] * cake.count_1d[iq];
        }
    }
    // 16-bit split weights are consistent in numerator and denominator: only rounding remains.
    EXPECT_NEAR(recovered, expected, expected * kExactTolerance);
    EXPECT_NEAR(recovered_1d, expected, expected * kExactTolerance);
}

TEST_P(BothSplittings, PoissonVarianceFollowsTheRawCounts) {
    SmallDetector setup;
    DetectorCorrections corrections;  // no dark, no corrections: I = mean counts per pixel
    corrections.correct_solid_angle = false;
    const auto integrator = setup.make(GetParam(), corrections);
    const std::vector<std::uint32_t> raw(setup.shape().pixel_count(), 400U);
    const auto cake = *integrator.integrate(Frame::from_vector(setup.shape(), raw).view());
    for (std::size_t c = 0; c < cake.intensity.size(); ++c) {
        if (cake.count[c] >= 1.0) {
            ASSERT_NEAR(cake.intensity[c], 400.0, 400.0 * kExactTolerance);
            // var(sum c v / sum c) = sum c^2 v / (sum c)^2 <= v / count, equal without splitting.
            EXPECT_LE(cake.variance[c], 400.0 / cake.count[c] * (1 + kExactTolerance));
            if (GetParam() == PixelSplitting::kNone) {
                EXPECT_NEAR(cake.variance[c], 400.0 / cake.count[c], kExactTolerance);
            }
        }
    }
}

TEST_P(BothSplittings, SaturatedAndNegativePixelsAreExcludedFromThatFrameOnly) {
    SmallDetector setup;
    setup.axes.q_min_inv_angstrom = 0.0;  // every pixel contributes: exclusions are countable
    setup.axes.q_max_inv_angstrom = 20.0;
    DetectorCorrections corrections = setup.corrections();
    corrections.saturation_counts = 60000.0;
    const auto integrator = setup.make(GetParam(), corrections);
    ASSERT_EQ(integrator.contributing_pixel_count(), setup.shape().pixel_count());
    auto image = setup.flat_image();
    const auto clean = *integrator.integrate(Frame::from_vector(setup.shape(), image).view());
    std::vector<bool> excluded(image.size(), false);
    for (std::size_t i = 0; i < image.size(); i += 11) {
        image[i] = 65000.F;  // saturated
        excluded[i] = true;
    }
    for (std::size_t i = 5; i < image.size(); i += 13) {
        image[i] = static_cast<float>(kDark - 3.0);  // below the dark
        excluded[i] = true;
    }
    const auto cake = *integrator.integrate(Frame::from_vector(setup.shape(), image).view());
    double clean_count = 0.0;
    double count = 0.0;
    for (std::size_t c = 0; c < cake.intensity.size(); ++c) {
        clean_count += clean.count[c];
        count += cake.count[c];
        if (cake.count[c] > 1e-6) {
            // The excluded pixels leave the uniform intensity untouched.
            EXPECT_NEAR(cake.intensity[c], kLevel, kLevel * 1e-5) << "cell " << c;
        }
    }
    const auto n_excluded = static_cast<double>(std::count(excluded.begin(), excluded.end(), true));
    EXPECT_NEAR(clean_count - count, n_excluded, 1e-6 * n_excluded);
    // The next clean frame has every pixel back.
    const auto again =
        *integrator.integrate(Frame::from_vector(setup.shape(), setup.flat_image()).view());
    EXPECT_NEAR(std::accumulate(again.count.begin(), again.count.end(), 0.0), clean_count, 1e-6);
}

TEST_P(BothSplittings, ThreadsGiveTheSameCakeAsOneThread) {
    const SmallDetector setup;
    const auto one = setup.make(GetParam(), setup.corrections(), 1);
    const auto two = setup.make(GetParam(), setup.corrections(), 2);
    std::vector<std::uint16_t> raw(setup.shape().pixel_count());
    for (std::size_t i = 0; i < raw.size(); ++i) {
        raw[i] = static_cast<std::uint16_t>(100 + (i * 7919) % 997);
    }
    const auto frame = Frame::from_vector(setup.shape(), raw);
    const auto a = *one.integrate(frame.view());
    const auto b = *two.integrate(frame.view());
    for (std::size_t c = 0; c < a.intensity.size(); ++c) {
        if (a.count[c] > 0.0) {
            ASSERT_NEAR(a.intensity[c], b.intensity[c], std::abs(a.intensity[c]) * 1e-12);
            ASSERT_NEAR(a.variance[c], b.variance[c], std::abs(a.variance[c]) * 1e-12);
        } else {
            ASSERT_TRUE(std::isnan(b.intensity[c]));
        }
    }
}

TEST_P(BothSplittings, MeanOfFramesNormalisesByExposure) {
    const SmallDetector setup;
    const auto integrator = setup.make(GetParam(), setup.corrections());
    const auto image = setup.flat_image();
    // A second frame counted twice as long: twice the signal above the dark.
    std::vector<float> doubled(image.size());
    for (std::size_t i = 0; i < image.size(); ++i) {
        doubled[i] = static_cast<float>(kDark + 2.0 * (static_cast<double>(image[i]) - kDark));
    }
    auto first = Frame::from_vector(setup.shape(), image);
    first.exposure_s = 1.0;
    auto second = Frame::from_vector(setup.shape(), doubled);
    second.exposure_s = 2.0;
    CakeAccumulator sums(setup.axes);
    ASSERT_TRUE(integrator.accumulate(first.view(), sums).has_value());
    ASSERT_TRUE(integrator.accumulate(second.view(), sums).has_value());
    const Cake mean = sums.finish();
    EXPECT_EQ(mean.frame_count, 2U);
    const Cake single = *integrator.integrate(first.view());
    for (std::size_t c = 0; c < mean.intensity.size(); ++c) {
        if (mean.count[c] > 0.0) {
            ASSERT_NEAR(mean.intensity[c], kLevel, kLevel * 1e-5);
            ASSERT_NEAR(mean.count[c], single.count[c], 1e-9);
            // Two frames: the mean's variance is smaller than one frame's.
            ASSERT_LT(mean.variance[c], single.variance[c]);
        }
    }
}

TEST_P(BothSplittings, MergingPerFrameSumsEqualsAccumulatingDirectly) {
    const SmallDetector setup;
    const auto integrator = setup.make(GetParam(), setup.corrections());
    auto image = setup.flat_image();
    CakeAccumulator direct(setup.axes);
    CakeAccumulator merged;
    for (int f = 0; f < 3; ++f) {
        for (std::size_t i = 0; i < image.size(); i += 17) {
            image[i] += static_cast<float>(5 * f);
        }
        const auto frame = Frame::from_vector(setup.shape(), image);
        ASSERT_TRUE(integrator.accumulate(frame.view(), direct).has_value());
        CakeAccumulator single(setup.axes);
        ASSERT_TRUE(integrator.accumulate(frame.view(), single).has_value());
        ASSERT_TRUE(merged.merge(single).has_value());
    }
    const Cake a = direct.finish();
    const Cake b = merged.finish();
    EXPECT_EQ(b.frame_count, 3U);
    for (std::size_t c = 0; c < a.intensity.size(); ++c) {
        if (a.count[c] > 0.0) {
            ASSERT_NEAR(a.intensity[c], b.intensity[c], 1e-12 * std::abs(a.intensity[c]));
        }
    }
    // Sums of another layout that already hold frames are never silently reset or mixed.
    CakeAccumulator foreign(CakeAxes{5, 4, 0.1, 2.0});
    SmallDetector other = setup;
    other.axes = CakeAxes{5, 4, 0.1, 2.0};
    const auto small = other.make(GetParam(), other.corrections());
    ASSERT_TRUE(small.accumulate(Frame::from_vector(setup.shape(), image).view(), foreign));
    EXPECT_FALSE(merged.merge(foreign).has_value());
    EXPECT_FALSE(integrator.accumulate(Frame::from_vector(setup.shape(), image).view(), foreign)
                     .has_value());
}

TEST_P(BothSplittings, NonFinitePixelsOfFloatFramesAreExcluded) {
    const SmallDetector setup;
    const auto integrator = setup.make(GetParam(), setup.corrections());
    auto image = setup.flat_image();
    image[100] = std::nanf("");
    image[2000] = INFINITY;
    const auto cake = *integrator.integrate(Frame::from_vector(setup.shape(), image).view());
    for (std::size_t c = 0; c < cake.intensity.size(); ++c) {
        if (cake.count[c] > 1e-6) {
            ASSERT_TRUE(std::isfinite(cake.intensity[c])) << "cell " << c;
            ASSERT_NEAR(cake.intensity[c], kLevel, kLevel * 1e-5);
        }
    }
}

TEST(CakeIntegrator, RejectsFramesOfAnotherShapeOrBadExposure) {
    const SmallDetector setup;
    const auto integrator = setup.make(PixelSplitting::kNone, setup.corrections());
    const auto small = Frame::from_vector(FrameShape{4, 4}, std::vector<std::uint16_t>(16));
    const auto wrong = integrator.integrate(small.view());
    ASSERT_FALSE(wrong.has_value());
    EXPECT_THAT(wrong.error().message, HasSubstr("4x4"));
    EXPECT_THAT(wrong.error().message, HasSubstr("96x128"));
    auto frame = Frame::from_vector(setup.shape(), setup.flat_image());
    frame.exposure_s = 0.0;
    EXPECT_FALSE(integrator.integrate(frame.view()).has_value());
}

TEST(CakeIntegrator, RejectsEmptyRangesAndMismatchedCorrections) {
    const SmallDetector setup;
    CakeAxes axes = setup.axes;
    axes.q_max_inv_angstrom = axes.q_min_inv_angstrom;
    EXPECT_FALSE(CakeIntegrator::create(setup.geometry, {axes, PixelSplitting::kNone, 1}, {}));
    DetectorCorrections corrections;
    corrections.flat.assign(10, 1.F);
    const auto bad =
        CakeIntegrator::create(setup.geometry, {setup.axes, PixelSplitting::kNone, 1}, corrections);
    ASSERT_FALSE(bad.has_value());
    EXPECT_THAT(bad.error().message, HasSubstr("flat has 10 pixels"));
}

TEST(CakeIntegrator, EveryPixelTypeGivesTheSameCake) {
    const SmallDetector setup;
    DetectorCorrections corrections;
    const auto integrator = setup.make(PixelSplitting::kBoundingBox, corrections);
    std::vector<std::uint16_t> base(setup.shape().pixel_count());
    for (std::size_t i = 0; i < base.size(); ++i) {
        base[i] = static_cast<std::uint16_t>(1 + (i * 31) % 120);
    }
    const auto reference = *integrator.integrate(Frame::from_vector(setup.shape(), base).view());
    const auto check = [&](const Frame& frame) {
        const auto cake = *integrator.integrate(frame.view());
        for (std::size_t c = 0; c < cake.intensity.size(); ++c) {
            if (reference.count[c] > 0.0) {
                ASSERT_NEAR(cake.intensity[c], reference.intensity[c],
                            1e-9 * std::abs(reference.intensity[c]))
                    << to_string(frame.pixel_type());
            }
        }
    };
    check(Frame::from_vector(setup.shape(), std::vector<std::uint8_t>(base.begin(), base.end())));
    check(Frame::from_vector(setup.shape(), std::vector<std::int8_t>(base.begin(), base.end())));
    check(Frame::from_vector(setup.shape(), std::vector<std::int16_t>(base.begin(), base.end())));
    check(Frame::from_vector(setup.shape(), std::vector<std::int32_t>(base.begin(), base.end())));
    check(Frame::from_vector(setup.shape(), std::vector<std::uint32_t>(base.begin(), base.end())));
    check(Frame::from_vector(setup.shape(), std::vector<float>(base.begin(), base.end())));
    check(Frame::from_vector(setup.shape(), std::vector<double>(base.begin(), base.end())));
}

TEST(PixelSplitting, ParsesTheNamesTheCommandLineUses) {
    EXPECT_EQ(*parse_pixel_splitting("none"), PixelSplitting::kNone);
    EXPECT_EQ(*parse_pixel_splitting("bbox"), PixelSplitting::kBoundingBox);
    const auto bad = parse_pixel_splitting("full");
    ASSERT_FALSE(bad.has_value());
    EXPECT_THAT(bad.error().message, HasSubstr("none, bbox"));
}

// A lookup is built once per geometry and shared by the integrators of many runs (the reduce
// service keeps it across runs): each run's mask, dark and flat must act on its own integrator
// only, and an integrator from a shared lookup must equal one built from the geometry.
TEST_P(BothSplittings, IntegratorsSharingOneLookupKeepTheirOwnCorrections) {
    const SmallDetector setup;
    DetectorCorrections masked = setup.corrections();
    masked.mask.assign(setup.shape().pixel_count(), 0);
    for (std::size_t i = 0; i < masked.mask.size(); i += 5) {
        masked.mask[i] = 1;
    }
    masked.mask[(setup.shape().rows / 2) * setup.shape().cols + setup.shape().cols / 2] = 1;
    DetectorCorrections flattened = setup.corrections();
    flattened.flat.assign(setup.shape().pixel_count(), 1.0F);
    for (std::size_t i = 0; i < flattened.flat.size(); i += 3) {
        flattened.flat[i] = i % 2 == 0 ? 0.0F : 1.25F;  // 0: excluded (SPEC 2)
    }
    auto lookup =
        CakeLookup::create(setup.geometry, setup.axes, GetParam(), geometric_factors(masked), 3);
    ASSERT_TRUE(lookup.has_value()) << lookup.error().message;
    EXPECT_EQ((*lookup)->detector_shape().pixel_count(), setup.shape().pixel_count());
    EXPECT_GT((*lookup)->size_bytes(), setup.shape().pixel_count() * sizeof(float));

    const auto frame = Frame::from_vector(setup.shape(), setup.flat_image());
    for (const DetectorCorrections& corrections : {masked, flattened, masked}) {
        auto shared = CakeIntegrator::create(*lookup, 2, corrections);
        ASSERT_TRUE(shared.has_value()) << shared.error().message;
        const auto own = setup.make(GetParam(), corrections, 1);
        EXPECT_EQ(shared->contributing_pixel_count(), own.contributing_pixel_count());
        const auto a = *shared->integrate(frame.view());
        const auto b = *own.integrate(frame.view());
        ASSERT_EQ(a.intensity.size(), b.intensity.size());
        for (std::size_t c = 0; c < a.intensity.size(); ++c) {
            EXPECT_EQ(a.count[c], b.count[c]) << "cell " << c;
            if (a.count[c] > 0.0) {
                EXPECT_NEAR(a.intensity[c], b.intensity[c], kExactTolerance * kLevel)
                    << "cell " << c;
            }
        }
    }
    // The masked integrators do not see the pixels the flat excluded, and the other way round.
    const auto first = CakeIntegrator::create(*lookup, 1, masked);
    const auto second = CakeIntegrator::create(*lookup, 1, flattened);
    EXPECT_NE(first->contributing_pixel_count(), second->contributing_pixel_count());
}

TEST(CakeLookup, RefusesCorrectionsWithOtherGeometricFactors) {
    const SmallDetector setup;
    auto lookup = CakeLookup::create(setup.geometry, setup.axes, PixelSplitting::kNone,
                                     GeometricFactors{true, 0.99});
    ASSERT_TRUE(lookup.has_value()) << lookup.error().message;
    DetectorCorrections corrections;
    corrections.polarization_factor = 0.95;
    const auto wrong = CakeIntegrator::create(*lookup, 1, corrections);
    ASSERT_FALSE(wrong.has_value());
    EXPECT_THAT(wrong.error().message, HasSubstr("polarization 0.99"));
    EXPECT_THAT(wrong.error().message, HasSubstr("polarization 0.95"));
    corrections.polarization_factor = 0.99;
    corrections.correct_solid_angle = false;
    EXPECT_FALSE(CakeIntegrator::create(*lookup, 1, corrections).has_value());
    corrections.correct_solid_angle = true;
    EXPECT_TRUE(CakeIntegrator::create(*lookup, 1, corrections).has_value());
    EXPECT_FALSE(CakeIntegrator::create(nullptr, 1, corrections).has_value());
    CakeAxes empty = setup.axes;
    empty.n_chi = 0;
    EXPECT_FALSE(
        CakeLookup::create(setup.geometry, empty, PixelSplitting::kNone, GeometricFactors{}));
}

INSTANTIATE_TEST_SUITE_P(Splittings, BothSplittings,
                         ::testing::Values(PixelSplitting::kNone, PixelSplitting::kBoundingBox),
                         [](const auto& param_info) {
                             return std::string(to_string(param_info.param));
                         });

}  // namespace
}  // namespace anisoflow::reduce
