#pragma once
// One detector image. Pixels keep the type the detector or file gave them (uint16 for most
// integrating detectors, uint32 for photon counters, float after processing) so the hot loops can
// be specialised per type instead of converting every frame to float first.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

namespace anisoflow {

/// Frame shape in C order: rows = index along pyFAI's dim1 (slow), cols = dim2 (fast).
struct FrameShape {
    std::size_t rows = 0;
    std::size_t cols = 0;
    [[nodiscard]] std::size_t pixel_count() const { return rows * cols; }
    friend bool operator==(const FrameShape&, const FrameShape&) = default;
};

/// Pixel element types the library processes natively. Readers convert rarer file types
/// (64-bit integers) to kFloat64.
enum class PixelType { kUint8, kUint16, kUint32, kInt8, kInt16, kInt32, kFloat32, kFloat64 };

std::string_view to_string(PixelType type);
std::size_t pixel_size_bytes(PixelType type);
/// The largest value an integer pixel type holds (where a detector saturates); none for floats.
std::optional<double> integer_saturation(PixelType type);

/// Non-owning view of a frame's pixels; one alternative per PixelType, in the same order.
using PixelSpan = std::variant<std::span<const std::uint8_t>, std::span<const std::uint16_t>,
                               std::span<const std::uint32_t>, std::span<const std::int8_t>,
                               std::span<const std::int16_t>, std::span<const std::int32_t>,
                               std::span<const float>, std::span<const double>>;

/// Owning pixel storage; alternatives in the same order as PixelSpan.
using PixelBuffer =
    std::variant<std::vector<std::uint8_t>, std::vector<std::uint16_t>, std::vector<std::uint32_t>,
                 std::vector<std::int8_t>, std::vector<std::int16_t>, std::vector<std::int32_t>,
                 std::vector<float>, std::vector<double>>;

/// A view of one frame with the facts the reduction needs.
struct FrameView {
    FrameShape shape;
    PixelSpan pixels;
    std::optional<double> exposure_s;  ///< counting time; frames are normalised by it when known

    [[nodiscard]] PixelType pixel_type() const;
};

/// An owned frame, as produced by the readers and the simulator.
struct Frame {
    FrameShape shape;
    PixelBuffer pixels;
    std::optional<double> exposure_s;
    std::size_t index_in_source = 0;  ///< position in the file or stream it came from

    [[nodiscard]] FrameView view() const;
    [[nodiscard]] PixelType pixel_type() const;

    template <class T>
    static Frame from_vector(FrameShape shape, std::vector<T> pixels) {
        Frame frame;
        frame.shape = shape;
        frame.pixels = std::move(pixels);
        return frame;
    }
};

/// Converts any pixel type to float64 (for dark/flat averaging and tests).
std::vector<double> to_double(const PixelSpan& pixels);

}  // namespace anisoflow
