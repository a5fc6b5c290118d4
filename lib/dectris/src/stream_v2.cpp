// DECTRIS SIMPLON Stream v2: one CBOR map per message, "type" start / image / end; images as
// RFC 8746 multi-dimensional typed arrays, compressed with the DECTRIS tag 56500.

#include <chrono>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <cbor.h>

#include "anisoflow/dectris/decode.hpp"

#include "channel_check.hpp"

namespace anisoflow::dectris {
namespace {

constexpr std::uint64_t kSelfDescribedCborTag = 55799;  // RFC 8949 3.4.6
constexpr std::uint64_t kMultiDimArrayTag = 40;         // RFC 8746 3.1.1, row-major
constexpr std::uint64_t kMultiDimArrayColumnMajorTag = 1040;
constexpr std::uint64_t kDectrisCompressionTag = 56500;  // DECTRIS compressed byte string

struct CborDeleter {
    void operator()(cbor_item_t* item) const { cbor_decref(&item); }
};
using CborPtr = std::unique_ptr<cbor_item_t, CborDeleter>;

/// The item inside a tag, still owned by the tag (cbor_tag_item adds a reference we drop).
const cbor_item_t* tag_content(const cbor_item_t* tag) {
    cbor_item_t* content = cbor_tag_item(tag);
    const cbor_item_t* borrowed = content;
    cbor_decref(&content);
    return borrowed;
}

/// Skips any tags around a value (stream2.c does so for every field it does not verify).
const cbor_item_t* untagged(const cbor_item_t* item) {
    while (cbor_isa_tag(item)) {
        item = tag_content(item);
    }
    return item;
}

std::string_view kind_name(const cbor_item_t* item) {
    switch (cbor_typeof(item)) {
        case CBOR_TYPE_UINT:
            return "an unsigned integer";
        case CBOR_TYPE_NEGINT:
            return "a negative integer";
        case CBOR_TYPE_BYTESTRING:
            return "a byte string";
        case CBOR_TYPE_STRING:
            return "a text string";
        case CBOR_TYPE_ARRAY:
            return "an array";
        case CBOR_TYPE_MAP:
            return "a map";
        case CBOR_TYPE_TAG:
            return "a tag";
        case CBOR_TYPE_FLOAT_CTRL:
            return cbor_float_ctrl_is_ctrl(item) ? "a simple value" : "a float";
    }
    return "unknown";
}

/// Text of a definite or chunked text string.
std::optional<std::string> text_of(const cbor_item_t* item) {
    if (!cbor_isa_string(item)) {
        return std::nullopt;
    }
    if (cbor_string_is_definite(item)) {
        return std::string(reinterpret_cast<const char*>(cbor_string_handle(item)),
                           cbor_string_length(item));
    }
    std::string text;
    cbor_item_t** chunks = cbor_string_chunks_handle(item);
    for (std::size_t i = 0; i < cbor_string_chunk_count(item); ++i) {
        text.append(reinterpret_cast<const char*>(cbor_string_handle(chunks[i])),
                    cbor_string_length(chunks[i]));
    }
    return text;
}

/// Bytes of a definite or chunked byte string.
std::optional<std::vector<std::byte>> bytes_of(const cbor_item_t* item) {
    if (!cbor_isa_bytestring(item)) {
        return std::nullopt;
    }
    std::vector<std::byte> bytes;
    const auto append = [&bytes](const cbor_item_t* chunk) {
        const auto* data = reinterpret_cast<const std::byte*>(cbor_bytestring_handle(chunk));
        bytes.insert(bytes.end(), data, data + cbor_bytestring_length(chunk));
    };
    if (cbor_bytestring_is_definite(item)) {
        append(item);
    } else {
        cbor_item_t** chunks = cbor_bytestring_chunks_handle(item);
        for (std::size_t i = 0; i < cbor_bytestring_chunk_count(item); ++i) {
            append(chunks[i]);
        }
    }
    return bytes;
}

/// A CBOR map with text keys and typed look-ups whose errors name the message and key.
class CborMap {
  public:
    CborMap(const cbor_item_t* map, std::string context)
        : map_(map), context_(std::move(context)) {}

    [[nodiscard]] const std::string& context() const { return context_; }

    /// The value of `key` (tags kept), or nullptr.
    [[nodiscard]] const cbor_item_t* find(std::string_view key) const {
        const cbor_pair* pairs = cbor_map_handle(map_);
        for (std::size_t i = 0; i < cbor_map_size(map_); ++i) {
            if (text_of(pairs[i].key) == key) {
                return pairs[i].value;
            }
        }
        return nullptr;
    }

    [[nodiscard]] bool has(std::string_view key) const { return find(key) != nullptr; }

    [[nodiscard]] Result<const cbor_item_t*> require(std::string_view key) const {
        const cbor_item_t* value = find(key);
        if (value == nullptr) {
            return fail(ErrorCode::kNotFound, "{}: missing key '{}'", context_, key);
        }
        return value;
    }

    [[nodiscard]] tl::unexpected<Error> wrong_type(std::string_view key, const cbor_item_t* value,
                                                   std::string_view expected) const {
        return fail(ErrorCode::kParse, "{}: key '{}' is {}, expected {}", context_, key,
                    kind_name(value), expected);
    }

    [[nodiscard]] Result<std::uint64_t> uint(std::string_view key) const {
        auto value = require(key);
        if (!value) {
            return tl::unexpected(value.error());
        }
        const cbor_item_t* item = untagged(*value);
        if (!cbor_isa_uint(item)) {
            return wrong_type(key, item, "an unsigned integer");
        }
        return cbor_get_int(item);
    }

    /// A Float field; unsigned integers are accepted too.
    [[nodiscard]] Result<double> number(std::string_view key) const {
        auto value = require(key);
        if (!value) {
            return tl::unexpected(value.error());
        }
        const cbor_item_t* item = untagged(*value);
        if (cbor_isa_uint(item)) {
            return static_cast<double>(cbor_get_int(item));
        }
        if (cbor_isa_float_ctrl(item) && !cbor_float_ctrl_is_ctrl(item)) {
            return cbor_float_get_float(item);
        }
        return wrong_type(key, item, "a float");
    }

    [[nodiscard]] Result<std::string> text(std::string_view key) const {
        auto value = require(key);
        if (!value) {
            return tl::unexpected(value.error());
        }
        const cbor_item_t* item = untagged(*value);
        auto text = text_of(item);
        if (!text) {
            return wrong_type(key, item, "a text string");
        }
        return *text;
    }

    /// A Rational [numerator, denominator] in seconds, as nanoseconds.
    [[nodiscard]] Result<std::chrono::nanoseconds> rational_ns(std::string_view key) const {
        auto value = require(key);
        if (!value) {
            return tl::unexpected(value.error());
        }
        const cbor_item_t* item = untagged(*value);
        if (!cbor_isa_array(item) || cbor_array_size(item) != 2 ||
            !cbor_isa_uint(cbor_array_handle(item)[0]) ||
            !cbor_isa_uint(cbor_array_handle(item)[1])) {
            return wrong_type(key, item, "a rational [numerator, denominator]");
        }
        const std::uint64_t numerator = cbor_get_int(cbor_array_handle(item)[0]);
        const std::uint64_t denominator = cbor_get_int(cbor_array_handle(item)[1]);
        if (denominator == 0) {
            return fail(ErrorCode::kCorrupt, "{}: key '{}' has denominator 0", context_, key);
        }
        // long double keeps 64 bits of mantissa: exact for any time base below 1.8e10 Hz.
        const long double ns =
            static_cast<long double>(numerator) * 1e9L / static_cast<long double>(denominator);
        if (ns > static_cast<long double>(std::chrono::nanoseconds::max().count())) {
            return fail(ErrorCode::kCorrupt, "{}: key '{}' is {}/{} s, out of range", context_, key,
                        numerator, denominator);
        }
        return std::chrono::nanoseconds(static_cast<std::int64_t>(ns + 0.5L));
    }

  private:
    const cbor_item_t* map_;
    std::string context_;
};

Result<PixelType> pixel_type_from_name(std::string_view name, const CborMap& map,
                                       std::string_view key) {
    if (name == "uint8") {
        return PixelType::kUint8;
    }
    if (name == "uint16") {
        return PixelType::kUint16;
    }
    if (name == "uint32") {
        return PixelType::kUint32;
    }
    return fail(ErrorCode::kUnsupported, "{}: key '{}' is '{}', expected uint8, uint16 or uint32",
                map.context(), key, name);
}

Result<Message> decode_start(const CborMap& map) {
    SeriesStart start;
    start.protocol = Protocol::kStreamV2;
    DetectorConfig config;
    const auto series = map.uint("series_id");
    const auto width = map.uint("image_size_x");
    const auto height = map.uint("image_size_y");
    const auto beam_x = map.number("beam_center_x");
    const auto beam_y = map.number("beam_center_y");
    const auto wavelength = map.number("incident_wavelength");
    const auto pixel_x = map.number("pixel_size_x");
    const auto pixel_y = map.number("pixel_size_y");
    const auto count_time = map.number("count_time");
    const auto images = map.uint("number_of_images");
    for (const Error* error :
         {series ? nullptr : &series.error(), width ? nullptr : &width.error(),
          height ? nullptr : &height.error(), beam_x ? nullptr : &beam_x.error(),
          beam_y ? nullptr : &beam_y.error(), wavelength ? nullptr : &wavelength.error(),
          pixel_x ? nullptr : &pixel_x.error(), pixel_y ? nullptr : &pixel_y.error(),
          count_time ? nullptr : &count_time.error(), images ? nullptr : &images.error()}) {
        if (error != nullptr) {
            return tl::unexpected(*error);
        }
    }
    start.series_id = *series;
    config.shape = {*width, *height};
    config.beam_center_x_px = *beam_x;
    config.beam_center_y_px = *beam_y;
    config.incident_wavelength_angstrom = *wavelength;
    config.x_pixel_size_m = *pixel_x;
    config.y_pixel_size_m = *pixel_y;
    config.count_time_s = *count_time;
    config.number_of_images = *images;

    // The distance: "detector_distance" where sent, else z of "detector_translation" (m).
    if (map.has("detector_distance")) {
        auto distance = map.number("detector_distance");
        if (!distance) {
            return tl::unexpected(distance.error());
        }
        config.detector_distance_m = *distance;
    } else {
        auto translation = map.require("detector_translation");
        if (!translation) {
            return tl::unexpected(translation.error());
        }
        const cbor_item_t* item = untagged(*translation);
        if (!cbor_isa_array(item) || cbor_array_size(item) != 3 ||
            !cbor_isa_float_ctrl(cbor_array_handle(item)[2]) ||
            cbor_float_ctrl_is_ctrl(cbor_array_handle(item)[2])) {
            return map.wrong_type("detector_translation", item, "an array of 3 floats");
        }
        config.detector_distance_m = cbor_float_get_float(cbor_array_handle(item)[2]);
    }
    if (map.has("series_unique_id")) {
        auto id = map.text("series_unique_id");
        if (!id) {
            return tl::unexpected(id.error());
        }
        start.series_unique_id = *id;
    }
    if (map.has("frame_time")) {
        auto value = map.number("frame_time");
        if (!value) {
            return tl::unexpected(value.error());
        }
        config.frame_time_s = *value;
    }
    if (map.has("saturation_value")) {
        auto value = map.uint("saturation_value");
        if (!value) {
            return tl::unexpected(value.error());
        }
        config.saturation_value = *value;
    }
    if (map.has("detector_description")) {
        auto value = map.text("detector_description");
        if (!value) {
            return tl::unexpected(value.error());
        }
        config.detector_description = *value;
    }
    if (map.has("image_dtype")) {
        auto name = map.text("image_dtype");
        if (!name) {
            return tl::unexpected(name.error());
        }
        auto type = pixel_type_from_name(*name, map, "image_dtype");
        if (!type) {
            return tl::unexpected(type.error());
        }
        config.pixel_type = *type;
    }
    if (map.has("channels")) {
        const cbor_item_t* channels = untagged(map.find("channels"));
        if (!cbor_isa_array(channels)) {
            return map.wrong_type("channels", channels, "an array of text strings");
        }
        for (std::size_t i = 0; i < cbor_array_size(channels); ++i) {
            auto name = text_of(cbor_array_handle(channels)[i]);
            if (!name) {
                return map.wrong_type("channels", cbor_array_handle(channels)[i],
                                      "an array of text strings");
            }
            config.channels.push_back(std::move(*name));
        }
    }
    start.config = std::move(config);
    return start;
}

/// Pixel type of an RFC 8746 typed-array tag; only unsigned little-endian types are images.
Result<PixelType> typed_array_type(std::uint64_t tag, const std::string& context) {
    switch (tag) {
        case 64:  // uint8
        case 68:  // uint8, clamped
            return PixelType::kUint8;
        case 69:  // uint16 little-endian
            return PixelType::kUint16;
        case 70:  // uint32 little-endian
            return PixelType::kUint32;
        case 65:
        case 66:
        case 67:
            return fail(ErrorCode::kUnsupported,
                        "{}: typed array tag {} is big-endian, only little-endian is accepted",
                        context, tag);
        default:
            return fail(ErrorCode::kUnsupported,
                        "{}: typed array tag {} is not uint8, uint16le or uint32le", context, tag);
    }
}

/// Tag 56500 content: [algorithm, element size, compressed bytes].
Result<void> decode_compression(const cbor_item_t* item, ChannelData& channel,
                                const std::string& context) {
    if (!cbor_isa_array(item) || cbor_array_size(item) != 3) {
        return fail(ErrorCode::kParse, "{}: tag {} content is {}, expected an array of 3", context,
                    kDectrisCompressionTag, kind_name(item));
    }
    cbor_item_t** fields = cbor_array_handle(item);
    const auto algorithm = text_of(fields[0]);
    auto payload = bytes_of(fields[2]);
    if (!algorithm || !cbor_isa_uint(fields[1]) || !payload) {
        return fail(ErrorCode::kParse,
                    "{}: tag {} content is not [algorithm text, element size, byte string]",
                    context, kDectrisCompressionTag);
    }
    const std::uint64_t element_size = cbor_get_int(fields[1]);
    if (*algorithm == "bslz4") {
        if (element_size != pixel_size_bytes(channel.pixel_type)) {
            return fail(ErrorCode::kUnsupported,
                        "{}: bslz4 element size {} does not match the {} typed array", context,
                        element_size, to_string(channel.pixel_type));
        }
        channel.encoding = Encoding::kBslz4;
    } else if (*algorithm == "lz4") {
        channel.encoding = Encoding::kLz4Hdf5;
    } else {
        return fail(ErrorCode::kUnsupported,
                    "{}: compression algorithm '{}', expected 'bslz4' or 'lz4'", context,
                    *algorithm);
    }
    channel.payload = std::move(*payload);
    return {};
}

/// One channel: tag 40 [[height, width], typed array of (bytes | tag 56500 [...])].
Result<ChannelData> decode_channel(std::string name, const cbor_item_t* value,
                                   const std::string& context) {
    ChannelData channel;
    channel.name = std::move(name);
    if (!cbor_isa_tag(value) || cbor_tag_value(value) != kMultiDimArrayTag) {
        if (cbor_isa_tag(value) && cbor_tag_value(value) == kMultiDimArrayColumnMajorTag) {
            return fail(ErrorCode::kUnsupported, "{}: column-major array (tag {})", context,
                        kMultiDimArrayColumnMajorTag);
        }
        return fail(ErrorCode::kParse, "{}: {}, expected a multi-dimensional array (tag {})",
                    context, kind_name(value), kMultiDimArrayTag);
    }
    const cbor_item_t* array = tag_content(value);
    if (!cbor_isa_array(array) || cbor_array_size(array) != 2) {
        return fail(ErrorCode::kParse, "{}: tag {} content is not [dimensions, typed array]",
                    context, kMultiDimArrayTag);
    }
    const cbor_item_t* dimensions = cbor_array_handle(array)[0];
    if (!cbor_isa_array(dimensions) || cbor_array_size(dimensions) != 2 ||
        !cbor_isa_uint(cbor_array_handle(dimensions)[0]) ||
        !cbor_isa_uint(cbor_array_handle(dimensions)[1])) {
        return fail(ErrorCode::kParse, "{}: dimensions are not [height, width]", context);
    }
    // Row-major: the first dimension is the slow one (rows).
    channel.shape = {cbor_get_int(cbor_array_handle(dimensions)[1]),
                     cbor_get_int(cbor_array_handle(dimensions)[0])};

    const cbor_item_t* typed = cbor_array_handle(array)[1];
    if (!cbor_isa_tag(typed)) {
        return fail(ErrorCode::kParse, "{}: data are {}, expected a typed array (tag 64-87)",
                    context, kind_name(typed));
    }
    auto type = typed_array_type(cbor_tag_value(typed), context);
    if (!type) {
        return tl::unexpected(type.error());
    }
    channel.pixel_type = *type;
    const cbor_item_t* content = tag_content(typed);
    if (cbor_isa_tag(content) && cbor_tag_value(content) == kDectrisCompressionTag) {
        if (auto status = decode_compression(tag_content(content), channel, context); !status) {
            return tl::unexpected(status.error());
        }
    } else if (auto bytes = bytes_of(content)) {
        channel.encoding = Encoding::kRaw;
        channel.payload = std::move(*bytes);
    } else {
        return fail(ErrorCode::kParse, "{}: typed array holds {}, expected a byte string or tag {}",
                    context, kind_name(content), kDectrisCompressionTag);
    }
    if (auto status = detail::finish_channel(channel); !status) {
        return tl::unexpected(status.error().with_context(context));
    }
    return channel;
}

Result<Message> decode_image(const CborMap& map) {
    Image image;
    image.protocol = Protocol::kStreamV2;
    const auto series = map.uint("series_id");
    const auto image_id = map.uint("image_id");
    const auto start_time = map.rational_ns("start_time");
    const auto stop_time = map.rational_ns("stop_time");
    const auto real_time = map.rational_ns("real_time");
    const auto data = map.require("data");
    for (const Error* error :
         {series ? nullptr : &series.error(), image_id ? nullptr : &image_id.error(),
          start_time ? nullptr : &start_time.error(), stop_time ? nullptr : &stop_time.error(),
          real_time ? nullptr : &real_time.error(), data ? nullptr : &data.error()}) {
        if (error != nullptr) {
            return tl::unexpected(*error);
        }
    }
    image.series_id = *series;
    image.image_number = *image_id;
    image.timing = {*start_time, *stop_time, *real_time};
    if (map.has("series_unique_id")) {
        auto id = map.text("series_unique_id");
        if (!id) {
            return tl::unexpected(id.error());
        }
        image.series_unique_id = *id;
    }
    const cbor_item_t* channels = untagged(*data);
    if (!cbor_isa_map(channels) || cbor_map_size(channels) == 0) {
        return fail(ErrorCode::kParse, "{}: key 'data' is {}, expected a non-empty map",
                    map.context(), cbor_isa_map(channels) ? "an empty map" : kind_name(channels));
    }
    const cbor_pair* pairs = cbor_map_handle(channels);
    for (std::size_t i = 0; i < cbor_map_size(channels); ++i) {
        auto name = text_of(pairs[i].key);
        if (!name) {
            return fail(ErrorCode::kParse, "{}: key 'data': channel name is {}", map.context(),
                        kind_name(pairs[i].key));
        }
        const std::string context =
            fmt::format("{}: key 'data': channel '{}'", map.context(), *name);
        auto channel = decode_channel(*name, pairs[i].value, context);
        if (!channel) {
            return tl::unexpected(channel.error());
        }
        image.channels.push_back(std::move(*channel));
    }
    return image;
}

/// libcbor allocates a definite array or map for the count its header declares before it reads
/// a single element, so a message of a few bytes could ask for gigabytes. Every element takes at
/// least one byte (a map entry two), so a count beyond the bytes that follow its header is a
/// corrupt message, refused before cbor_load sees it. Malformed CBOR is left to cbor_load.
Result<void> check_declared_counts(ByteSpan message) {
    struct Scan {
        std::size_t bytes_left = 0;  // from the header being decoded to the end of the message
        std::size_t declared = 0;
        bool too_many = false;
    };
    cbor_callbacks callbacks = cbor_empty_callbacks;
    callbacks.array_start = [](void* context, std::size_t count) {
        auto& scan = *static_cast<Scan*>(context);
        if (count > scan.bytes_left - 1) {  // the header's byte, then count items
            scan.too_many = true;
            scan.declared = count;
        }
    };
    callbacks.map_start = [](void* context, std::size_t count) {
        auto& scan = *static_cast<Scan*>(context);
        if (count > (scan.bytes_left - 1) / 2) {  // the header's byte, then count pairs
            scan.too_many = true;
            scan.declared = count;
        }
    };
    Scan scan;
    const auto* data = reinterpret_cast<cbor_data>(message.data());
    std::size_t position = 0;
    while (position < message.size()) {
        scan.bytes_left = message.size() - position;
        const cbor_decoder_result result =
            cbor_stream_decode(data + position, scan.bytes_left, &callbacks, &scan);
        if (scan.too_many) {
            return fail(ErrorCode::kCorrupt,
                        "stream v2: the array or map at byte {} declares {} items but only {} "
                        "bytes follow",
                        position, scan.declared, scan.bytes_left);
        }
        if (result.status != CBOR_DECODER_FINISHED || result.read == 0) {
            break;
        }
        position += result.read;
    }
    return {};
}

}  // namespace

Result<Message> decode_v2(ByteSpan message) {
    if (auto counts = check_declared_counts(message); !counts) {
        return tl::unexpected(counts.error());
    }
    cbor_load_result result{};
    CborPtr root(cbor_load(reinterpret_cast<cbor_data>(message.data()), message.size(), &result));
    if (!root) {
        return fail(ErrorCode::kParse,
                    "stream v2: not valid CBOR (libcbor error {} at byte {} of {})",
                    static_cast<int>(result.error.code), result.error.position, message.size());
    }
    if (result.read != message.size()) {
        return fail(ErrorCode::kParse, "stream v2: {} trailing bytes after the CBOR item",
                    message.size() - result.read);
    }
    const cbor_item_t* top = root.get();
    if (cbor_isa_tag(top) && cbor_tag_value(top) == kSelfDescribedCborTag) {
        top = tag_content(top);
    }
    if (!cbor_isa_map(top)) {
        return fail(ErrorCode::kParse, "stream v2: message is {}, expected a map", kind_name(top));
    }
    const CborMap untyped(top, "stream v2 message");
    auto type = untyped.text("type");
    if (!type) {
        return tl::unexpected(type.error());
    }
    const CborMap map(top, fmt::format("stream v2 {}", *type));
    if (*type == "start") {
        return decode_start(map);
    }
    if (*type == "image") {
        return decode_image(map);
    }
    if (*type == "end") {
        auto series = map.uint("series_id");
        if (!series) {
            return tl::unexpected(series.error());
        }
        SeriesEnd end{Protocol::kStreamV2, *series, {}};
        if (map.has("series_unique_id")) {
            auto id = map.text("series_unique_id");
            if (!id) {
                return tl::unexpected(id.error());
            }
            end.series_unique_id = *id;
        }
        return end;
    }
    return fail(ErrorCode::kUnsupported, "stream v2 message: unknown type '{}'", *type);
}

}  // namespace anisoflow::dectris
