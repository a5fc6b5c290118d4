#include <cstdint>
#include <filesystem>
#include <string>
#include <variant>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "anisoflow/io/frame_source.hpp"
#include "anisoflow/testing/test_paths.hpp"

#include "fixture_writers.hpp"

namespace anisoflow::io {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

/// A single-page 2x3 uint16 TIFF whose pixels all equal `value`.
::testing::AssertionResult write_flat_tiff(const fs::path& file, std::uint16_t value) {
    return fixtures::write_tiff<std::uint16_t>(file, 2, 3, {std::vector<std::uint16_t>(6, value)});
}

std::uint16_t first_pixel(FrameSource& source, std::size_t index) {
    auto frame = source.read_frame(index);
    EXPECT_TRUE(frame.has_value()) << frame.error().message;
    if (!frame) {
        return 0;
    }
    EXPECT_EQ(frame->index_in_source, index);
    return std::get<std::vector<std::uint16_t>>(frame->pixels).front();
}

TEST(FrameSpec, GlobExpandsToFilesInSortedOrder) {
    const fs::path dir = testing::scratch_dir();
    ASSERT_TRUE(write_flat_tiff(dir / "b_2.tif", 3));
    ASSERT_TRUE(write_flat_tiff(dir / "a_10.tif", 1));
    ASSERT_TRUE(write_flat_tiff(dir / "a_9.tif", 2));
    ASSERT_TRUE(write_flat_tiff(dir / "c_1.tiff", 4));  // not matched by *.tif
    fs::create_directory(dir / "d.tif");                // directories are skipped

    auto source = open_frame_source((dir / "*.tif").string());
    ASSERT_TRUE(source.has_value()) << source.error().message;
    ASSERT_EQ((*source)->frame_count(), 3U);
    // Byte-wise order: a_10 < a_9 < b_2 (no natural-number sorting).
    EXPECT_EQ(first_pixel(**source, 0), 1);
    EXPECT_EQ(first_pixel(**source, 1), 2);
    EXPECT_EQ(first_pixel(**source, 2), 3);
    EXPECT_EQ(first_pixel(**source, 0), 1);  // back to a file already closed
    EXPECT_THAT((*source)->describe(), HasSubstr("a_10.tif + "));

    auto question = open_frame_source((dir / "a_?.tif").string());
    ASSERT_TRUE(question.has_value()) << question.error().message;
    EXPECT_EQ((*question)->frame_count(), 1U);
    EXPECT_EQ(first_pixel(**question, 0), 2);

    auto bracket = open_frame_source((dir / "[bc]_*").string());
    ASSERT_TRUE(bracket.has_value()) << bracket.error().message;
    EXPECT_EQ((*bracket)->frame_count(), 2U);
    EXPECT_EQ(first_pixel(**bracket, 1), 4);
}

TEST(FrameSpec, GlobWithoutMatchNamesThePattern) {
    const fs::path pattern = testing::scratch_dir() / "run_*.h5";
    auto source = open_frame_source(pattern.string());
    ASSERT_FALSE(source.has_value());
    EXPECT_EQ(source.error().code, ErrorCode::kNotFound);
    EXPECT_THAT(source.error().message,
                HasSubstr("no file matches the pattern '" + pattern.string() + "'"));
}

TEST(FrameSpec, GlobAppliesDatasetSelectionToEveryFile) {
    const fs::path dir = testing::scratch_dir();
    for (int run = 0; run < 3; ++run) {
        ASSERT_TRUE(fixtures::write_hdf5<std::uint16_t>(
            dir / ("run_" + std::to_string(run) + ".h5"), "/scan/frames", {2, 2, 3},
            fixtures::ramp<std::uint16_t>(12, 1, 100.0 * run)));
    }
    auto source = open_frame_source((dir / "run_*.h5").string() + "::/scan/frames");
    ASSERT_TRUE(source.has_value()) << source.error().message;
    ASSERT_EQ((*source)->frame_count(), 6U);
    EXPECT_EQ(first_pixel(**source, 5), 206);  // run 2, frame 1
    EXPECT_EQ(first_pixel(**source, 2), 100);  // run 1, frame 0
}

TEST(FrameSpec, ConcatenatesSeveralSpecsInOrder) {
    const fs::path dir = testing::scratch_dir();
    ASSERT_TRUE(fixtures::write_hdf5<std::uint16_t>(dir / "stack.h5", "/entry/data/data", {2, 2, 3},
                                                    fixtures::ramp<std::uint16_t>(12, 1, 10)));
    ASSERT_TRUE(write_flat_tiff(dir / "single.tif", 50));
    ASSERT_TRUE(write_flat_tiff(dir / "more_1.tif", 61));
    ASSERT_TRUE(write_flat_tiff(dir / "more_2.tif", 62));

    auto source = open_frame_sources({(dir / "single.tif").string(), (dir / "stack.h5").string(),
                                      (dir / "more_*.tif").string()});
    ASSERT_TRUE(source.has_value()) << source.error().message;
    ASSERT_EQ((*source)->frame_count(), 5U);
    EXPECT_EQ((*source)->shape(), (FrameShape{2, 3}));
    EXPECT_EQ(first_pixel(**source, 0), 50);
    EXPECT_EQ(first_pixel(**source, 1), 10);
    EXPECT_EQ(first_pixel(**source, 2), 16);
    EXPECT_EQ(first_pixel(**source, 3), 61);
    EXPECT_EQ(first_pixel(**source, 4), 62);
    EXPECT_EQ(first_pixel(**source, 1), 10);
    EXPECT_FALSE((*source)->read_frame(5).has_value());
}

TEST(FrameSpec, OutOfRangeFrameIndexIsAnErrorNamingTheSourceForEveryFormat) {
    const fs::path dir = testing::scratch_dir();
    ASSERT_TRUE(fixtures::write_hdf5<std::uint16_t>(dir / "stack.h5", "/entry/data/data", {2, 2, 3},
                                                    fixtures::ramp<std::uint16_t>(12)));
    ASSERT_TRUE(write_flat_tiff(dir / "single.tif", 7));
    for (const fs::path& file : {dir / "stack.h5", dir / "single.tif"}) {
        auto source = open_frame_source(file.string());
        ASSERT_TRUE(source.has_value()) << source.error().message;
        const std::size_t count = (*source)->frame_count();
        ASSERT_TRUE((*source)->read_frame(count - 1).has_value());
        const auto beyond = (*source)->read_frame(count);
        ASSERT_FALSE(beyond.has_value());
        EXPECT_EQ(beyond.error().code, ErrorCode::kInvalidArgument);
        EXPECT_THAT(beyond.error().message, HasSubstr(file.filename().string()));
        EXPECT_THAT(beyond.error().message, HasSubstr("frame index " + std::to_string(count)));
    }
}

TEST(FrameSpec, ConcatenationRejectsFileOfAnotherShape) {
    const fs::path dir = testing::scratch_dir();
    ASSERT_TRUE(write_flat_tiff(dir / "good_1.tif", 1));
    ASSERT_TRUE(write_flat_tiff(dir / "good_2.tif", 2));
    ASSERT_TRUE(fixtures::write_tiff<std::uint16_t>(dir / "good_3.tif", 3, 2,
                                                    {std::vector<std::uint16_t>(6)}));
    auto source = open_frame_source((dir / "good_*.tif").string());
    ASSERT_FALSE(source.has_value());
    EXPECT_EQ(source.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(source.error().message, HasSubstr("good_3.tif: frame shape 3x2 differs from 2x3"));

    ASSERT_TRUE(fixtures::write_tiff<float>(dir / "float.tif", 2, 3, {std::vector<float>(6)}));
    auto mixed = open_frame_sources({(dir / "good_1.tif").string(), (dir / "float.tif").string()});
    ASSERT_FALSE(mixed.has_value());
    EXPECT_THAT(mixed.error().message,
                HasSubstr("float.tif: pixel type float32 differs from uint16"));
}

TEST(FrameSpec, RejectsUnknownExtensionsAndMisplacedDatasetSelection) {
    const fs::path dir = testing::scratch_dir();
    auto unknown = open_frame_source((dir / "frame.cbf").string());
    ASSERT_FALSE(unknown.has_value());
    EXPECT_EQ(unknown.error().code, ErrorCode::kUnsupported);
    EXPECT_THAT(unknown.error().message, HasSubstr("frame.cbf: unknown frame file type '.cbf'"));

    ASSERT_TRUE(write_flat_tiff(dir / "image.tif", 1));
    auto selection = open_frame_source((dir / "image.tif").string() + "::/entry/data/data");
    ASSERT_FALSE(selection.has_value());
    EXPECT_THAT(selection.error().message,
                HasSubstr("image.tif: a '::/entry/data/data' dataset selection only applies to "
                          "HDF5 files"));

    EXPECT_FALSE(open_frame_sources({}).has_value());
    EXPECT_FALSE(open_frame_source("").has_value());
}

}  // namespace
}  // namespace anisoflow::io
