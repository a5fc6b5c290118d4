#include "anisoflow/core/frame.hpp"

#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

namespace anisoflow {
namespace {

TEST(Frame, ViewKeepsTypeShapeAndPixels) {
    auto frame = Frame::from_vector(FrameShape{2, 3}, std::vector<std::uint16_t>{1, 2, 3, 4, 5, 6});
    frame.exposure_s = 0.5;
    const FrameView view = frame.view();
    EXPECT_EQ(view.pixel_type(), PixelType::kUint16);
    EXPECT_EQ(view.shape, (FrameShape{2, 3}));
    EXPECT_EQ(view.exposure_s, 0.5);
    const auto& span = std::get<std::span<const std::uint16_t>>(view.pixels);
    ASSERT_EQ(span.size(), 6U);
    EXPECT_EQ(span[5], 6);
    EXPECT_EQ(to_double(view.pixels)[4], 5.0);
}

TEST(Frame, PixelTypeNamesAndSizesAgreeWithVariantOrder) {
    EXPECT_EQ(to_string(Frame::from_vector(FrameShape{1, 1}, std::vector<float>{1.F}).pixel_type()),
              "float32");
    EXPECT_EQ(pixel_size_bytes(PixelType::kUint16), 2U);
    EXPECT_EQ(pixel_size_bytes(PixelType::kFloat64), 8U);
    EXPECT_EQ(
        to_string(Frame::from_vector(FrameShape{1, 1}, std::vector<std::int32_t>{1}).pixel_type()),
        "int32");
}

}  // namespace
}  // namespace anisoflow
