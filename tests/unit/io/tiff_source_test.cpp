#include <cstdint>
#include <filesystem>
#include <fstream>
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

std::unique_ptr<FrameSource> open_or_fail(const std::string& spec) {
    auto source = open_frame_source(spec);
    EXPECT_TRUE(source.has_value()) << source.error().message;
    return source ? std::move(*source) : nullptr;
}

template <class T>
std::vector<T> pixels_of(const Frame& frame) {
    const auto* pixels = std::get_if<std::vector<T>>(&frame.pixels);
    return pixels != nullptr ? *pixels : std::vector<T>{};
}

TEST(TiffFrameSource, ReadsSinglePageUint16InStrips) {
    const fs::path file = testing::scratch_dir() / "image.tif";
    constexpr std::uint32_t kRows = 7;  // strips of 3 rows: the last strip is partial
    constexpr std::uint32_t kCols = 5;
    const auto values = fixtures::ramp<std::uint16_t>(kRows * kCols, 1000, 17);
    ASSERT_TRUE(fixtures::write_tiff<std::uint16_t>(file, kRows, kCols, {values}));
    auto source = open_or_fail(file.string());
    ASSERT_NE(source, nullptr);
    EXPECT_EQ(source->frame_count(), 1U);
    EXPECT_EQ(source->shape(), (FrameShape{kRows, kCols}));
    EXPECT_EQ(source->pixel_type(), PixelType::kUint16);
    EXPECT_EQ(source->describe(), file.string());
    auto frame = source->read_frame(0);
    ASSERT_TRUE(frame.has_value()) << frame.error().message;
    EXPECT_EQ(pixels_of<std::uint16_t>(*frame), values);
}

TEST(TiffFrameSource, ReadsMultiPageFloat32OnePagePerFrame) {
    const fs::path file = testing::scratch_dir() / "stack.tiff";
    std::vector<std::vector<float>> pages;
    for (int page = 0; page < 4; ++page) {
        pages.push_back(fixtures::ramp<float>(6 * 9, 0.25, 100.0 * page));
    }
    ASSERT_TRUE(fixtures::write_tiff<float>(file, 6, 9, pages));
    auto source = open_or_fail(file.string());
    ASSERT_NE(source, nullptr);
    ASSERT_EQ(source->frame_count(), 4U);
    EXPECT_EQ(source->pixel_type(), PixelType::kFloat32);
    for (std::size_t index : {0U, 1U, 2U, 3U, 1U, 3U, 0U}) {  // sequential, then random access
        auto frame = source->read_frame(index);
        ASSERT_TRUE(frame.has_value()) << frame.error().message;
        EXPECT_EQ(frame->index_in_source, index);
        EXPECT_EQ(pixels_of<float>(*frame), pages[index]) << "page " << index;
    }
}

TEST(TiffFrameSource, ReadsTiledImageWithPartialEdgeTiles) {
    const fs::path file = testing::scratch_dir() / "tiled.tif";
    constexpr std::uint32_t kRows = 20;
    constexpr std::uint32_t kCols = 37;
    const auto values = fixtures::ramp<std::uint16_t>(kRows * kCols, 3, 1);
    ASSERT_TRUE(
        fixtures::write_tiff<std::uint16_t>(file, kRows, kCols, {values}, {.tile_size = 16}));
    auto source = open_or_fail(file.string());
    ASSERT_NE(source, nullptr);
    auto frame = source->read_frame(0);
    ASSERT_TRUE(frame.has_value()) << frame.error().message;
    EXPECT_EQ(pixels_of<std::uint16_t>(*frame), values);
}

TEST(TiffFrameSource, ReadsSignedAndByteImagesInTheirOwnTypes) {
    const fs::path dir = testing::scratch_dir();
    const auto signed_values = fixtures::ramp<std::int32_t>(12, -100000, 7);
    ASSERT_TRUE(fixtures::write_tiff<std::int32_t>(dir / "i32.tif", 3, 4, {signed_values}));
    auto source = open_or_fail((dir / "i32.tif").string());
    ASSERT_NE(source, nullptr);
    EXPECT_EQ(source->pixel_type(), PixelType::kInt32);
    EXPECT_EQ(pixels_of<std::int32_t>(*source->read_frame(0)), signed_values);

    const auto bytes = fixtures::ramp<std::uint8_t>(12, 20, 0);
    ASSERT_TRUE(fixtures::write_tiff<std::uint8_t>(dir / "u8.tif", 3, 4, {bytes}));
    source = open_or_fail((dir / "u8.tif").string());
    ASSERT_NE(source, nullptr);
    EXPECT_EQ(source->pixel_type(), PixelType::kUint8);
    EXPECT_EQ(pixels_of<std::uint8_t>(*source->read_frame(0)), bytes);
}

TEST(TiffFrameSource, RejectsRgbImages) {
    const fs::path file = testing::scratch_dir() / "photo.tif";
    ASSERT_TRUE(fixtures::write_tiff<std::uint8_t>(
        file, 4, 4, {std::vector<std::uint8_t>(4 * 4 * 3, 9)},
        {.photometric = 2 /* PHOTOMETRIC_RGB */, .samples_per_pixel = 3}));
    auto source = open_frame_source(file.string());
    ASSERT_FALSE(source.has_value());
    EXPECT_EQ(source.error().code, ErrorCode::kUnsupported);
    EXPECT_THAT(source.error().message, HasSubstr("photo.tif"));
    EXPECT_THAT(source.error().message, HasSubstr("3 samples per pixel"));
}

TEST(TiffFrameSource, RejectsPagesOfDifferentShapes) {
    const fs::path file = testing::scratch_dir() / "mixed.tif";
    ASSERT_TRUE(fixtures::write_tiff<std::uint16_t>(file, 4, 4, {std::vector<std::uint16_t>(16)}));
    ASSERT_TRUE(fixtures::write_tiff<std::uint16_t>(file, 3, 5, {std::vector<std::uint16_t>(15)},
                                                    {.append = true}));
    auto source = open_frame_source(file.string());
    ASSERT_FALSE(source.has_value());
    EXPECT_THAT(source.error().message, HasSubstr("mixed.tif"));
    EXPECT_THAT(source.error().message, HasSubstr("page 1 is 3x5 uint16 but page 0 is 4x4 uint16"));
}

TEST(TiffFrameSource, ReportsTruncatedPixelDataWhenReadingTheFrame) {
    // Directory first, pixels after (as tifffile writes): cutting the file keeps the directory.
    const fs::path file = testing::scratch_dir() / "cut_pixels.tif";
    ASSERT_TRUE(
        fixtures::write_directory_first_tiff(file, 32, 32, fixtures::ramp<std::uint16_t>(32 * 32)));
    auto intact = open_or_fail(file.string());
    ASSERT_NE(intact, nullptr);
    auto frame = intact->read_frame(0);
    ASSERT_TRUE(frame.has_value()) << frame.error().message;
    EXPECT_EQ(pixels_of<std::uint16_t>(*frame), fixtures::ramp<std::uint16_t>(32 * 32));
    intact.reset();

    fs::resize_file(file, fs::file_size(file) - 1000);
    auto source = open_frame_source(file.string());
    ASSERT_TRUE(source.has_value()) << source.error().message;  // the directory is intact
    auto cut = (*source)->read_frame(0);
    ASSERT_FALSE(cut.has_value());
    EXPECT_EQ(cut.error().code, ErrorCode::kCorrupt);
    EXPECT_THAT(cut.error().message, HasSubstr("cut_pixels.tif: cannot read page 0"));
    EXPECT_THAT(cut.error().message, HasSubstr("Read error on strip 0"));  // libtiff's words
}

TEST(TiffFrameSource, ReportsMissingSecondDirectoryOfTruncatedStack) {
    const fs::path file = testing::scratch_dir() / "cut_stack.tif";
    ASSERT_TRUE(fixtures::write_tiff<std::uint16_t>(
        file, 16, 16, {fixtures::ramp<std::uint16_t>(256), fixtures::ramp<std::uint16_t>(256)}));
    fs::resize_file(file, fs::file_size(file) - 20);  // libtiff writes each directory last
    auto source = open_frame_source(file.string());
    ASSERT_FALSE(source.has_value());
    EXPECT_EQ(source.error().code, ErrorCode::kCorrupt);
    EXPECT_THAT(source.error().message, HasSubstr("cut_stack.tif: cannot read page 1"));
}

// Found while writing fuzz_io_tiff (docs/fuzzing.md): a 122-byte file declaring a
// 65536 x 65536 image made read_frame() allocate 8 GiB before libtiff found no pixel data.
// Frames beyond kMaxFrameBytes are refused when the file is opened.
TEST(TiffFrameSource, RefusesAFrameLargerThanTheBoundBeforeAllocatingIt) {
    const fs::path file = testing::scratch_dir() / "huge.tif";
    ASSERT_TRUE(fixtures::write_directory_first_tiff(file, 1U << 16, 1U << 16, {}));
    auto source = open_frame_source(file.string());
    ASSERT_FALSE(source.has_value());
    EXPECT_EQ(source.error().code, ErrorCode::kUnsupported);
    EXPECT_THAT(source.error().message,
                HasSubstr("huge.tif: frame shape 65536x65536 of uint16 is larger than the "
                          "1073741824 bytes a frame may take"));
}

TEST(TiffFrameSource, ReportsTruncatedAndNonTiffFiles) {
    const fs::path dir = testing::scratch_dir();
    const fs::path file = dir / "cut.tif";
    ASSERT_TRUE(fixtures::write_tiff<std::uint16_t>(file, 64, 64,
                                                    {fixtures::ramp<std::uint16_t>(64 * 64)}));
    fs::resize_file(file, fs::file_size(file) / 2);
    auto truncated = open_frame_source(file.string());
    ASSERT_FALSE(truncated.has_value());
    EXPECT_EQ(truncated.error().code, ErrorCode::kCorrupt);
    EXPECT_THAT(truncated.error().message, HasSubstr("cut.tif: cannot read TIFF file"));
    EXPECT_THAT(truncated.error().message, HasSubstr("directory"));  // libtiff's own words

    const fs::path text = dir / "notes.tif";
    std::ofstream(text) << "plain text, not a TIFF\n";
    auto not_tiff = open_frame_source(text.string());
    ASSERT_FALSE(not_tiff.has_value());
    EXPECT_THAT(not_tiff.error().message, HasSubstr("notes.tif: cannot read TIFF file"));

    auto missing = open_frame_source((dir / "absent.tif").string());
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
    EXPECT_THAT(missing.error().message, HasSubstr("absent.tif: file not found"));
}

}  // namespace
}  // namespace anisoflow::io
