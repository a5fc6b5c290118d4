#pragma once
// A fake DECTRIS detector for tests: builds Stream v1 (JSON multipart) and Stream v2 (CBOR)
// messages as the public SIMPLON stream documents describe them, with raw, lz4 and bslz4
// payloads. Messages are plain bytes; tests with real sockets send them unchanged.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "anisoflow/dectris/messages.hpp"

namespace anisoflow::dectris::emulator {

using Part = std::vector<std::byte>;
using Multipart = std::vector<Part>;

/// Payload encodings the emulator writes: v1 "<" / "lz4<" / "bs<bits>-lz4<", v2 plain typed
/// array / tag 56500 "lz4" (HDF5 framing) / tag 56500 "bslz4".
enum class WireEncoding { kRaw, kLz4, kBslz4 };

/// The settings of one emulated series; the defaults are an odd-sized 16-bit detector so that
/// bitshuffle leaves a remainder.
struct SeriesSettings {
    std::uint64_t series_id = 7;
    std::string series_unique_id = "emulated-series-7";
    std::size_t width_px = 37;
    std::size_t height_px = 23;
    PixelType pixel_type = PixelType::kUint16;
    double beam_center_x_px = 18.25;
    double beam_center_y_px = 11.5;
    double detector_distance_m = 0.125;
    double incident_wavelength_angstrom = 0.1771;
    double pixel_size_m = 75e-6;
    double count_time_s = 0.099;
    double frame_time_s = 0.1;
    std::uint64_t number_of_images = 3;
    std::vector<std::string> channels = {"threshold_1"};
    std::uint64_t time_base_hz = 100'000'000;  ///< v2 rational denominators
};

/// Deterministic test pixels of image `image_number`, channel `channel`: low counts, a hot
/// pixel and the no-data value 2^bits - 1 at pixel 0, all fitting the pixel type.
std::vector<std::uint32_t> synthetic_pixels(const SeriesSettings& settings,
                                            std::uint64_t image_number, std::size_t channel = 0);

/// Pixels as little-endian bytes of the settings' pixel type (values must fit).
std::vector<std::byte> pack_pixels(std::span<const std::uint32_t> pixels, PixelType type);

/// The payload bytes for an encoding (v1 lz4 is a bare block, v2 lz4 the HDF5 framing).
std::vector<std::byte> encode_payload(std::span<const std::byte> pixels, PixelType type,
                                      WireEncoding encoding, Protocol protocol);

/// Expected exposure times of an image (start = n * frame_time, real = count_time).
ImageTiming expected_timing(const SeriesSettings& settings, std::uint64_t image_number);

// ---- Stream v1 -------------------------------------------------------------------------------

/// The detector config part sent after dheader-1.0 (SIMPLON detector config keys).
nlohmann::json v1_config(const SeriesSettings& settings);

/// dheader-1.0 with header_detail "none", "basic" or "all" ("all" adds flatfield, pixel mask
/// and countrate table parts).
Multipart v1_start(const SeriesSettings& settings, std::string_view header_detail = "basic");

/// dimage-1.0, dimage_d-1.0, data, dconfig-1.0.
Multipart v1_image(const SeriesSettings& settings, std::uint64_t frame,
                   std::span<const std::uint32_t> pixels, WireEncoding encoding);

Multipart v1_end(const SeriesSettings& settings);

/// Start, number_of_images images of synthetic_pixels(), end.
std::vector<Multipart> v1_series(const SeriesSettings& settings, WireEncoding encoding);

Part json_part(const nlohmann::json& object);
nlohmann::json parse_json_part(std::span<const std::byte> part);

// ---- Stream v2 -------------------------------------------------------------------------------

/// A CBOR value tree that tests can edit (drop a key, change a type) before encoding.
struct CborValue {
    using Array = std::vector<CborValue>;
    using Map = std::vector<std::pair<std::string, CborValue>>;
    struct Tag {
        std::uint64_t tag = 0;
        std::vector<CborValue> content;  ///< exactly one item
    };
    std::variant<std::uint64_t, double, bool, std::string, std::vector<std::byte>, Array, Map, Tag>
        value;

    /// The value of `key` in a map, or nullptr.
    CborValue* find(std::string_view key);
    /// Removes `key` from a map; returns whether it was there.
    bool erase(std::string_view key);
};

CborValue tagged(std::uint64_t tag, CborValue content);

/// Serializes with the self-describe tag 55799 in front, as DECTRIS detectors send it.
Part encode_cbor(const CborValue& value, bool self_described = true);

CborValue v2_start_value(const SeriesSettings& settings);
/// One image with a channel per settings.channels, pixels from synthetic_pixels().
CborValue v2_image_value(const SeriesSettings& settings, std::uint64_t image_id,
                         WireEncoding encoding);
CborValue v2_end_value(const SeriesSettings& settings);

/// Start, number_of_images images, end, each encoded.
std::vector<Part> v2_series(const SeriesSettings& settings, WireEncoding encoding);

}  // namespace anisoflow::dectris::emulator
