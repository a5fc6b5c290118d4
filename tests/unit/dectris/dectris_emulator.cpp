#include "dectris_emulator.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <cbor.h>

#include "anisoflow/codec/bitshuffle.hpp"
#include "anisoflow/codec/lz4.hpp"

namespace anisoflow::dectris::emulator {
namespace {

using nlohmann::json;

/// Block size of the emulated v2 "lz4" payloads: small, so that images span several blocks.
constexpr std::size_t kLz4Hdf5EmulatorBlockBytes = 512;

std::uint32_t max_value(PixelType type) {
    return static_cast<std::uint32_t>((std::uint64_t{1} << (8 * pixel_size_bytes(type))) - 1);
}

std::int64_t ns(double seconds) { return std::llround(seconds * 1e9); }

std::string v1_encoding_name(WireEncoding encoding, PixelType type) {
    switch (encoding) {
        case WireEncoding::kRaw:
            return "<";
        case WireEncoding::kLz4:
            return "lz4<";
        case WireEncoding::kBslz4:
            return "bs" + std::to_string(8 * pixel_size_bytes(type)) + "-lz4<";
    }
    return "?";
}

std::uint64_t typed_array_tag(PixelType type) {
    switch (type) {
        case PixelType::kUint8:
            return 64;
        case PixelType::kUint16:
            return 69;  // uint16 little-endian
        case PixelType::kUint32:
            return 70;  // uint32 little-endian
        default:
            return 0;  // not a detector pixel type: no RFC 8746 tag the decoder accepts
    }
}

CborValue rational(std::int64_t nanoseconds, std::uint64_t time_base_hz) {
    // Exact for the emulator's times (multiples of 1e9 / time_base_hz ns).
    const auto numerator = static_cast<std::uint64_t>(nanoseconds) * time_base_hz / 1'000'000'000;
    return {CborValue::Array{{numerator}, {time_base_hz}}};
}

struct CborDeleter {
    void operator()(cbor_item_t* item) const { cbor_decref(&item); }
};
using CborPtr = std::unique_ptr<cbor_item_t, CborDeleter>;

cbor_item_t* build_uint(std::uint64_t value) {
    // Smallest width, as an encoder following RFC 8949 preferred serialization writes.
    if (value <= 0xFFU) {
        return cbor_build_uint8(static_cast<std::uint8_t>(value));
    }
    if (value <= 0xFFFFU) {
        return cbor_build_uint16(static_cast<std::uint16_t>(value));
    }
    if (value <= 0xFFFFFFFFU) {
        return cbor_build_uint32(static_cast<std::uint32_t>(value));
    }
    return cbor_build_uint64(value);
}

/// Builds the libcbor tree; the caller owns the returned reference.
cbor_item_t* build(const CborValue& value) {
    struct Builder {
        cbor_item_t* operator()(std::uint64_t v) const { return build_uint(v); }
        cbor_item_t* operator()(double v) const { return cbor_build_float8(v); }
        cbor_item_t* operator()(bool v) const { return cbor_build_bool(v); }
        cbor_item_t* operator()(const std::string& v) const {
            return cbor_build_stringn(v.data(), v.size());
        }
        cbor_item_t* operator()(const std::vector<std::byte>& v) const {
            return cbor_build_bytestring(reinterpret_cast<cbor_data>(v.data()), v.size());
        }
        cbor_item_t* operator()(const CborValue::Array& v) const {
            cbor_item_t* array = cbor_new_definite_array(v.size());
            for (const auto& item : v) {
                [[maybe_unused]] const bool ok = cbor_array_push(array, cbor_move(build(item)));
                assert(ok && "array push");
            }
            return array;
        }
        cbor_item_t* operator()(const CborValue::Map& v) const {
            cbor_item_t* map = cbor_new_definite_map(v.size());
            for (const auto& [key, item] : v) {
                [[maybe_unused]] const bool ok = cbor_map_add(
                    map, cbor_pair{cbor_move(cbor_build_stringn(key.data(), key.size())),
                                   cbor_move(build(item))});
                assert(ok && "map add");
            }
            return map;
        }
        cbor_item_t* operator()(const CborValue::Tag& v) const {
            assert(v.content.size() == 1 && "a tag holds one item");
            return cbor_build_tag(v.tag, cbor_move(build(v.content.front())));
        }
    };
    return std::visit(Builder{}, value.value);
}

}  // namespace

std::vector<std::uint32_t> synthetic_pixels(const SeriesSettings& settings,
                                            std::uint64_t image_number, std::size_t channel) {
    const std::size_t n = settings.width_px * settings.height_px;
    std::vector<std::uint32_t> pixels(n);
    const std::uint32_t top = max_value(settings.pixel_type);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t x = i % settings.width_px;
        const std::size_t y = i / settings.width_px;
        // A faint ring-like pattern that changes with the image and channel.
        pixels[i] = static_cast<std::uint32_t>((x * x + y * y + 3 * image_number + channel) % 17);
    }
    pixels[0] = top;                                          // no-data / masked marker
    pixels[n / 2] = std::min<std::uint32_t>(top - 1, 40000);  // a hot pixel
    return pixels;
}

std::vector<std::byte> pack_pixels(std::span<const std::uint32_t> pixels, PixelType type) {
    const std::size_t size = pixel_size_bytes(type);
    std::vector<std::byte> bytes(pixels.size() * size);
    for (std::size_t i = 0; i < pixels.size(); ++i) {
        assert(pixels[i] <= max_value(type) && "pixel does not fit the type");
        for (std::size_t b = 0; b < size; ++b) {
            bytes[i * size + b] = static_cast<std::byte>((pixels[i] >> (8 * b)) & 0xFFU);
        }
    }
    return bytes;
}

std::vector<std::byte> encode_payload(std::span<const std::byte> pixels, PixelType type,
                                      WireEncoding encoding, Protocol protocol) {
    Result<std::vector<std::byte>> payload = std::vector<std::byte>(pixels.begin(), pixels.end());
    switch (encoding) {
        case WireEncoding::kRaw:
            break;
        case WireEncoding::kLz4:
            payload = protocol == Protocol::kStreamV1
                          ? codec::lz4_compress_block(pixels)
                          : codec::lz4_hdf5_compress(pixels, kLz4Hdf5EmulatorBlockBytes);
            break;
        case WireEncoding::kBslz4:
            payload = codec::bslz4_compress(pixels, pixel_size_bytes(type));
            break;
    }
    assert(payload && "emulator payload encoding failed");
    return *payload;
}

ImageTiming expected_timing(const SeriesSettings& settings, std::uint64_t image_number) {
    const std::int64_t start = ns(static_cast<double>(image_number) * settings.frame_time_s);
    const std::int64_t real = ns(settings.count_time_s);
    return {std::chrono::nanoseconds(start), std::chrono::nanoseconds(start + real),
            std::chrono::nanoseconds(real)};
}

Part json_part(const json& object) {
    const std::string text = object.dump();
    Part part(text.size());
    std::memcpy(part.data(), text.data(), text.size());
    return part;
}

json parse_json_part(std::span<const std::byte> part) {
    const auto* text = reinterpret_cast<const char*>(part.data());
    return json::parse(text, text + part.size());
}

json v1_config(const SeriesSettings& settings) {
    return {
        {"beam_center_x", settings.beam_center_x_px},
        {"beam_center_y", settings.beam_center_y_px},
        {"bit_depth_image", 8 * pixel_size_bytes(settings.pixel_type)},
        {"count_time", settings.count_time_s},
        {"countrate_correction_applied", true},
        {"description", "Emulated EIGER2 X 37x23"},
        {"detector_distance", settings.detector_distance_m},
        {"frame_time", settings.frame_time_s},
        {"nimages", settings.number_of_images},
        {"ntrigger", 1},
        {"sensor_material", "CdTe"},
        {"software_version", "emulator"},
        {"wavelength", settings.incident_wavelength_angstrom},
        {"x_pixel_size", settings.pixel_size_m},
        {"x_pixels_in_detector", settings.width_px},
        {"y_pixel_size", settings.pixel_size_m},
        {"y_pixels_in_detector", settings.height_px},
    };
}

Multipart v1_start(const SeriesSettings& settings, std::string_view header_detail) {
    Multipart parts;
    parts.push_back(json_part({{"htype", "dheader-1.0"},
                               {"series", settings.series_id},
                               {"header_detail", std::string(header_detail)}}));
    if (header_detail == "none") {
        return parts;
    }
    parts.push_back(json_part(v1_config(settings)));
    if (header_detail == "all") {
        const json shape = {settings.width_px, settings.height_px};
        const std::size_t n = settings.width_px * settings.height_px;
        parts.push_back(
            json_part({{"htype", "dflatfield-1.0"}, {"shape", shape}, {"type", "float32"}}));
        parts.emplace_back(n * 4, std::byte{0});
        parts.push_back(
            json_part({{"htype", "dpixelmask-1.0"}, {"shape", shape}, {"type", "uint32"}}));
        parts.emplace_back(n * 4, std::byte{0});
        parts.push_back(json_part(
            {{"htype", "dcountrate_table-1.0"}, {"shape", {2, 16}}, {"type", "float32"}}));
        parts.emplace_back(2 * 16 * 4, std::byte{0});
    }
    return parts;
}

Multipart v1_image(const SeriesSettings& settings, std::uint64_t frame,
                   std::span<const std::uint32_t> pixels, WireEncoding encoding) {
    const auto bytes = pack_pixels(pixels, settings.pixel_type);
    Part data = encode_payload(bytes, settings.pixel_type, encoding, Protocol::kStreamV1);
    const ImageTiming timing = expected_timing(settings, frame);
    Multipart parts;
    // The detector sends an md5 of the data; the emulator leaves it empty (not verified).
    parts.push_back(json_part(
        {{"htype", "dimage-1.0"}, {"series", settings.series_id}, {"frame", frame}, {"hash", ""}}));
    parts.push_back(json_part({{"htype", "dimage_d-1.0"},
                               {"shape", {settings.width_px, settings.height_px}},
                               {"type", std::string(to_string(settings.pixel_type))},
                               {"encoding", v1_encoding_name(encoding, settings.pixel_type)},
                               {"size", data.size()}}));
    parts.push_back(std::move(data));
    parts.push_back(json_part({{"htype", "dconfig-1.0"},
                               {"start_time", timing.start_time.count()},
                               {"stop_time", timing.stop_time.count()},
                               {"real_time", timing.real_time.count()}}));
    return parts;
}

Multipart v1_end(const SeriesSettings& settings) {
    return {json_part({{"htype", "dseries_end-1.0"}, {"series", settings.series_id}})};
}

std::vector<Multipart> v1_series(const SeriesSettings& settings, WireEncoding encoding) {
    std::vector<Multipart> messages;
    messages.push_back(v1_start(settings));
    for (std::uint64_t frame = 0; frame < settings.number_of_images; ++frame) {
        const auto pixels = synthetic_pixels(settings, frame);
        messages.push_back(v1_image(settings, frame, pixels, encoding));
    }
    messages.push_back(v1_end(settings));
    return messages;
}

CborValue* CborValue::find(std::string_view key) {
    auto* map = std::get_if<Map>(&value);
    if (map == nullptr) {
        return nullptr;
    }
    for (auto& [name, item] : *map) {
        if (name == key) {
            return &item;
        }
    }
    return nullptr;
}

bool CborValue::erase(std::string_view key) {
    auto* map = std::get_if<Map>(&value);
    if (map == nullptr) {
        return false;
    }
    return std::erase_if(*map, [key](const auto& entry) { return entry.first == key; }) > 0;
}

CborValue tagged(std::uint64_t tag, CborValue content) {
    return {CborValue::Tag{tag, {std::move(content)}}};
}

Part encode_cbor(const CborValue& value, bool self_described) {
    CborPtr root(build(value));
    if (self_described) {
        root.reset(cbor_build_tag(55799, cbor_move(root.release())));
    }
    unsigned char* buffer = nullptr;
    std::size_t buffer_size = 0;
    const std::size_t length = cbor_serialize_alloc(root.get(), &buffer, &buffer_size);
    assert(length > 0 && "cbor serialization failed");
    Part bytes(length);
    std::memcpy(bytes.data(), buffer, length);
    std::free(buffer);  // NOLINT(cppcoreguidelines-no-malloc): libcbor allocates with malloc
    return bytes;
}

CborValue v2_start_value(const SeriesSettings& settings) {
    CborValue::Array channels;
    CborValue::Map thresholds;
    for (const auto& name : settings.channels) {
        channels.push_back({name});
        thresholds.emplace_back(name, CborValue{6000.0});
    }
    return {CborValue::Map{
        {"type", {std::string("start")}},
        {"arm_date", tagged(0, {std::string("2024-05-01T12:00:00.000Z")})},
        {"beam_center_x", {settings.beam_center_x_px}},
        {"beam_center_y", {settings.beam_center_y_px}},
        {"channels", {channels}},
        {"count_time", {settings.count_time_s}},
        {"countrate_correction_enabled", {true}},
        {"detector_description", {std::string("Emulated EIGER2 X 37x23")}},
        {"detector_serial_number", {std::string("E-00-0000")}},
        {"detector_translation", {CborValue::Array{{0.0}, {0.0}, {settings.detector_distance_m}}}},
        {"flatfield_enabled", {false}},
        {"frame_time", {settings.frame_time_s}},
        {"goniometer",
         {CborValue::Map{{"omega", {CborValue::Map{{"increment", {0.1}}, {"start", {0.0}}}}}}}},
        {"image_size_x", {std::uint64_t{settings.width_px}}},
        {"image_size_y", {std::uint64_t{settings.height_px}}},
        {"incident_energy", {12398.42 / settings.incident_wavelength_angstrom}},
        {"incident_wavelength", {settings.incident_wavelength_angstrom}},
        {"number_of_images", {settings.number_of_images}},
        {"pixel_mask_enabled", {false}},
        {"pixel_size_x", {settings.pixel_size_m}},
        {"pixel_size_y", {settings.pixel_size_m}},
        {"saturation_value", {std::uint64_t{max_value(settings.pixel_type) - 1}}},
        {"sensor_material", {std::string("CdTe")}},
        {"sensor_thickness", {0.00075}},
        {"series_id", {settings.series_id}},
        {"series_unique_id", {settings.series_unique_id}},
        {"threshold_energy", {thresholds}},
        {"user_data", {CborValue::Map{{"sample", {std::string("emulated")}}}}},
        {"virtual_pixel_interpolation_enabled", {false}},
    }};
}

CborValue v2_image_value(const SeriesSettings& settings, std::uint64_t image_id,
                         WireEncoding encoding) {
    CborValue::Map data;
    for (std::size_t c = 0; c < settings.channels.size(); ++c) {
        const auto pixels = synthetic_pixels(settings, image_id, c);
        const auto bytes = pack_pixels(pixels, settings.pixel_type);
        auto payload = encode_payload(bytes, settings.pixel_type, encoding, Protocol::kStreamV2);
        CborValue content{std::move(payload)};
        if (encoding == WireEncoding::kLz4) {
            content = tagged(56500,
                             {CborValue::Array{{std::string("lz4")}, {std::uint64_t{0}}, content}});
        } else if (encoding == WireEncoding::kBslz4) {
            content = tagged(
                56500, {CborValue::Array{{std::string("bslz4")},
                                         {std::uint64_t{pixel_size_bytes(settings.pixel_type)}},
                                         content}});
        }
        const CborValue dimensions{CborValue::Array{{std::uint64_t{settings.height_px}},
                                                    {std::uint64_t{settings.width_px}}}};
        data.emplace_back(
            settings.channels[c],
            tagged(40, {CborValue::Array{dimensions,
                                         tagged(typed_array_tag(settings.pixel_type), content)}}));
    }
    const ImageTiming timing = expected_timing(settings, image_id);
    return {CborValue::Map{
        {"type", {std::string("image")}},
        {"series_id", {settings.series_id}},
        {"series_unique_id", {settings.series_unique_id}},
        {"image_id", {image_id}},
        {"real_time", rational(timing.real_time.count(), settings.time_base_hz)},
        {"series_date", tagged(0, {std::string("2024-05-01T12:00:01.000Z")})},
        {"start_time", rational(timing.start_time.count(), settings.time_base_hz)},
        {"stop_time", rational(timing.stop_time.count(), settings.time_base_hz)},
        {"user_data", {CborValue::Map{}}},
        {"data", {std::move(data)}},
    }};
}

CborValue v2_end_value(const SeriesSettings& settings) {
    return {CborValue::Map{{"type", {std::string("end")}},
                           {"series_id", {settings.series_id}},
                           {"series_unique_id", {settings.series_unique_id}}}};
}

std::vector<Part> v2_series(const SeriesSettings& settings, WireEncoding encoding) {
    std::vector<Part> messages;
    messages.push_back(encode_cbor(v2_start_value(settings)));
    for (std::uint64_t image = 0; image < settings.number_of_images; ++image) {
        messages.push_back(encode_cbor(v2_image_value(settings, image, encoding)));
    }
    messages.push_back(encode_cbor(v2_end_value(settings)));
    return messages;
}

}  // namespace anisoflow::dectris::emulator
