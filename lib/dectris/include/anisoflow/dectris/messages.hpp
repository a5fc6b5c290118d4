#pragma once
// Neutral structs for the messages of DECTRIS detector streams (SIMPLON Stream v1 and v2), as
// the decoders in decode.hpp produce them; docs/protocol-dectris.md maps every field.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "anisoflow/core/frame.hpp"

namespace anisoflow::dectris {

enum class Protocol { kStreamV1, kStreamV2 };

// Pixel types are core's (anisoflow::PixelType); detector images arrive as kUint8, kUint16 or
// kUint32, little-endian on the wire.

/// How an image payload is encoded; the payload is kept exactly as it arrived.
enum class Encoding {
    kRaw,       ///< pixels as they are (v1 "<", v2 plain typed array)
    kLz4Block,  ///< one LZ4 block without any header (v1 "lz4<")
    kLz4Hdf5,   ///< HDF5 LZ4 filter framing (v2 tag 56500 "lz4")
    kBslz4,     ///< bitshuffle-LZ4 with the 12-byte filter header (v1 "bs16-lz4<", v2 "bslz4")
};

[[nodiscard]] std::string_view to_string(Encoding encoding);

struct Shape {
    std::size_t width_px = 0;   ///< fast axis (x)
    std::size_t height_px = 0;  ///< slow axis (y)
    [[nodiscard]] std::size_t pixel_count() const { return width_px * height_px; }
    friend bool operator==(const Shape&, const Shape&) = default;
};

/// Detector and beam settings of a series, from the v1 config part or the v2 start message.
struct DetectorConfig {
    Shape shape;
    std::optional<PixelType> pixel_type;  ///< v1 bit_depth_image, v2 image_dtype, if sent
    double beam_center_x_px = 0.0;
    double beam_center_y_px = 0.0;
    double detector_distance_m = 0.0;
    double incident_wavelength_angstrom = 0.0;
    double x_pixel_size_m = 0.0;
    double y_pixel_size_m = 0.0;
    double count_time_s = 0.0;
    std::optional<double> frame_time_s;
    std::uint64_t number_of_images = 0;  ///< v1: nimages * ntrigger
    std::optional<std::uint64_t> saturation_value;
    std::string detector_description;
    std::vector<std::string> channels;  ///< v2 channel names; empty for v1
};

struct SeriesStart {
    Protocol protocol = Protocol::kStreamV1;
    std::uint64_t series_id = 0;
    std::string series_unique_id;  ///< v2 only
    std::string header_detail;     ///< v1 only: "all", "basic" or "none"
    /// Absent only for v1 header_detail "none", which sends no detector config.
    std::optional<DetectorConfig> config;
};

/// One channel (threshold) of an image: the payload untouched plus what is needed to decode it.
struct ChannelData {
    std::string name;  ///< v2 channel name; empty for v1
    Shape shape;
    PixelType pixel_type = PixelType::kUint32;
    Encoding encoding = Encoding::kRaw;
    std::size_t uncompressed_size_bytes = 0;  ///< shape.pixel_count() * element size
    std::vector<std::byte> payload;           ///< as received, for the archive
};

/// Exposure times relative to the series start (v1 dconfig-1.0 in ns, v2 rationals in s).
struct ImageTiming {
    std::chrono::nanoseconds start_time{0};
    std::chrono::nanoseconds stop_time{0};
    std::chrono::nanoseconds real_time{0};
};

struct Image {
    Protocol protocol = Protocol::kStreamV1;
    std::uint64_t series_id = 0;
    std::string series_unique_id;    ///< v2 only
    std::uint64_t image_number = 0;  ///< v1 "frame", v2 "image_id"
    ImageTiming timing;
    std::vector<ChannelData> channels;  ///< v1: exactly one
};

struct SeriesEnd {
    Protocol protocol = Protocol::kStreamV1;
    std::uint64_t series_id = 0;
    std::string series_unique_id;  ///< v2 only
};

using Message = std::variant<SeriesStart, Image, SeriesEnd>;

}  // namespace anisoflow::dectris
