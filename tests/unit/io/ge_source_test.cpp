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

constexpr std::size_t kGeFrameBytes = 2048 * 2048 * 2;

std::uint16_t ge_value(std::size_t frame, std::size_t row, std::size_t col) {
    return static_cast<std::uint16_t>((frame * 7919 + row * 31 + col) & 0xFFFFU);
}

TEST(GeFrameSource, ReadsLittleEndianFramesAfterTheHeader) {
    const fs::path dir = testing::scratch_dir();
    const fs::path file = dir / "scan_00042.ge2";
    ASSERT_TRUE(fixtures::write_ge(file, 3, ge_value));
    ASSERT_EQ(fs::file_size(file), kGeHeaderBytes + 3 * kGeFrameBytes);
    {
        auto source = open_frame_source(file.string());
        ASSERT_TRUE(source.has_value()) << source.error().message;
        EXPECT_EQ((*source)->frame_count(), 3U);
        EXPECT_EQ((*source)->shape(), (FrameShape{2048, 2048}));
        EXPECT_EQ((*source)->pixel_type(), PixelType::kUint16);
        for (std::size_t index : {1U, 2U, 0U}) {
            auto frame = (*source)->read_frame(index);
            ASSERT_TRUE(frame.has_value()) << frame.error().message;
            EXPECT_EQ(frame->index_in_source, index);
            const auto* pixels = std::get_if<std::vector<std::uint16_t>>(&frame->pixels);
            ASSERT_NE(pixels, nullptr);
            ASSERT_EQ(pixels->size(), 2048U * 2048U);
            std::size_t mismatches = 0;
            for (std::size_t r = 0; r < 2048; ++r) {
                for (std::size_t c = 0; c < 2048; ++c) {
                    mismatches += (*pixels)[r * 2048 + c] != ge_value(index, r, c) ? 1 : 0;
                }
            }
            EXPECT_EQ(mismatches, 0U) << "frame " << index;
        }
        EXPECT_FALSE((*source)->read_frame(3).has_value());
    }
    fs::remove_all(dir);  // 24 MB
}

TEST(GeFrameSource, ReportsTruncatedFileWithByteCounts) {
    const fs::path dir = testing::scratch_dir();
    const fs::path file = dir / "cut.ge5";
    std::ofstream(file).close();
    fs::resize_file(file, kGeHeaderBytes + kGeFrameBytes + 100);  // sparse: nothing written
    auto source = open_frame_source(file.string());
    ASSERT_FALSE(source.has_value());
    EXPECT_EQ(source.error().code, ErrorCode::kCorrupt);
    EXPECT_THAT(source.error().message, HasSubstr("cut.ge5: truncated GE file"));
    EXPECT_THAT(source.error().message,
                HasSubstr("8396900 bytes is not the 8192-byte header plus whole 8388608-byte "
                          "frames (1 whole frames and 100 bytes left over)"));

    fs::resize_file(file, 100);
    source = open_frame_source(file.string());
    ASSERT_FALSE(source.has_value());
    EXPECT_THAT(source.error().message, HasSubstr("cut.ge5: truncated GE file: 100 bytes"));

    fs::resize_file(file, kGeHeaderBytes);
    source = open_frame_source(file.string());
    ASSERT_FALSE(source.has_value());
    EXPECT_THAT(source.error().message, HasSubstr("cut.ge5: GE file holds a header but no frames"));
}

TEST(GeFrameSource, AcceptsEveryGeExtensionCaseInsensitively) {
    const fs::path dir = testing::scratch_dir();
    for (const char* name : {"a.ge", "b.GE2", "c.ge3", "d.Ge5"}) {
        std::ofstream(dir / name).close();
        fs::resize_file(dir / name, kGeHeaderBytes + kGeFrameBytes);
        auto source = open_frame_source((dir / name).string());
        ASSERT_TRUE(source.has_value()) << name << ": " << source.error().message;
        EXPECT_EQ((*source)->frame_count(), 1U);
    }
}

}  // namespace
}  // namespace anisoflow::io
