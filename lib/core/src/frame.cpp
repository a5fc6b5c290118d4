#include "anisoflow/core/frame.hpp"

#include <limits>

namespace anisoflow {

std::string_view to_string(PixelType type) {
    switch (type) {
        case PixelType::kUint8:
            return "uint8";
        case PixelType::kUint16:
            return "uint16";
        case PixelType::kUint32:
            return "uint32";
        case PixelType::kInt8:
            return "int8";
        case PixelType::kInt16:
            return "int16";
        case PixelType::kInt32:
            return "int32";
        case PixelType::kFloat32:
            return "float32";
        case PixelType::kFloat64:
            return "float64";
    }
    return "unknown";
}

std::size_t pixel_size_bytes(PixelType type) {
    switch (type) {
        case PixelType::kUint8:
        case PixelType::kInt8:
            return 1;
        case PixelType::kUint16:
        case PixelType::kInt16:
            return 2;
        case PixelType::kUint32:
        case PixelType::kInt32:
        case PixelType::kFloat32:
            return 4;
        case PixelType::kFloat64:
            return 8;
    }
    return 0;
}

std::optional<double> integer_saturation(PixelType type) {
    switch (type) {
        case PixelType::kUint8:
            return std::numeric_limits<std::uint8_t>::max();
        case PixelType::kUint16:
            return std::numeric_limits<std::uint16_t>::max();
        case PixelType::kUint32:
            return std::numeric_limits<std::uint32_t>::max();
        case PixelType::kInt8:
            return std::numeric_limits<std::int8_t>::max();
        case PixelType::kInt16:
            return std::numeric_limits<std::int16_t>::max();
        case PixelType::kInt32:
            return std::numeric_limits<std::int32_t>::max();
        case PixelType::kFloat32:
        case PixelType::kFloat64:
            return std::nullopt;
    }
    return std::nullopt;
}

PixelType FrameView::pixel_type() const { return static_cast<PixelType>(pixels.index()); }

PixelType Frame::pixel_type() const { return static_cast<PixelType>(pixels.index()); }

FrameView Frame::view() const {
    FrameView view;
    view.shape = shape;
    view.exposure_s = exposure_s;
    view.pixels = std::visit(
        [](const auto& buffer) -> PixelSpan {
            return std::span<const typename std::decay_t<decltype(buffer)>::value_type>(buffer);
        },
        pixels);
    return view;
}

std::vector<double> to_double(const PixelSpan& pixels) {
    return std::visit(
        [](const auto& span) { return std::vector<double>(span.begin(), span.end()); }, pixels);
}

}  // namespace anisoflow
