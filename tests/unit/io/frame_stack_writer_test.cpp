#include "anisoflow/io/frame_stack_writer.hpp"

#include <cstdint>
#include <filesystem>
#include <variant>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "anisoflow/io/frame_source.hpp"
#include "anisoflow/testing/test_paths.hpp"

namespace anisoflow::io {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

TEST(FrameStackWriter, WrittenStackReadsBackFrameByFrameWithItsCountTime) {
    const fs::path file = testing::scratch_dir() / "stack.h5";
    const FrameShape shape{3, 4};
    {
        auto writer =
            FrameStackWriter::create(file, shape, PixelType::kUint16, FrameStackOptions{1, 0.25});
        ASSERT_TRUE(writer.has_value()) << writer.error().message;
        for (std::uint16_t f = 0; f < 3; ++f) {
            std::vector<std::uint16_t> pixels(shape.pixel_count());
            for (std::size_t i = 0; i < pixels.size(); ++i) {
                pixels[i] = static_cast<std::uint16_t>(1000 * f + i);
            }
            ASSERT_TRUE(writer->append(Frame::from_vector(shape, pixels).view()).has_value());
        }
        EXPECT_EQ(writer->frames_written(), 3U);
        ASSERT_TRUE(writer->close().has_value());
    }
    auto source = open_frame_source(file.string());
    ASSERT_TRUE(source.has_value()) << source.error().message;
    ASSERT_EQ((*source)->frame_count(), 3U);
    EXPECT_EQ((*source)->shape(), shape);
    EXPECT_EQ((*source)->pixel_type(), PixelType::kUint16);
    const auto last = (*source)->read_frame(2);
    ASSERT_TRUE(last.has_value());
    const auto& pixels = std::get<std::vector<std::uint16_t>>(last->pixels);
    EXPECT_EQ(pixels[0], 2000);
    EXPECT_EQ(pixels[11], 2011);
    EXPECT_EQ(last->exposure_s, 0.25);
}

TEST(FrameStackWriter, FloatFramesRoundTripExactly) {
    const fs::path file = testing::scratch_dir() / "flat.h5";
    const std::vector<float> values = {0.5F, 1.25F, -3.0F, 1e-7F};
    {
        auto writer = FrameStackWriter::create(file, FrameShape{2, 2}, PixelType::kFloat32);
        ASSERT_TRUE(writer.has_value());
        ASSERT_TRUE(writer->append(Frame::from_vector(FrameShape{2, 2}, values).view()));
    }  // the destructor closes
    auto source = open_frame_source(file.string());
    ASSERT_TRUE(source.has_value()) << source.error().message;
    EXPECT_EQ(std::get<std::vector<float>>((*source)->read_frame(0)->pixels), values);
}

TEST(FrameStackWriter, RejectsFramesOfAnotherShapeOrTypeAndAppendsAfterClose) {
    const fs::path file = testing::scratch_dir() / "stack.h5";
    auto writer = FrameStackWriter::create(file, FrameShape{2, 2}, PixelType::kUint16);
    ASSERT_TRUE(writer.has_value());
    const auto wrong_shape =
        writer->append(Frame::from_vector(FrameShape{1, 4}, std::vector<std::uint16_t>(4)).view());
    ASSERT_FALSE(wrong_shape.has_value());
    EXPECT_THAT(wrong_shape.error().message, HasSubstr("1x4 uint16"));
    EXPECT_THAT(wrong_shape.error().message, HasSubstr("stack.h5"));
    EXPECT_FALSE(
        writer->append(Frame::from_vector(FrameShape{2, 2}, std::vector<float>(4)).view()));
    ASSERT_TRUE(writer->close().has_value());
    EXPECT_FALSE(
        writer->append(Frame::from_vector(FrameShape{2, 2}, std::vector<std::uint16_t>(4)).view()));
    const auto nowhere = FrameStackWriter::create(file.parent_path() / "no" / "x.h5",
                                                  FrameShape{2, 2}, PixelType::kUint16);
    ASSERT_FALSE(nowhere.has_value());
    EXPECT_THAT(nowhere.error().message, HasSubstr("x.h5"));
}

}  // namespace
}  // namespace anisoflow::io
