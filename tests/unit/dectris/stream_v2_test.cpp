#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "anisoflow/dectris/decode.hpp"

#include "dectris_emulator.hpp"

namespace anisoflow::dectris {
namespace {

using emulator::CborValue;
using emulator::SeriesSettings;
using emulator::WireEncoding;
using ::testing::HasSubstr;

std::string decode_error(const CborValue& value) {
    auto decoded = decode_v2(emulator::encode_cbor(value));
    EXPECT_FALSE(decoded) << "decoded a malformed message";
    return decoded ? std::string() : decoded.error().message;
}

/// The typed-array tag inside channel `name` of an image value: data -> tag 40 -> [dims, tag].
CborValue& typed_array(CborValue& image, const std::string& name) {
    CborValue* channel = image.find("data")->find(name);
    auto& multidim = std::get<CborValue::Tag>(channel->value);
    return std::get<CborValue::Array>(multidim.content.front().value)[1];
}

struct SeriesCase {
    PixelType type;
    WireEncoding encoding;
};

class StreamV2Series : public ::testing::TestWithParam<SeriesCase> {};

TEST_P(StreamV2Series, DecodesMetadataPixelsAndTimes) {
    SeriesSettings settings;
    settings.pixel_type = GetParam().type;
    settings.channels = {"threshold_1", "threshold_2"};
    const auto messages = emulator::v2_series(settings, GetParam().encoding);
    ASSERT_EQ(messages.size(), settings.number_of_images + 2);

    auto start = decode_v2(messages.front());
    ASSERT_TRUE(start) << start.error().message;
    const auto& series_start = std::get<SeriesStart>(*start);
    EXPECT_EQ(series_start.protocol, Protocol::kStreamV2);
    EXPECT_EQ(series_start.series_id, settings.series_id);
    EXPECT_EQ(series_start.series_unique_id, settings.series_unique_id);
    ASSERT_TRUE(series_start.config);
    const DetectorConfig& config = *series_start.config;
    EXPECT_EQ(config.shape, (Shape{settings.width_px, settings.height_px}));
    EXPECT_DOUBLE_EQ(config.beam_center_x_px, settings.beam_center_x_px);
    EXPECT_DOUBLE_EQ(config.beam_center_y_px, settings.beam_center_y_px);
    EXPECT_DOUBLE_EQ(config.detector_distance_m, settings.detector_distance_m);
    EXPECT_DOUBLE_EQ(config.incident_wavelength_angstrom, settings.incident_wavelength_angstrom);
    EXPECT_DOUBLE_EQ(config.x_pixel_size_m, settings.pixel_size_m);
    EXPECT_DOUBLE_EQ(config.count_time_s, settings.count_time_s);
    EXPECT_EQ(config.number_of_images, settings.number_of_images);
    EXPECT_EQ(config.channels, settings.channels);
    EXPECT_EQ(config.saturation_value,
              (std::uint64_t{1} << (8 * pixel_size_bytes(settings.pixel_type))) - 2);

    for (std::uint64_t id = 0; id < settings.number_of_images; ++id) {
        SCOPED_TRACE(id);
        auto decoded = decode_v2(messages[1 + id]);
        ASSERT_TRUE(decoded) << decoded.error().message;
        const auto& image = std::get<Image>(*decoded);
        EXPECT_EQ(image.series_id, settings.series_id);
        EXPECT_EQ(image.series_unique_id, settings.series_unique_id);
        EXPECT_EQ(image.image_number, id);
        const ImageTiming expected = emulator::expected_timing(settings, id);
        EXPECT_EQ(image.timing.start_time, expected.start_time);
        EXPECT_EQ(image.timing.stop_time, expected.stop_time);
        EXPECT_EQ(image.timing.real_time, expected.real_time);
        ASSERT_EQ(image.channels.size(), 2U);
        for (std::size_t c = 0; c < 2; ++c) {
            const ChannelData& channel = image.channels[c];
            EXPECT_EQ(channel.name, settings.channels[c]);
            EXPECT_EQ(channel.shape, (Shape{settings.width_px, settings.height_px}));
            EXPECT_EQ(channel.pixel_type, settings.pixel_type);
            const auto bytes = emulator::pack_pixels(emulator::synthetic_pixels(settings, id, c),
                                                     settings.pixel_type);
            EXPECT_EQ(channel.payload,
                      emulator::encode_payload(bytes, settings.pixel_type, GetParam().encoding,
                                               Protocol::kStreamV2));
            auto pixels = decode_pixels(image, c);
            ASSERT_TRUE(pixels) << pixels.error().message;
            EXPECT_EQ(*pixels, emulator::synthetic_pixels(settings, id, c));
        }
    }

    auto end = decode_v2(messages.back());
    ASSERT_TRUE(end) << end.error().message;
    EXPECT_EQ(std::get<SeriesEnd>(*end).series_id, settings.series_id);
    EXPECT_EQ(std::get<SeriesEnd>(*end).series_unique_id, settings.series_unique_id);
}

INSTANTIATE_TEST_SUITE_P(EveryTypeAndEncoding, StreamV2Series,
                         ::testing::Values(SeriesCase{PixelType::kUint16, WireEncoding::kRaw},
                                           SeriesCase{PixelType::kUint16, WireEncoding::kLz4},
                                           SeriesCase{PixelType::kUint16, WireEncoding::kBslz4},
                                           SeriesCase{PixelType::kUint32, WireEncoding::kRaw},
                                           SeriesCase{PixelType::kUint32, WireEncoding::kLz4},
                                           SeriesCase{PixelType::kUint32, WireEncoding::kBslz4},
                                           SeriesCase{PixelType::kUint8, WireEncoding::kBslz4}));

TEST(StreamV2, EncodingsMapToTheDocumentedPayloadFormats) {
    const SeriesSettings settings;
    const std::pair<WireEncoding, Encoding> cases[] = {{WireEncoding::kRaw, Encoding::kRaw},
                                                       {WireEncoding::kLz4, Encoding::kLz4Hdf5},
                                                       {WireEncoding::kBslz4, Encoding::kBslz4}};
    for (const auto& [wire, expected] : cases) {
        auto decoded =
            decode_v2(emulator::encode_cbor(emulator::v2_image_value(settings, 0, wire)));
        ASSERT_TRUE(decoded) << decoded.error().message;
        EXPECT_EQ(std::get<Image>(*decoded).channels.front().encoding, expected);
    }
}

TEST(StreamV2, AcceptsMessagesWithoutTheSelfDescribeTag) {
    const auto message = emulator::encode_cbor(emulator::v2_end_value(SeriesSettings{}), false);
    auto decoded = decode_v2(message);
    ASSERT_TRUE(decoded) << decoded.error().message;
    EXPECT_EQ(std::get<SeriesEnd>(*decoded).series_id, 7U);
}

TEST(StreamV2, PrefersAnExplicitDetectorDistanceToTheTranslation) {
    auto start = emulator::v2_start_value(SeriesSettings{});
    std::get<CborValue::Map>(start.value).emplace_back("detector_distance", CborValue{0.5});
    auto decoded = decode_v2(emulator::encode_cbor(start));
    ASSERT_TRUE(decoded) << decoded.error().message;
    EXPECT_DOUBLE_EQ(std::get<SeriesStart>(*decoded).config->detector_distance_m, 0.5);
}

TEST(StreamV2Malformed, RejectsBadCborAndTrailingBytes) {
    const std::vector<std::byte> garbage = {std::byte{0xFF}, std::byte{0x00}, std::byte{0x13}};
    auto decoded = decode_v2(garbage);
    ASSERT_FALSE(decoded);
    EXPECT_THAT(decoded.error().message, HasSubstr("stream v2: not valid CBOR"));

    auto message = emulator::encode_cbor(emulator::v2_end_value(SeriesSettings{}));
    message.push_back(std::byte{0});
    decoded = decode_v2(message);
    ASSERT_FALSE(decoded);
    EXPECT_THAT(decoded.error().message, HasSubstr("1 trailing bytes"));
}

TEST(StreamV2Malformed, RejectsEveryTruncation) {
    const auto message =
        emulator::encode_cbor(emulator::v2_image_value(SeriesSettings{}, 1, WireEncoding::kBslz4));
    for (std::size_t size = 0; size < message.size(); ++size) {
        EXPECT_FALSE(decode_v2(std::span(message).first(size))) << size << " bytes";
    }
}

TEST(StreamV2Malformed, RejectsANonMapAMissingTypeAndAnUnknownType) {
    EXPECT_THAT(decode_error({CborValue::Array{{std::uint64_t{1}}}}),
                HasSubstr("message is an array, expected a map"));
    auto no_type = emulator::v2_end_value(SeriesSettings{});
    no_type.erase("type");
    EXPECT_THAT(decode_error(no_type), HasSubstr("stream v2 message: missing key 'type'"));
    auto unknown = emulator::v2_end_value(SeriesSettings{});
    *unknown.find("type") = {std::string("pause")};
    EXPECT_THAT(decode_error(unknown), HasSubstr("unknown type 'pause'"));
}

TEST(StreamV2Malformed, NamesMissingKeysAndWrongTypes) {
    auto start = emulator::v2_start_value(SeriesSettings{});
    start.erase("incident_wavelength");
    EXPECT_THAT(decode_error(start),
                HasSubstr("stream v2 start: missing key 'incident_wavelength'"));

    auto image = emulator::v2_image_value(SeriesSettings{}, 0, WireEncoding::kRaw);
    *image.find("image_id") = {std::string("zero")};
    EXPECT_THAT(
        decode_error(image),
        HasSubstr("stream v2 image: key 'image_id' is a text string, expected an unsigned"));

    auto end = emulator::v2_end_value(SeriesSettings{});
    end.erase("series_id");
    EXPECT_THAT(decode_error(end), HasSubstr("stream v2 end: missing key 'series_id'"));
}

TEST(StreamV2Malformed, RejectsAZeroDenominator) {
    auto image = emulator::v2_image_value(SeriesSettings{}, 0, WireEncoding::kRaw);
    *image.find("real_time") = {CborValue::Array{{std::uint64_t{5}}, {std::uint64_t{0}}}};
    EXPECT_THAT(decode_error(image), HasSubstr("key 'real_time' has denominator 0"));
}

TEST(StreamV2Malformed, RejectsAnUnknownCompressionAlgorithm) {
    auto image = emulator::v2_image_value(SeriesSettings{}, 0, WireEncoding::kBslz4);
    auto& compression = std::get<CborValue::Tag>(typed_array(image, "threshold_1").value);
    auto& fields = std::get<CborValue::Tag>(compression.content.front().value);
    std::get<CborValue::Array>(fields.content.front().value)[0] = {std::string("zstd")};
    const std::string error = decode_error(image);
    EXPECT_THAT(error, HasSubstr("key 'data': channel 'threshold_1'"));
    EXPECT_THAT(error, HasSubstr("compression algorithm 'zstd'"));
}

TEST(StreamV2Malformed, RejectsABslz4ElementSizeThatDisagreesWithTheTypedArray) {
    auto image = emulator::v2_image_value(SeriesSettings{}, 0, WireEncoding::kBslz4);
    auto& compression = std::get<CborValue::Tag>(typed_array(image, "threshold_1").value);
    auto& fields = std::get<CborValue::Tag>(compression.content.front().value);
    std::get<CborValue::Array>(fields.content.front().value)[1] = {std::uint64_t{4}};
    EXPECT_THAT(decode_error(image), HasSubstr("bslz4 element size 4 does not match"));
}

TEST(StreamV2Malformed, RejectsBigEndianAndNonIntegerTypedArrays) {
    auto image = emulator::v2_image_value(SeriesSettings{}, 0, WireEncoding::kRaw);
    std::get<CborValue::Tag>(typed_array(image, "threshold_1").value).tag = 65;
    EXPECT_THAT(decode_error(image), HasSubstr("typed array tag 65 is big-endian"));
    std::get<CborValue::Tag>(typed_array(image, "threshold_1").value).tag = 85;
    EXPECT_THAT(decode_error(image), HasSubstr("typed array tag 85 is not uint8"));
}

TEST(StreamV2Malformed, RejectsDimensionsThatDisagreeWithThePayload) {
    for (const WireEncoding encoding :
         {WireEncoding::kRaw, WireEncoding::kLz4, WireEncoding::kBslz4}) {
        auto image = emulator::v2_image_value(SeriesSettings{}, 0, encoding);
        auto& multidim = std::get<CborValue::Tag>(image.find("data")->find("threshold_1")->value);
        auto& dims = std::get<CborValue::Array>(
            std::get<CborValue::Array>(multidim.content.front().value)[0].value);
        dims[0] = {std::uint64_t{22}};
        auto decoded = decode_v2(emulator::encode_cbor(image));
        ASSERT_FALSE(decoded);
        EXPECT_EQ(decoded.error().code, ErrorCode::kCorrupt);
        EXPECT_THAT(decoded.error().message, HasSubstr("37x22"));
    }
}

TEST(StreamV2Malformed, RejectsColumnMajorAndUntaggedChannels) {
    auto image = emulator::v2_image_value(SeriesSettings{}, 0, WireEncoding::kRaw);
    std::get<CborValue::Tag>(image.find("data")->find("threshold_1")->value).tag = 1040;
    EXPECT_THAT(decode_error(image), HasSubstr("column-major"));
    *image.find("data")->find("threshold_1") = {std::vector<std::byte>(10)};
    EXPECT_THAT(decode_error(image), HasSubstr("expected a multi-dimensional array (tag 40)"));
    *image.find("data") = {CborValue::Map{}};
    EXPECT_THAT(decode_error(image), HasSubstr("key 'data' is an empty map"));
}

TEST(StreamV2Malformed, ACorruptBslz4PayloadFailsWhenDecodingPixels) {
    auto image = emulator::v2_image_value(SeriesSettings{}, 0, WireEncoding::kBslz4);
    auto& compression = std::get<CborValue::Tag>(typed_array(image, "threshold_1").value);
    auto& fields = std::get<CborValue::Tag>(compression.content.front().value);
    auto& bytes = std::get<std::vector<std::byte>>(
        std::get<CborValue::Array>(fields.content.front().value)[2].value);
    bytes.erase(bytes.end() - 5, bytes.end());  // not resize(): GCC 12 -O1 -Wstringop-overflow
    auto decoded = decode_v2(emulator::encode_cbor(image));
    ASSERT_TRUE(decoded) << decoded.error().message;  // the header still agrees with the shape
    auto pixels = decode_pixels(std::get<Image>(*decoded));
    ASSERT_FALSE(pixels);
    EXPECT_EQ(pixels.error().code, ErrorCode::kCorrupt);
}

// Found by fuzz_dectris_v2 (docs/fuzzing.md): an array header claiming 2^33 items made libcbor
// allocate 64 GiB before reading a single item. Counts beyond the message are refused first.
TEST(StreamV2Malformed, RejectsAnArrayOrMapLongerThanTheMessage) {
    const std::vector<std::uint8_t> array_claim = {0xd9, 0xd9, 0xf7,  // self-describe tag
                                                   0xa1, 0x64, 't',  'y',  'p',  'e',  // {"type":
                                                   0x9b, 0x00, 0x00, 0x00, 0x02, 0x00,
                                                   0x00, 0x00, 0x00,  // array of 2^33 items
                                                   0x01};
    auto decoded = decode_v2(std::as_bytes(std::span(array_claim)));
    ASSERT_FALSE(decoded);
    EXPECT_EQ(decoded.error().code, ErrorCode::kCorrupt);
    EXPECT_THAT(decoded.error().message,
                HasSubstr("the array or map at byte 9 declares 8589934592 items but only 10 bytes "
                          "follow"));

    const std::vector<std::uint8_t> map_claim = {0x82, 0x01, 0xba, 0x7f, 0xff, 0xff, 0xff, 0x01};
    decoded = decode_v2(std::as_bytes(std::span(map_claim)));
    ASSERT_FALSE(decoded);
    EXPECT_THAT(decoded.error().message, HasSubstr("at byte 2 declares 2147483647 items"));

    // A definite array that does fit is still decoded (and then refused for what it is).
    const std::vector<std::uint8_t> small = {0x83, 0x01, 0x02, 0x03};
    decoded = decode_v2(std::as_bytes(std::span(small)));
    ASSERT_FALSE(decoded);
    EXPECT_THAT(decoded.error().message, HasSubstr("expected a map"));
}

// A few compressed bytes claiming a 4096 x 4096 x 4 frame (64 MiB): refused before anything is
// allocated, since LZ4 cannot expand a byte into more than 255 (memory stays bounded).
TEST(StreamV2Malformed, RefusesACompressedPayloadClaimingMoreThanLz4CanExpandTo) {
    for (const Encoding encoding : {Encoding::kLz4Block, Encoding::kLz4Hdf5, Encoding::kBslz4}) {
        ChannelData channel;
        channel.name = "threshold_1";
        channel.shape = {4096, 4096};
        channel.pixel_type = PixelType::kUint32;
        channel.encoding = encoding;
        channel.uncompressed_size_bytes = 4096U * 4096U * 4U;
        channel.payload.assign(40, std::byte{0});
        const auto decoded = decode_bytes(channel);
        ASSERT_FALSE(decoded.has_value());
        EXPECT_THAT(decoded.error().message, HasSubstr("40 compressed bytes cannot decode"));
    }
    ChannelData raw;
    raw.shape = {16, 16};
    raw.pixel_type = PixelType::kUint16;
    raw.uncompressed_size_bytes = 512;
    raw.payload.assign(10, std::byte{0});
    const auto short_raw = decode_bytes(raw);
    ASSERT_FALSE(short_raw.has_value());
    EXPECT_THAT(short_raw.error().message, HasSubstr("raw payload of 10 bytes, expected 512"));
}

}  // namespace
}  // namespace anisoflow::dectris
