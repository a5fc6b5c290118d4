#include <cassert>
#include <cstdint>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "sources.hpp"

namespace anisoflow::io::detail {

Result<void> check_frame_bytes(FrameShape shape, PixelType type, const std::string& label) {
    const std::uint64_t element = pixel_size_bytes(type);
    // Divisions, not a product: rows x cols x element may not fit 64 bits.
    if (shape.cols > kMaxFrameBytes / element ||
        (shape.cols > 0 && shape.rows > kMaxFrameBytes / element / shape.cols)) {
        return fail(ErrorCode::kUnsupported,
                    "{}: frame shape {}x{} of {} is larger than the {} bytes a frame may take",
                    label, shape.rows, shape.cols, to_string(type), kMaxFrameBytes);
    }
    return {};
}

PixelBuffer allocate_pixels(PixelType type, std::size_t count) {
    switch (type) {
        case PixelType::kUint8:
            return std::vector<std::uint8_t>(count);
        case PixelType::kUint16:
            return std::vector<std::uint16_t>(count);
        case PixelType::kUint32:
            return std::vector<std::uint32_t>(count);
        case PixelType::kInt8:
            return std::vector<std::int8_t>(count);
        case PixelType::kInt16:
            return std::vector<std::int16_t>(count);
        case PixelType::kInt32:
            return std::vector<std::int32_t>(count);
        case PixelType::kFloat32:
            return std::vector<float>(count);
        case PixelType::kFloat64:
            return std::vector<double>(count);
    }
    assert(false && "every PixelType has a buffer alternative");
    return std::vector<double>(count);
}

void* pixel_data(PixelBuffer& buffer) {
    return std::visit([](auto& pixels) -> void* { return pixels.data(); }, buffer);
}

}  // namespace anisoflow::io::detail
