// DECTRIS SIMPLON Stream v1: multipart messages of JSON parts (htype dheader-1.0, dimage-1.0,
// dimage_d-1.0, dconfig-1.0, dseries_end-1.0) and binary data parts.

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "anisoflow/dectris/decode.hpp"

#include "channel_check.hpp"

namespace anisoflow::dectris {
namespace {

using nlohmann::json;

/// One JSON object of a message with typed look-ups whose errors name the part and key.
class JsonPart {
  public:
    JsonPart(json object, std::string context)
        : object_(std::move(object)), context_(std::move(context)) {}

    [[nodiscard]] const std::string& context() const { return context_; }
    [[nodiscard]] bool has(std::string_view key) const { return object_.contains(key); }

    [[nodiscard]] Result<std::uint64_t> uint(std::string_view key) const {
        auto value = find(key);
        if (!value) {
            return tl::unexpected(value.error());
        }
        if (!(*value)->is_number_unsigned()) {
            return wrong_type(key, **value, "an unsigned integer");
        }
        return (*value)->get<std::uint64_t>();
    }

    [[nodiscard]] Result<double> number(std::string_view key) const {
        auto value = find(key);
        if (!value) {
            return tl::unexpected(value.error());
        }
        if (!(*value)->is_number()) {
            return wrong_type(key, **value, "a number");
        }
        return (*value)->get<double>();
    }

    [[nodiscard]] Result<std::string> text(std::string_view key) const {
        auto value = find(key);
        if (!value) {
            return tl::unexpected(value.error());
        }
        if (!(*value)->is_string()) {
            return wrong_type(key, **value, "a string");
        }
        return (*value)->get<std::string>();
    }

    [[nodiscard]] Result<const json*> find(std::string_view key) const {
        const auto it = object_.find(key);
        if (it == object_.end()) {
            return fail(ErrorCode::kNotFound, "{}: missing key '{}'", context_, key);
        }
        return &*it;
    }

    [[nodiscard]] tl::unexpected<Error> wrong_type(std::string_view key, const json& value,
                                                   std::string_view expected) const {
        return fail(ErrorCode::kParse, "{}: key '{}' is {} ({}), expected {}", context_, key,
                    value.type_name(), value.dump(), expected);
    }

  private:
    json object_;
    std::string context_;
};

/// Parses one part as a JSON object.
Result<json> parse_object(ByteSpan part, std::size_t index) {
    const auto* text = reinterpret_cast<const char*>(part.data());
    json object = json::parse(text, text + part.size(), nullptr, /*allow_exceptions=*/false);
    if (object.is_discarded()) {
        return fail(ErrorCode::kParse, "stream v1 part {}: not valid JSON", index);
    }
    if (!object.is_object()) {
        return fail(ErrorCode::kParse, "stream v1 part {}: JSON {} is not an object", index,
                    object.type_name());
    }
    return object;
}

/// Parses part `index`, which must carry `htype`.
Result<JsonPart> expect_part(std::span<const ByteSpan> parts, std::size_t index,
                             std::string_view htype) {
    const std::string context = fmt::format("stream v1 {} (part {})", htype, index);
    if (index >= parts.size()) {
        return fail(ErrorCode::kCorrupt, "{}: missing, the message has {} parts", context,
                    parts.size());
    }
    auto object = parse_object(parts[index], index);
    if (!object) {
        return tl::unexpected(object.error());
    }
    JsonPart part(std::move(*object), context);
    auto actual = part.text("htype");
    if (!actual) {
        return tl::unexpected(actual.error());
    }
    if (*actual != htype) {
        return fail(ErrorCode::kCorrupt, "{}: htype is '{}'", context, *actual);
    }
    return part;
}

Result<PixelType> pixel_type_from_bits(std::uint64_t bits, const JsonPart& part,
                                       std::string_view key) {
    switch (bits) {
        case 8:
            return PixelType::kUint8;
        case 16:
            return PixelType::kUint16;
        case 32:
            return PixelType::kUint32;
        default:
            return fail(ErrorCode::kUnsupported, "{}: key '{}': {} bits per pixel", part.context(),
                        key, bits);
    }
}

/// The detector config part that follows dheader-1.0 (keys as in the SIMPLON detector config).
Result<DetectorConfig> parse_config(const JsonPart& part) {
    DetectorConfig config;
    // Required keys first, each named in its error.
    const auto width = part.uint("x_pixels_in_detector");
    const auto height = part.uint("y_pixels_in_detector");
    const auto beam_x = part.number("beam_center_x");
    const auto beam_y = part.number("beam_center_y");
    const auto distance = part.number("detector_distance");
    const auto wavelength = part.number("wavelength");
    const auto pixel_x = part.number("x_pixel_size");
    const auto pixel_y = part.number("y_pixel_size");
    const auto count_time = part.number("count_time");
    const auto nimages = part.uint("nimages");
    for (const Error* error :
         {width ? nullptr : &width.error(), height ? nullptr : &height.error(),
          beam_x ? nullptr : &beam_x.error(), beam_y ? nullptr : &beam_y.error(),
          distance ? nullptr : &distance.error(), wavelength ? nullptr : &wavelength.error(),
          pixel_x ? nullptr : &pixel_x.error(), pixel_y ? nullptr : &pixel_y.error(),
          count_time ? nullptr : &count_time.error(), nimages ? nullptr : &nimages.error()}) {
        if (error != nullptr) {
            return tl::unexpected(*error);
        }
    }
    config.shape = {*width, *height};
    config.beam_center_x_px = *beam_x;
    config.beam_center_y_px = *beam_y;
    config.detector_distance_m = *distance;
    config.incident_wavelength_angstrom = *wavelength;
    config.x_pixel_size_m = *pixel_x;
    config.y_pixel_size_m = *pixel_y;
    config.count_time_s = *count_time;
    std::uint64_t ntrigger = 1;
    if (part.has("ntrigger")) {
        auto value = part.uint("ntrigger");
        if (!value) {
            return tl::unexpected(value.error());
        }
        ntrigger = *value;
    }
    config.number_of_images = *nimages * ntrigger;
    if (part.has("frame_time")) {
        auto value = part.number("frame_time");
        if (!value) {
            return tl::unexpected(value.error());
        }
        config.frame_time_s = *value;
    }
    if (part.has("bit_depth_image")) {
        auto bits = part.uint("bit_depth_image");
        if (!bits) {
            return tl::unexpected(bits.error());
        }
        auto type = pixel_type_from_bits(*bits, part, "bit_depth_image");
        if (!type) {
            return tl::unexpected(type.error());
        }
        config.pixel_type = *type;
    }
    if (part.has("countrate_correction_count_cutoff")) {
        auto value = part.uint("countrate_correction_count_cutoff");
        if (!value) {
            return tl::unexpected(value.error());
        }
        config.saturation_value = *value;
    }
    if (part.has("description")) {
        auto value = part.text("description");
        if (!value) {
            return tl::unexpected(value.error());
        }
        config.detector_description = *value;
    }
    return config;
}

Result<Message> decode_header(const JsonPart& first, std::span<const ByteSpan> parts) {
    SeriesStart start;
    start.protocol = Protocol::kStreamV1;
    auto series = first.uint("series");
    if (!series) {
        return tl::unexpected(series.error());
    }
    start.series_id = *series;
    auto detail = first.text("header_detail");
    if (!detail) {
        return tl::unexpected(detail.error());
    }
    start.header_detail = *detail;
    if (*detail == "none") {
        return start;
    }
    if (*detail != "basic" && *detail != "all") {
        return fail(ErrorCode::kUnsupported,
                    "{}: key 'header_detail' is '{}', expected 'all', 'basic' or 'none'",
                    first.context(), *detail);
    }
    const std::string context = "stream v1 dheader-1.0 detector config (part 1)";
    if (parts.size() < 2) {
        return fail(ErrorCode::kCorrupt, "{}: missing for header_detail '{}'", context, *detail);
    }
    auto object = parse_object(parts[1], 1);
    if (!object) {
        return tl::unexpected(object.error());
    }
    // header_detail "all" adds flatfield, pixel mask and countrate table parts: not decoded.
    auto config = parse_config(JsonPart(std::move(*object), context));
    if (!config) {
        return tl::unexpected(config.error());
    }
    start.config = std::move(*config);
    return start;
}

Result<PixelType> parse_pixel_type(const JsonPart& part) {
    auto type = part.text("type");
    if (!type) {
        return tl::unexpected(type.error());
    }
    if (*type == "uint8") {
        return PixelType::kUint8;
    }
    if (*type == "uint16") {
        return PixelType::kUint16;
    }
    if (*type == "uint32") {
        return PixelType::kUint32;
    }
    return fail(ErrorCode::kUnsupported, "{}: key 'type' is '{}', expected uint8, uint16 or uint32",
                part.context(), *type);
}

/// Encodings "[bs<bits>-]lz4<" and "<" (SIMPLON: bitshuffle width, lz4, endianness).
Result<Encoding> parse_encoding(const JsonPart& part, PixelType type) {
    auto encoding = part.text("encoding");
    if (!encoding) {
        return tl::unexpected(encoding.error());
    }
    const std::string_view text = *encoding;
    if (text.ends_with('>')) {
        return fail(ErrorCode::kUnsupported, "{}: key 'encoding' is '{}': big-endian data",
                    part.context(), text);
    }
    if (text == "<") {
        return Encoding::kRaw;
    }
    if (text == "lz4<") {
        return Encoding::kLz4Block;
    }
    for (const PixelType candidate : {PixelType::kUint8, PixelType::kUint16, PixelType::kUint32}) {
        const std::string bslz4 = fmt::format("bs{}-lz4<", 8 * pixel_size_bytes(candidate));
        if (text == bslz4) {
            if (candidate != type) {
                return fail(ErrorCode::kUnsupported,
                            "{}: key 'encoding' is '{}' but key 'type' is '{}'", part.context(),
                            text, to_string(type));
            }
            return Encoding::kBslz4;
        }
    }
    return fail(ErrorCode::kUnsupported,
                "{}: key 'encoding' is '{}', expected '<', 'lz4<' or 'bs<bits>-lz4<'",
                part.context(), text);
}

Result<Shape> parse_shape(const JsonPart& part) {
    auto value = part.find("shape");
    if (!value) {
        return tl::unexpected(value.error());
    }
    const json& shape = **value;
    // [x, y] or [x, y, 1]
    const bool valid = shape.is_array() && (shape.size() == 2 || shape.size() == 3) &&
                       std::all_of(shape.begin(), shape.end(),
                                   [](const json& v) { return v.is_number_unsigned(); }) &&
                       (shape.size() == 2 || shape[2].get<std::uint64_t>() == 1);
    if (!valid) {
        return part.wrong_type("shape", shape, "[width, height]");
    }
    return Shape{shape[0].get<std::size_t>(), shape[1].get<std::size_t>()};
}

Result<std::chrono::nanoseconds> parse_ns(const JsonPart& part, std::string_view key) {
    auto value = part.uint(key);
    if (!value) {
        return tl::unexpected(value.error());
    }
    if (*value > static_cast<std::uint64_t>(std::chrono::nanoseconds::max().count())) {
        return fail(ErrorCode::kCorrupt, "{}: key '{}' is {} ns, out of range", part.context(), key,
                    *value);
    }
    return std::chrono::nanoseconds(static_cast<std::int64_t>(*value));
}

Result<Message> decode_image(const JsonPart& first, std::span<const ByteSpan> parts) {
    Image image;
    image.protocol = Protocol::kStreamV1;
    auto series = first.uint("series");
    if (!series) {
        return tl::unexpected(series.error());
    }
    image.series_id = *series;
    auto frame = first.uint("frame");
    if (!frame) {
        return tl::unexpected(frame.error());
    }
    image.image_number = *frame;

    auto description = expect_part(parts, 1, "dimage_d-1.0");
    if (!description) {
        return tl::unexpected(description.error());
    }
    ChannelData channel;
    auto shape = parse_shape(*description);
    if (!shape) {
        return tl::unexpected(shape.error());
    }
    channel.shape = *shape;
    auto type = parse_pixel_type(*description);
    if (!type) {
        return tl::unexpected(type.error());
    }
    channel.pixel_type = *type;
    auto encoding = parse_encoding(*description, *type);
    if (!encoding) {
        return tl::unexpected(encoding.error());
    }
    channel.encoding = *encoding;
    if (parts.size() < 3) {
        return fail(ErrorCode::kCorrupt, "stream v1 dimage-1.0: missing the data part (part 2)");
    }
    auto size = description->uint("size");
    if (!size) {
        return tl::unexpected(size.error());
    }
    if (*size != parts[2].size()) {
        return fail(ErrorCode::kCorrupt, "{}: key 'size' is {} but the data part has {} bytes",
                    description->context(), *size, parts[2].size());
    }
    channel.payload.assign(parts[2].begin(), parts[2].end());
    if (auto status = detail::finish_channel(channel); !status) {
        return tl::unexpected(status.error().with_context(description->context()));
    }

    auto timing = expect_part(parts, 3, "dconfig-1.0");
    if (!timing) {
        return tl::unexpected(timing.error());
    }
    auto start_time = parse_ns(*timing, "start_time");
    auto stop_time = parse_ns(*timing, "stop_time");
    auto real_time = parse_ns(*timing, "real_time");
    for (const auto* time : {&start_time, &stop_time, &real_time}) {
        if (!*time) {
            return tl::unexpected(time->error());
        }
    }
    image.timing = {*start_time, *stop_time, *real_time};
    image.channels.push_back(std::move(channel));
    return image;
}

}  // namespace

Result<Message> decode_v1(std::span<const ByteSpan> parts) {
    if (parts.empty()) {
        return fail(ErrorCode::kCorrupt, "stream v1: empty multipart message");
    }
    auto object = parse_object(parts[0], 0);
    if (!object) {
        return tl::unexpected(object.error());
    }
    const auto it = object->find("htype");
    if (it == object->end()) {
        return fail(ErrorCode::kNotFound, "stream v1 part 0: missing key 'htype'");
    }
    if (!it->is_string()) {
        return fail(ErrorCode::kParse, "stream v1 part 0: key 'htype' is {}, expected a string",
                    it->type_name());
    }
    const std::string htype = it->get<std::string>();
    const JsonPart first(std::move(*object), fmt::format("stream v1 {}", htype));
    if (htype == "dheader-1.0") {
        return decode_header(first, parts);
    }
    if (htype == "dimage-1.0") {
        return decode_image(first, parts);
    }
    if (htype == "dseries_end-1.0") {
        auto series = first.uint("series");
        if (!series) {
            return tl::unexpected(series.error());
        }
        return SeriesEnd{Protocol::kStreamV1, *series, {}};
    }
    return fail(ErrorCode::kUnsupported, "stream v1 part 0: unknown htype '{}'", htype);
}

}  // namespace anisoflow::dectris
