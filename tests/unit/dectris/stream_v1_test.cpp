#include <cstddef>
#include <cstdint>
#include <cstring>
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

using emulator::Multipart;
using emulator::SeriesSettings;
using emulator::WireEncoding;
using ::testing::HasSubstr;

Result<Message> decode(const Multipart& message) {
    std::vector<ByteSpan> parts(message.begin(), message.end());
    return decode_v1(parts);
}

/// Decodes a message that must fail and returns its error message.
std::string decode_error(const Multipart& message) {
    auto decoded = decode(message);
    EXPECT_FALSE(decoded) << "decoded a malformed message";
    return decoded ? std::string() : decoded.error().message;
}

/// Replaces JSON part `index` of a message with `edit` applied to it.
template <class Edit>
Multipart edit_part(Multipart message, std::size_t index, Edit edit) {
    auto object = emulator::parse_json_part(message[index]);
    edit(object);
    message[index] = emulator::json_part(object);
    return message;
}

struct SeriesCase {
    PixelType type;
    WireEncoding encoding;
};

class StreamV1Series : public ::testing::TestWithParam<SeriesCase> {};

TEST_P(StreamV1Series, DecodesMetadataPixelsAndKeepsPayloadsUntouched) {
    SeriesSettings settings;
    settings.pixel_type = GetParam().type;
    const auto messages = emulator::v1_series(settings, GetParam().encoding);
    ASSERT_EQ(messages.size(), settings.number_of_images + 2);

    auto start = decode(messages.front());
    ASSERT_TRUE(start) << start.error().message;
    const auto* series_start = std::get_if<SeriesStart>(&*start);
    ASSERT_NE(series_start, nullptr);
    EXPECT_EQ(series_start->protocol, Protocol::kStreamV1);
    EXPECT_EQ(series_start->series_id, settings.series_id);
    EXPECT_EQ(series_start->header_detail, "basic");
    ASSERT_TRUE(series_start->config);
    const DetectorConfig& config = *series_start->config;
    EXPECT_EQ(config.shape, (Shape{settings.width_px, settings.height_px}));
    EXPECT_EQ(config.pixel_type, settings.pixel_type);
    EXPECT_DOUBLE_EQ(config.beam_center_x_px, settings.beam_center_x_px);
    EXPECT_DOUBLE_EQ(config.beam_center_y_px, settings.beam_center_y_px);
    EXPECT_DOUBLE_EQ(config.detector_distance_m, settings.detector_distance_m);
    EXPECT_DOUBLE_EQ(config.incident_wavelength_angstrom, settings.incident_wavelength_angstrom);
    EXPECT_DOUBLE_EQ(config.x_pixel_size_m, settings.pixel_size_m);
    EXPECT_DOUBLE_EQ(config.y_pixel_size_m, settings.pixel_size_m);
    EXPECT_DOUBLE_EQ(config.count_time_s, settings.count_time_s);
    EXPECT_EQ(config.frame_time_s, settings.frame_time_s);
    EXPECT_EQ(config.number_of_images, settings.number_of_images);

    for (std::uint64_t frame = 0; frame < settings.number_of_images; ++frame) {
        SCOPED_TRACE(frame);
        const Multipart& message = messages[1 + frame];
        auto decoded = decode(message);
        ASSERT_TRUE(decoded) << decoded.error().message;
        const auto* image = std::get_if<Image>(&*decoded);
        ASSERT_NE(image, nullptr);
        EXPECT_EQ(image->series_id, settings.series_id);
        EXPECT_EQ(image->image_number, frame);
        const ImageTiming expected = emulator::expected_timing(settings, frame);
        EXPECT_EQ(image->timing.start_time, expected.start_time);
        EXPECT_EQ(image->timing.stop_time, expected.stop_time);
        EXPECT_EQ(image->timing.real_time, expected.real_time);
        ASSERT_EQ(image->channels.size(), 1U);
        const ChannelData& channel = image->channels.front();
        EXPECT_EQ(channel.shape, (Shape{settings.width_px, settings.height_px}));
        EXPECT_EQ(channel.pixel_type, settings.pixel_type);
        EXPECT_EQ(channel.payload, message[2]);  // the archive stores what came
        auto pixels = decode_pixels(*image);
        ASSERT_TRUE(pixels) << pixels.error().message;
        EXPECT_EQ(*pixels, emulator::synthetic_pixels(settings, frame));
    }

    auto end = decode(messages.back());
    ASSERT_TRUE(end) << end.error().message;
    ASSERT_TRUE(std::holds_alternative<SeriesEnd>(*end));
    EXPECT_EQ(std::get<SeriesEnd>(*end).series_id, settings.series_id);
}

TEST_P(StreamV1Series, EncodingMapsToTheDocumentedPayloadFormat) {
    SeriesSettings settings;
    settings.pixel_type = GetParam().type;
    const auto pixels = emulator::synthetic_pixels(settings, 0);
    auto decoded = decode(emulator::v1_image(settings, 0, pixels, GetParam().encoding));
    ASSERT_TRUE(decoded) << decoded.error().message;
    const Encoding expected[] = {Encoding::kRaw, Encoding::kLz4Block, Encoding::kBslz4};
    EXPECT_EQ(std::get<Image>(*decoded).channels.front().encoding,
              expected[static_cast<int>(GetParam().encoding)]);
}

INSTANTIATE_TEST_SUITE_P(EveryTypeAndEncoding, StreamV1Series,
                         ::testing::Values(SeriesCase{PixelType::kUint16, WireEncoding::kRaw},
                                           SeriesCase{PixelType::kUint16, WireEncoding::kLz4},
                                           SeriesCase{PixelType::kUint16, WireEncoding::kBslz4},
                                           SeriesCase{PixelType::kUint32, WireEncoding::kRaw},
                                           SeriesCase{PixelType::kUint32, WireEncoding::kLz4},
                                           SeriesCase{PixelType::kUint32, WireEncoding::kBslz4},
                                           SeriesCase{PixelType::kUint8, WireEncoding::kBslz4}));

TEST(StreamV1, HeaderDetailNoneSendsNoConfig) {
    auto decoded = decode(emulator::v1_start(SeriesSettings{}, "none"));
    ASSERT_TRUE(decoded) << decoded.error().message;
    const auto& start = std::get<SeriesStart>(*decoded);
    EXPECT_EQ(start.header_detail, "none");
    EXPECT_FALSE(start.config.has_value());
}

TEST(StreamV1, HeaderDetailAllSkipsTheFlatfieldMaskAndCountrateParts) {
    const auto message = emulator::v1_start(SeriesSettings{}, "all");
    ASSERT_EQ(message.size(), 8U);
    auto decoded = decode(message);
    ASSERT_TRUE(decoded) << decoded.error().message;
    const auto& start = std::get<SeriesStart>(*decoded);
    ASSERT_TRUE(start.config);
    EXPECT_EQ(start.config->shape, (Shape{37, 23}));
}

TEST(StreamV1, NumberOfImagesIsNimagesTimesNtrigger) {
    const auto message = edit_part(emulator::v1_start(SeriesSettings{}), 1,
                                   [](auto& config) { config["ntrigger"] = 4; });
    auto decoded = decode(message);
    ASSERT_TRUE(decoded) << decoded.error().message;
    EXPECT_EQ(std::get<SeriesStart>(*decoded).config->number_of_images, 12U);
}

TEST(StreamV1Malformed, RejectsAnEmptyMessageAndNonJson) {
    EXPECT_THAT(decode_error({}), HasSubstr("empty multipart message"));
    const std::string text = "{not json";
    emulator::Part part(text.size());
    std::memcpy(part.data(), text.data(), text.size());
    EXPECT_THAT(decode_error({part}), HasSubstr("part 0: not valid JSON"));
}

TEST(StreamV1Malformed, RejectsAMissingOrUnknownHtype) {
    EXPECT_THAT(decode_error({emulator::json_part({{"series", 1}})}),
                HasSubstr("missing key 'htype'"));
    EXPECT_THAT(decode_error({emulator::json_part({{"htype", "dimage-2.0"}})}),
                HasSubstr("unknown htype 'dimage-2.0'"));
}

TEST(StreamV1Malformed, NamesTheMissingConfigKey) {
    const auto message = edit_part(emulator::v1_start(SeriesSettings{}), 1,
                                   [](auto& config) { config.erase("wavelength"); });
    EXPECT_THAT(decode_error(message),
                HasSubstr("dheader-1.0 detector config (part 1): missing key 'wavelength'"));
}

TEST(StreamV1Malformed, RejectsABasicHeaderWithoutItsConfigPart) {
    auto message = emulator::v1_start(SeriesSettings{});
    message.pop_back();
    EXPECT_THAT(decode_error(message), HasSubstr("missing for header_detail 'basic'"));
}

TEST(StreamV1Malformed, RejectsAnUnknownHeaderDetail) {
    const auto message = edit_part(emulator::v1_start(SeriesSettings{}), 0,
                                   [](auto& header) { header["header_detail"] = "some"; });
    EXPECT_THAT(decode_error(message), HasSubstr("key 'header_detail' is 'some'"));
}

/// An image message of the default series.
Multipart image_message(WireEncoding encoding) {
    const SeriesSettings settings;
    return emulator::v1_image(settings, 2, emulator::synthetic_pixels(settings, 2), encoding);
}

TEST(StreamV1Malformed, NamesAWrongType) {
    const auto message =
        edit_part(image_message(WireEncoding::kRaw), 1, [](auto& d) { d["shape"] = "37x23"; });
    EXPECT_THAT(decode_error(message),
                HasSubstr("stream v1 dimage_d-1.0 (part 1): key 'shape' is string"));
    const auto frame =
        edit_part(image_message(WireEncoding::kRaw), 0, [](auto& d) { d["frame"] = -2; });
    EXPECT_THAT(decode_error(frame), HasSubstr("stream v1 dimage-1.0: key 'frame' is number"));
}

TEST(StreamV1Malformed, RejectsUnknownAndBigEndianEncodings) {
    const auto zstd = edit_part(image_message(WireEncoding::kRaw), 1,
                                [](auto& d) { d["encoding"] = "bs16-zstd<"; });
    auto decoded = decode(zstd);
    ASSERT_FALSE(decoded);
    EXPECT_EQ(decoded.error().code, ErrorCode::kUnsupported);
    EXPECT_THAT(decoded.error().message, HasSubstr("key 'encoding' is 'bs16-zstd<'"));
    const auto big =
        edit_part(image_message(WireEncoding::kRaw), 1, [](auto& d) { d["encoding"] = ">"; });
    EXPECT_THAT(decode_error(big), HasSubstr("big-endian"));
    const auto mismatched = edit_part(image_message(WireEncoding::kBslz4), 1,
                                      [](auto& d) { d["encoding"] = "bs32-lz4<"; });
    EXPECT_THAT(decode_error(mismatched), HasSubstr("but key 'type' is 'uint16'"));
}

TEST(StreamV1Malformed, RejectsAnUnsupportedPixelType) {
    const auto message =
        edit_part(image_message(WireEncoding::kRaw), 1, [](auto& d) { d["type"] = "float32"; });
    EXPECT_THAT(decode_error(message), HasSubstr("key 'type' is 'float32'"));
}

TEST(StreamV1Malformed, RejectsASizeKeyThatDisagreesWithTheDataPart) {
    const auto message = edit_part(image_message(WireEncoding::kLz4), 1,
                                   [](auto& d) { d["size"] = d["size"].template get<int>() + 1; });
    EXPECT_THAT(decode_error(message), HasSubstr("key 'size' is"));
}

TEST(StreamV1Malformed, RejectsARawPayloadThatDisagreesWithTheShape) {
    const auto message = edit_part(image_message(WireEncoding::kRaw), 1, [](auto& d) {
        d["shape"] = {36, 23};
    });
    EXPECT_THAT(decode_error(message), HasSubstr("disagrees with shape 36x23"));
}

TEST(StreamV1Malformed, RejectsABslz4HeaderThatDisagreesWithTheShape) {
    const auto message = edit_part(image_message(WireEncoding::kBslz4), 1, [](auto& d) {
        d["shape"] = {37, 24};
    });
    auto decoded = decode(message);
    ASSERT_FALSE(decoded);
    EXPECT_EQ(decoded.error().code, ErrorCode::kCorrupt);
    EXPECT_THAT(decoded.error().message, HasSubstr("dimage_d-1.0"));
    EXPECT_THAT(decoded.error().message, HasSubstr("header says 1702 bytes but shape 37x24"));
}

TEST(StreamV1Malformed, RejectsMissingOrMislabelledParts) {
    auto short_message = image_message(WireEncoding::kRaw);
    short_message.pop_back();
    EXPECT_THAT(decode_error(short_message), HasSubstr("dconfig-1.0 (part 3): missing"));
    const auto swapped = edit_part(image_message(WireEncoding::kRaw), 3,
                                   [](auto& d) { d["htype"] = "dimage_d-1.0"; });
    EXPECT_THAT(decode_error(swapped), HasSubstr("dconfig-1.0 (part 3): htype is 'dimage_d-1.0'"));
    const auto no_time =
        edit_part(image_message(WireEncoding::kRaw), 3, [](auto& d) { d.erase("real_time"); });
    EXPECT_THAT(decode_error(no_time), HasSubstr("missing key 'real_time'"));
}

TEST(StreamV1Malformed, ACorruptLz4PayloadFailsWhenDecodingPixels) {
    auto message = image_message(WireEncoding::kLz4);
    message[2].resize(message[2].size() - 3);
    message = edit_part(message, 1, [&](auto& d) { d["size"] = message[2].size(); });
    auto decoded = decode(message);
    ASSERT_TRUE(decoded) << decoded.error().message;  // lz4 blocks carry no size to check
    auto pixels = decode_pixels(std::get<Image>(*decoded));
    ASSERT_FALSE(pixels);
    EXPECT_THAT(pixels.error().message, HasSubstr("series 7 image 2"));
}

}  // namespace
}  // namespace anisoflow::dectris
