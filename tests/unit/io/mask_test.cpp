#include "anisoflow/io/mask.hpp"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "anisoflow/testing/test_paths.hpp"

#include "fixture_writers.hpp"

namespace anisoflow::io {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

TEST(Mask, ReadsDetectorPixelMaskByDefaultAsZeroOrOne) {
    const fs::path file = testing::scratch_dir() / "mask.h5";
    ASSERT_TRUE(fixtures::write_hdf5<std::uint8_t>(file, "/entry/instrument/detector/pixel_mask",
                                                   {2, 3}, {0, 2, 0, 255, 1, 0}));
    ASSERT_TRUE(fixtures::write_hdf5<std::uint8_t>(file, "/mask", {2, 3}, {1, 1, 1, 1, 1, 1}));
    auto mask = read_mask(file.string(), {2, 3});
    ASSERT_TRUE(mask.has_value()) << mask.error().message;
    EXPECT_THAT(*mask, ElementsAre(0, 1, 0, 1, 1, 0));
}

TEST(Mask, FallsBackToMaskThenDataAndTreatsFractionsAndNanAsMasked) {
    const fs::path dir = testing::scratch_dir();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    ASSERT_TRUE(fixtures::write_hdf5<double>(dir / "a.h5", "/mask", {1, 4}, {0.0, 0.5, nan, -1}));
    auto from_mask = read_mask((dir / "a.h5").string(), {1, 4});
    ASSERT_TRUE(from_mask.has_value()) << from_mask.error().message;
    EXPECT_THAT(*from_mask, ElementsAre(0, 1, 1, 1));

    ASSERT_TRUE(fixtures::write_hdf5<std::int32_t>(dir / "b.h5", "/data", {1, 1, 3}, {0, 7, 0}));
    auto from_data = read_mask((dir / "b.h5").string(), {1, 3});  // [1, rows, cols] accepted
    ASSERT_TRUE(from_data.has_value()) << from_data.error().message;
    EXPECT_THAT(*from_data, ElementsAre(0, 1, 0));
}

TEST(Mask, ReadsExplicitDatasetAndReportsMissingDefaults) {
    const fs::path file = testing::scratch_dir() / "other.h5";
    ASSERT_TRUE(fixtures::write_hdf5<std::uint16_t>(file, "/calib/bad", {2, 2}, {0, 0, 9, 0}));
    auto mask = read_mask(file.string() + "::/calib/bad", {2, 2});
    ASSERT_TRUE(mask.has_value()) << mask.error().message;
    EXPECT_THAT(*mask, ElementsAre(0, 0, 1, 0));

    auto none = read_mask(file.string(), {2, 2});
    ASSERT_FALSE(none.has_value());
    EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
    EXPECT_THAT(none.error().message, HasSubstr("other.h5: no mask dataset found (tried "
                                                "/entry/instrument/detector/pixel_mask, /mask, "
                                                "/data)"));
}

TEST(Mask, ReadsTiffMask) {
    const fs::path file = testing::scratch_dir() / "mask.tif";
    ASSERT_TRUE(fixtures::write_tiff<std::int32_t>(file, 2, 2, {{0, -1, 0, 3}}));
    auto mask = read_mask(file.string(), {2, 2});
    ASSERT_TRUE(mask.has_value()) << mask.error().message;
    EXPECT_THAT(*mask, ElementsAre(0, 1, 0, 1));
}

TEST(Mask, ShapeMismatchNamesFileAndBothShapes) {
    const fs::path dir = testing::scratch_dir();
    ASSERT_TRUE(fixtures::write_tiff<std::uint8_t>(dir / "small.tif", 100, 100,
                                                   {std::vector<std::uint8_t>(100 * 100)}));
    auto tiff = read_mask((dir / "small.tif").string(), {2048, 2048});
    ASSERT_FALSE(tiff.has_value());
    EXPECT_EQ(tiff.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(tiff.error().message,
                HasSubstr("small.tif: mask shape 100x100 does not match the expected 2048x2048"));

    ASSERT_TRUE(fixtures::write_hdf5<std::uint8_t>(dir / "mask.h5", "/mask", {3, 2},
                                                   std::vector<std::uint8_t>(6)));
    auto hdf5 = read_mask((dir / "mask.h5").string(), {2, 3});
    ASSERT_FALSE(hdf5.has_value());
    EXPECT_THAT(hdf5.error().message,
                HasSubstr("mask.h5::/mask: mask shape 3x2 does not match the expected 2x3"));

    ASSERT_TRUE(fixtures::write_hdf5<std::uint8_t>(dir / "stack.h5", "/mask", {2, 2, 3},
                                                   std::vector<std::uint8_t>(12)));
    auto stack = read_mask((dir / "stack.h5").string(), {2, 3});
    ASSERT_FALSE(stack.has_value());
    EXPECT_THAT(stack.error().message, HasSubstr("stack.h5::/mask: a mask is one image, found 2"));
}

}  // namespace
}  // namespace anisoflow::io
