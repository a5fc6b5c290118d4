// encode_*() and decode() without sockets: every RejectReason from a hand-built bad message.

#include "anisoflow/transport/message.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/transport/payload.hpp"

#include "sample_messages.hpp"

namespace anisoflow::transport {
namespace {

using ::testing::HasSubstr;

// Decodes `parts` and expects a rejection for `reason` whose message contains `names` (the
// message type and field at fault).
void expect_rejected(Multipart parts, RejectReason reason, const std::string& names) {
    const auto decoded = decode(std::move(parts));
    ASSERT_FALSE(decoded.has_value()) << "accepted a message that should be " << to_string(reason);
    EXPECT_EQ(decoded.error().reason, reason)
        << "got " << to_string(decoded.error().reason) << ": " << decoded.error().error.message;
    EXPECT_THAT(decoded.error().error.message, HasSubstr(names));
}

Multipart valid_frame(std::uint32_t rows = 16, std::uint32_t cols = 24) {
    auto parts =
        encode_frame(sample::frame_header(rows, cols, pb::PIXEL_DTYPE_UINT16),
                     make_payload(sample::values<std::uint16_t>(std::size_t{rows} * cols, 1)));
    EXPECT_TRUE(parts.has_value()) << parts.error().message;
    return std::move(*parts);
}

pb::Envelope envelope_with(const pb::FrameHeader& header) {
    pb::Envelope envelope;
    envelope.set_schema_version(kSchemaVersion);
    *envelope.mutable_frame_header() = header;
    return envelope;
}

TEST(RejectReason, LabelsAreDistinctSnakeCase) {
    const RejectReason all[] = {RejectReason::kEmptyMessage,    RejectReason::kOversizedHeader,
                                RejectReason::kMalformedHeader, RejectReason::kUnknownVersion,
                                RejectReason::kMissingBody,     RejectReason::kInvalidField,
                                RejectReason::kAbsurdShape,     RejectReason::kMissingPart,
                                RejectReason::kExtraPart,       RejectReason::kPayloadSizeMismatch};
    // Prometheus label values: lowercase words joined by single underscores.
    const auto snake_case = [](std::string_view label) {
        return !label.empty() && label.front() != '_' && label.back() != '_' &&
               label.find("__") == std::string_view::npos &&
               std::all_of(label.begin(), label.end(),
                           [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
    };
    std::set<std::string_view> labels;
    for (const auto reason : all) {
        EXPECT_TRUE(snake_case(to_string(reason))) << to_string(reason);
        labels.insert(to_string(reason));
    }
    EXPECT_EQ(labels.size(), std::size(all));
    EXPECT_EQ(to_string(RejectReason::kPayloadSizeMismatch), "payload_size_mismatch");
}

TEST(Decode, AcceptsAFrameAndKeepsItsPayload) {
    const auto pixels = sample::values<std::uint16_t>(std::size_t{16} * 24, 1);
    auto decoded = decode(valid_frame());
    ASSERT_TRUE(decoded.has_value()) << decoded.error().error.message;
    ASSERT_TRUE(std::holds_alternative<FrameMessage>(*decoded));
    EXPECT_EQ(message_type_name(*decoded), "FrameHeader");
    const auto& frame = std::get<FrameMessage>(*decoded);
    EXPECT_EQ(frame.header.payload_size_bytes(), pixels.size() * 2);
    EXPECT_EQ(frame.header.uncompressed_size_bytes(), pixels.size() * 2);
    EXPECT_EQ(copy_values<std::uint16_t>(frame.payload), pixels);
}

TEST(Decode, RejectsAMessageWithoutParts) {
    expect_rejected({}, RejectReason::kEmptyMessage, "no parts");
    Multipart empty_head;
    empty_head.emplace_back();
    expect_rejected(std::move(empty_head), RejectReason::kEmptyMessage, "part 0");
}

TEST(Decode, RejectsGarbageBytes) {
    // 0x0F is field 1 with wire type 7, which does not exist.
    const std::uint8_t bad_wire_type[] = {0x0F, 0xFF, 0xFF, 0x01};
    Multipart parts;
    parts.emplace_back(bad_wire_type, sizeof(bad_wire_type));
    expect_rejected(std::move(parts), RejectReason::kMalformedHeader, "Envelope");

    const std::string text = "this is not protobuf";
    Multipart text_parts;
    text_parts.emplace_back(text.data(), text.size());
    expect_rejected(std::move(text_parts), RejectReason::kMalformedHeader, "Envelope");
}

TEST(Decode, RejectsATruncatedEnvelope) {
    Multipart parts = valid_frame();
    const std::string bytes(static_cast<const char*>(parts[0].data()), parts[0].size());
    parts[0] = zmq::message_t(bytes.data(), bytes.size() / 2);
    expect_rejected(std::move(parts), RejectReason::kMalformedHeader, "Envelope");
}

TEST(Decode, RejectsAnOversizedEnvelope) {
    Multipart parts;
    parts.emplace_back(kMaxEnvelopeBytes + 1);
    std::memset(parts[0].data(), 0, parts[0].size());
    expect_rejected(std::move(parts), RejectReason::kOversizedHeader, "kMaxEnvelopeBytes");
}

TEST(Decode, RejectsUnknownAndMissingSchemaVersions) {
    pb::Envelope v2 = envelope_with(sample::frame_header(4, 4, pb::PIXEL_DTYPE_UINT8));
    v2.set_schema_version(2);
    expect_rejected(sample::raw_message(v2, {}), RejectReason::kUnknownVersion,
                    "Envelope.schema_version is 2");

    pb::Envelope v0 = v2;
    v0.clear_schema_version();
    expect_rejected(sample::raw_message(v0, {}), RejectReason::kUnknownVersion, "(unset)");

    // A future version with fields v1 does not know still parses far enough to be rejected by
    // number (field 1 is schema_version forever), not as malformed.
    pb::Envelope future;
    future.set_schema_version(3);
    std::string bytes = future.SerializeAsString();
    bytes += std::string("\x98\x06\x01", 3);  // field 99, varint 1: unknown to v1
    Multipart parts;
    parts.emplace_back(bytes.data(), bytes.size());
    expect_rejected(std::move(parts), RejectReason::kUnknownVersion, "schema_version is 3");
}

TEST(Decode, RejectsAnEnvelopeWithoutBody) {
    pb::Envelope envelope;
    envelope.set_schema_version(kSchemaVersion);
    expect_rejected(sample::raw_message(envelope), RejectReason::kMissingBody, "Envelope.body");
}

TEST(Decode, RejectsMissingAndExtraParts) {
    Multipart truncated = valid_frame();
    truncated.pop_back();
    expect_rejected(std::move(truncated), RejectReason::kMissingPart, "FrameHeader");

    Multipart extra = valid_frame();
    extra.emplace_back(8);
    expect_rejected(std::move(extra), RejectReason::kExtraPart, "FrameHeader");

    const pb::ReducedFrame reduced = sample::reduced_header(50, 8);
    auto cake = encode_reduced(reduced, sample::cake_parts(reduced));
    ASSERT_TRUE(cake.has_value()) << cake.error().message;
    cake->pop_back();
    expect_rejected(std::move(*cake), RejectReason::kMissingPart, "ReducedFrame.parts");

    auto beat = encode_control(sample::heartbeat());
    ASSERT_TRUE(beat.has_value()) << beat.error().message;
    beat->emplace_back(1);
    expect_rejected(std::move(*beat), RejectReason::kExtraPart, "Heartbeat");
}

TEST(Decode, RejectsPayloadSizeMismatches) {
    Multipart short_payload = valid_frame(16, 24);
    short_payload[1] = zmq::message_t(16 * 24 * 2 - 1);
    expect_rejected(std::move(short_payload), RejectReason::kPayloadSizeMismatch,
                    "FrameHeader.payload_size_bytes");

    // The header's own sizes disagree with rows x cols x dtype size.
    pb::FrameHeader header = sample::frame_header(16, 24, pb::PIXEL_DTYPE_UINT32);
    header.set_payload_size_bytes(std::uint64_t{16} * 24 * 2);
    header.set_uncompressed_size_bytes(std::uint64_t{16} * 24 * 2);
    std::vector<zmq::message_t> payload;
    payload.emplace_back(16 * 24 * 2);
    expect_rejected(sample::raw_message(envelope_with(header), std::move(payload)),
                    RejectReason::kPayloadSizeMismatch, "FrameHeader.uncompressed_size_bytes");

    const pb::ReducedFrame reduced = sample::reduced_header(50, 8);
    auto cake = encode_reduced(reduced, sample::cake_parts(reduced));
    ASSERT_TRUE(cake.has_value());
    (*cake)[2] = zmq::message_t(50 * 8 * 8 + 8);
    expect_rejected(std::move(*cake), RejectReason::kPayloadSizeMismatch, "payload part 2");

    const pb::AnalysisResult result = sample::result_header(30, 40);
    auto curves = encode_result(result, sample::curve_parts(result));
    ASSERT_TRUE(curves.has_value()) << curves.error().message;
    (*curves)[3] = zmq::message_t(std::size_t{40} * 8);  // one column instead of three
    expect_rejected(std::move(*curves), RejectReason::kPayloadSizeMismatch, "AnalysisResult");
}

TEST(Decode, RejectsAbsurdShapes) {
    pb::FrameHeader huge = sample::frame_header(1000000, 1000000, pb::PIXEL_DTYPE_UINT32);
    huge.set_payload_size_bytes(16);
    huge.set_uncompressed_size_bytes(16);
    std::vector<zmq::message_t> payload;
    payload.emplace_back(16);
    expect_rejected(sample::raw_message(envelope_with(huge), std::move(payload)),
                    RejectReason::kAbsurdShape, "FrameHeader.rows x cols is 1000000 x 1000000");

    // Each side is allowed, the product is not: 65536^2 float64 pixels are 32 GiB.
    pb::FrameHeader too_many = sample::frame_header(65536, 65536, pb::PIXEL_DTYPE_FLOAT64);
    expect_rejected(sample::raw_message(envelope_with(too_many)), RejectReason::kAbsurdShape,
                    "kMaxFrameBytes");

    pb::FrameHeader empty = sample::frame_header(0, 24, pb::PIXEL_DTYPE_UINT16);
    expect_rejected(sample::raw_message(envelope_with(empty)), RejectReason::kAbsurdShape,
                    "FrameHeader.rows x cols is 0 x 24");

    pb::Envelope cake;
    cake.set_schema_version(kSchemaVersion);
    *cake.mutable_reduced_frame() = sample::reduced_header(kMaxCakeBins + 1, 72);
    expect_rejected(sample::raw_message(cake), RejectReason::kAbsurdShape, "ReducedFrame.n_chi");

    pb::Envelope result;
    result.set_schema_version(kSchemaVersion);
    *result.mutable_analysis_result() = sample::result_header(kMaxCurvePoints + 1, 10);
    expect_rejected(sample::raw_message(result), RejectReason::kAbsurdShape,
                    "AnalysisResult.curves[0].n_points");
}

TEST(Decode, RejectsUnsetRequiredFields) {
    pb::FrameHeader no_dtype = sample::frame_header(4, 4, pb::PIXEL_DTYPE_UNSPECIFIED);
    expect_rejected(sample::raw_message(envelope_with(no_dtype)), RejectReason::kInvalidField,
                    "FrameHeader.dtype");

    pb::FrameHeader no_orientation = sample::frame_header(4, 4, pb::PIXEL_DTYPE_UINT8);
    no_orientation.clear_orientation();
    expect_rejected(sample::raw_message(envelope_with(no_orientation)), RejectReason::kInvalidField,
                    "FrameHeader.orientation");

    pb::FrameHeader unknown_encoding = sample::frame_header(4, 4, pb::PIXEL_DTYPE_UINT8);
    unknown_encoding.set_encoding(static_cast<pb::Encoding>(42));
    expect_rejected(sample::raw_message(envelope_with(unknown_encoding)),
                    RejectReason::kInvalidField, "FrameHeader.encoding");

    pb::FrameHeader no_run = sample::frame_header(4, 4, pb::PIXEL_DTYPE_UINT8);
    no_run.clear_run_id();
    expect_rejected(sample::raw_message(envelope_with(no_run)), RejectReason::kInvalidField,
                    "FrameHeader.run_id");

    pb::ReducedFrame twice = sample::reduced_header(10, 4);
    twice.add_parts()->set_quantity(pb::CAKE_QUANTITY_INTENSITY);
    pb::Envelope cake;
    cake.set_schema_version(kSchemaVersion);
    *cake.mutable_reduced_frame() = twice;
    expect_rejected(sample::raw_message(cake, sample::cake_parts(twice)),
                    RejectReason::kInvalidField, "ReducedFrame.parts[3].quantity");

    pb::RunEnd no_reason = sample::run_end();
    no_reason.clear_reason();
    pb::Envelope end;
    end.set_schema_version(kSchemaVersion);
    *end.mutable_run_end() = no_reason;
    expect_rejected(sample::raw_message(end), RejectReason::kInvalidField, "RunEnd.reason");
}

TEST(Decode, RejectsArchiveReceiptsWithoutSessionOrWithBackwardRanges) {
    pb::ArchiveReceipts good;
    good.set_session(7);
    pb::RunReceipt& run = *good.add_runs();
    run.set_run_id(sample::kRunId);
    pb::SequenceRange& range = *run.add_cakes();
    range.set_first(3);
    range.set_last(9);
    auto encoded = encode_control(good);
    ASSERT_TRUE(encoded) << encoded.error().message;
    auto decoded = decode(std::move(*encoded));
    ASSERT_TRUE(decoded);
    const auto* receipts = std::get_if<ArchiveReceiptsMessage>(&*decoded);
    ASSERT_NE(receipts, nullptr);
    EXPECT_EQ(receipts->receipts.runs(0).cakes(0).last(), 9U);
    EXPECT_EQ(message_type_name(*decoded), "ArchiveReceipts");

    const auto envelope = [](const pb::ArchiveReceipts& body) {
        pb::Envelope e;
        e.set_schema_version(kSchemaVersion);
        *e.mutable_archive_receipts() = body;
        return sample::raw_message(e);
    };
    pb::ArchiveReceipts no_session = good;
    no_session.set_session(0);
    expect_rejected(envelope(no_session), RejectReason::kInvalidField, "ArchiveReceipts.session");
    pb::ArchiveReceipts backward = good;
    backward.mutable_runs(0)->mutable_cakes(0)->set_first(10);
    expect_rejected(envelope(backward), RejectReason::kInvalidField, "cakes range [10, 9]");
    pb::ArchiveReceipts no_run = good;
    no_run.mutable_runs(0)->clear_run_id();
    expect_rejected(envelope(no_run), RejectReason::kInvalidField, "ArchiveReceipts.runs.run_id");
    EXPECT_FALSE(encode_control(no_session)) << "a sender never emits what decode() refuses";
}

TEST(Decode, AcceptsCompressedFramesByTheirDeclaredSize) {
    // A compressed payload's size is the sender's to declare; only the decoded size is derived
    // from the shape.
    pb::FrameHeader header = sample::frame_header(64, 64, pb::PIXEL_DTYPE_UINT16);
    header.set_encoding(pb::ENCODING_BSLZ4);
    header.set_uncompressed_size_bytes(std::uint64_t{64} * 64 * 2);
    auto parts = encode_frame(header, make_payload(sample::values<std::uint8_t>(517, 3)));
    ASSERT_TRUE(parts.has_value()) << parts.error().message;
    auto decoded = decode(std::move(*parts));
    ASSERT_TRUE(decoded.has_value()) << decoded.error().error.message;
    EXPECT_EQ(std::get<FrameMessage>(*decoded).payload.size(), 517U);

    header.set_uncompressed_size_bytes(0);  // a compressed frame must say what it decodes to
    auto unsized = encode_frame(header, make_payload(sample::values<std::uint8_t>(517, 3)));
    ASSERT_FALSE(unsized.has_value());
    EXPECT_THAT(unsized.error().message, HasSubstr("uncompressed_size_bytes"));
}

TEST(Encode, RefusesWhatDecodeWouldReject) {
    // 16 x 24 uint16 needs 768 bytes; 700 are given.
    auto frame = encode_frame(sample::frame_header(16, 24, pb::PIXEL_DTYPE_UINT16),
                              make_payload(sample::values<std::uint8_t>(700, 1)));
    ASSERT_FALSE(frame.has_value());
    EXPECT_EQ(frame.error().code, ErrorCode::kCorrupt);
    EXPECT_THAT(frame.error().message, HasSubstr("encode: FrameHeader.uncompressed_size_bytes"));

    const pb::AnalysisResult result = sample::result_header(30, 40);
    auto too_few = encode_result(result, {});
    ASSERT_FALSE(too_few.has_value());
    EXPECT_THAT(too_few.error().message, HasSubstr("AnalysisResult.curves declares 6"));
}

TEST(ToFrame, CopiesRawPixelsAndRefusesCompressedOnes) {
    const auto pixels = sample::values<std::int32_t>(std::size_t{5} * 7, 9);
    pb::FrameHeader header = sample::frame_header(5, 7, pb::PIXEL_DTYPE_INT32, 41);
    header.set_exposure_s(0.25);
    auto parts = encode_frame(header, make_payload(std::vector<std::int32_t>(pixels)));
    ASSERT_TRUE(parts.has_value());
    auto decoded = decode(std::move(*parts));
    ASSERT_TRUE(decoded.has_value());
    const auto frame = to_frame(std::get<FrameMessage>(*decoded));
    ASSERT_TRUE(frame.has_value()) << frame.error().message;
    EXPECT_EQ(frame->shape, (FrameShape{5, 7}));
    EXPECT_EQ(frame->pixel_type(), PixelType::kInt32);
    EXPECT_EQ(std::get<std::vector<std::int32_t>>(frame->pixels), pixels);
    EXPECT_EQ(frame->exposure_s, 0.25);
    EXPECT_EQ(frame->index_in_source, 41U);

    FrameMessage compressed{header, zmq::message_t(12)};
    compressed.header.set_encoding(pb::ENCODING_LZ4);
    const auto refused = to_frame(compressed);
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code, ErrorCode::kUnsupported);
}

TEST(PixelDtype, MapsEveryPixelTypeBothWays) {
    for (const auto type :
         {PixelType::kUint8, PixelType::kUint16, PixelType::kUint32, PixelType::kInt8,
          PixelType::kInt16, PixelType::kInt32, PixelType::kFloat32, PixelType::kFloat64}) {
        EXPECT_EQ(to_pixel_type(to_pixel_dtype(type)), type) << to_string(type);
    }
    EXPECT_FALSE(to_pixel_type(pb::PIXEL_DTYPE_UNSPECIFIED).has_value());
}

}  // namespace
}  // namespace anisoflow::transport

namespace anisoflow::transport {
namespace {

TEST(Decode, SplitsAResultsCurvesFromItsCakeImages) {
    pb::AnalysisResult result = sample::result_header(30, 40);
    pb::CakeImage& image = *result.add_images();
    image.set_kind(pb::CAKE_IMAGE_KIND_PN_RELATIVE_DIFFERENCE);
    image.set_n_q(5);
    image.set_n_chi(4);
    std::vector<zmq::message_t> images;
    images.push_back(make_payload(std::vector<double>(20, 0.25)));
    auto encoded = encode_result(result, sample::curve_parts(result), std::move(images));
    ASSERT_TRUE(encoded.has_value()) << encoded.error().message;
    auto decoded = decode(std::move(*encoded));
    ASSERT_TRUE(decoded.has_value()) << decoded.error().error.message;
    const auto& message = std::get<ResultMessage>(*decoded);
    EXPECT_EQ(message.curves.size(), static_cast<std::size_t>(result.curves_size()));
    ASSERT_EQ(message.images.size(), 1U);
    EXPECT_EQ(copy_values<double>(message.images.front()), std::vector<double>(20, 0.25));

    // An image part of the wrong size, or one missing, is refused by name.
    std::vector<zmq::message_t> wrong;
    wrong.push_back(make_payload(std::vector<double>(19, 0.25)));
    auto bad = encode_result(result, sample::curve_parts(result), std::move(wrong));
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(bad.error().message.find("image float64"), std::string::npos) << bad.error().message;
}

}  // namespace
}  // namespace anisoflow::transport
