#include "anisoflow/reduce/corrections.hpp"

#include <cstdint>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace anisoflow::reduce {
namespace {

using ::testing::HasSubstr;

TEST(FrameAverager, AveragesFramesOfAnyPixelType) {
    FrameAverager averager;
    const auto a = Frame::from_vector(FrameShape{1, 3}, std::vector<std::uint16_t>{100, 102, 0});
    const auto b = Frame::from_vector(FrameShape{1, 3}, std::vector<float>{104.F, 100.F, 1.F});
    ASSERT_TRUE(averager.add(a.view()).has_value());
    ASSERT_TRUE(averager.add(b.view()).has_value());
    const auto mean = averager.mean();
    ASSERT_TRUE(mean.has_value());
    EXPECT_EQ(*mean, (std::vector<float>{102.F, 101.F, 0.5F}));
    EXPECT_EQ(averager.frame_count(), 2U);
}

TEST(FrameAverager, RejectsShapeChangeAndEmptyMean) {
    FrameAverager averager;
    EXPECT_FALSE(averager.mean().has_value());
    ASSERT_TRUE(
        averager.add(Frame::from_vector(FrameShape{2, 2}, std::vector<std::uint16_t>(4)).view())
            .has_value());
    const auto wrong =
        averager.add(Frame::from_vector(FrameShape{1, 4}, std::vector<std::uint16_t>(4)).view());
    ASSERT_FALSE(wrong.has_value());
    EXPECT_THAT(wrong.error().message, HasSubstr("1x4"));
}

TEST(DetectorCorrections, ValidateReportsEveryProblemAtOnce) {
    DetectorCorrections corrections;
    corrections.dark_counts.assign(5, 0.F);
    corrections.mask.assign(7, 0);
    corrections.polarization_factor = 1.5;
    const auto valid = corrections.validate(FrameShape{2, 3});
    ASSERT_FALSE(valid.has_value());
    EXPECT_THAT(valid.error().message, HasSubstr("dark has 5 pixels"));
    EXPECT_THAT(valid.error().message, HasSubstr("mask has 7 pixels"));
    EXPECT_THAT(valid.error().message, HasSubstr("polarization factor 1.5"));
    DetectorCorrections fine;
    fine.flat.assign(6, 1.F);
    EXPECT_TRUE(fine.validate(FrameShape{2, 3}).has_value());
}

}  // namespace
}  // namespace anisoflow::reduce
