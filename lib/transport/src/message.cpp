#include "anisoflow/transport/message.hpp"

#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include <fmt/format.h>

namespace anisoflow::transport {
namespace {

using Check = tl::expected<void, Rejection>;

template <class... Args>
tl::unexpected<Rejection> reject(RejectReason reason, fmt::format_string<Args...> format,
                                 Args&&... args) {
    // An unknown version is a valid message we cannot read; everything else is corrupt.
    const ErrorCode code =
        reason == RejectReason::kUnknownVersion ? ErrorCode::kUnsupported : ErrorCode::kCorrupt;
    return tl::unexpected<Rejection>(
        Rejection{reason, Error{code, fmt::format(format, std::forward<Args>(args)...)}});
}

// Compressed frames may exceed their raw size slightly: LZ4's worst case is n + n/255 + 16, and
// bitshuffle-LZ4 adds a 12-byte header and 4 bytes per block.
constexpr std::uint64_t kMaxCompressedFrameBytes = kMaxFrameBytes + kMaxFrameBytes / 128;
constexpr std::uint64_t kCakeValueBytes = sizeof(double);
constexpr std::uint64_t kCurveColumns = 3;  // x, value, variance

std::uint64_t dtype_size_bytes(pb::PixelDtype dtype) {
    const auto type = to_pixel_type(dtype);
    return type ? pixel_size_bytes(*type) : 0;
}

Check check_part_count(std::string_view type, std::string_view field, std::size_t declared,
                       std::size_t received) {
    if (received < declared) {
        return reject(RejectReason::kMissingPart,
                      "{}: {} declares {} payload part(s), the message has {}", type, field,
                      declared, received);
    }
    if (received > declared) {
        return reject(RejectReason::kExtraPart,
                      "{}: {} declares {} payload part(s), the message has {}", type, field,
                      declared, received);
    }
    return {};
}

Check check_part_size(std::string_view type, std::string_view declaration, std::size_t index,
                      std::uint64_t declared_bytes, const zmq::message_t& part) {
    if (part.size() != declared_bytes) {
        return reject(RejectReason::kPayloadSizeMismatch,
                      "{}: {} is {} bytes but payload part {} holds {} bytes", type, declaration,
                      declared_bytes, index + 1, part.size());
    }
    return {};
}

Check check_run_id(std::string_view type, const std::string& run_id) {
    if (run_id.empty()) {
        return reject(RejectReason::kInvalidField, "{}.run_id is empty", type);
    }
    return {};
}

// DATA frames (and cakes of them) must say which orientation they belong to; calibration frames
// may, but need not.
Check check_kind_and_orientation(std::string_view type, int kind, int orientation) {
    if (!pb::FrameKind_IsValid(kind) || kind == pb::FRAME_KIND_UNSPECIFIED) {
        return reject(RejectReason::kInvalidField, "{}.kind is unset or unknown ({})", type, kind);
    }
    if (!pb::Orientation_IsValid(orientation)) {
        return reject(RejectReason::kInvalidField, "{}.orientation is unknown ({})", type,
                      orientation);
    }
    if (kind == pb::FRAME_KIND_DATA && orientation == pb::ORIENTATION_UNSPECIFIED) {
        return reject(RejectReason::kInvalidField,
                      "{}.orientation is unset; DATA frames must be ORIENTATION_P or _N", type);
    }
    return {};
}

Check check_frame(const pb::FrameHeader& h, std::span<const zmq::message_t> payloads) {
    constexpr std::string_view kType = "FrameHeader";
    if (auto ok = check_run_id(kType, h.run_id()); !ok) {
        return ok;
    }
    if (auto ok = check_kind_and_orientation(kType, h.kind(), h.orientation()); !ok) {
        return ok;
    }
    if (!pb::Encoding_IsValid(h.encoding()) || h.encoding() == pb::ENCODING_UNSPECIFIED) {
        return reject(RejectReason::kInvalidField, "FrameHeader.encoding is unset or unknown ({})",
                      static_cast<int>(h.encoding()));
    }
    const std::uint64_t pixel_bytes = dtype_size_bytes(h.dtype());
    if (pixel_bytes == 0) {
        return reject(RejectReason::kInvalidField, "FrameHeader.dtype is unset or unknown ({})",
                      static_cast<int>(h.dtype()));
    }
    if (!(h.exposure_s() >= 0.0) || !std::isfinite(h.exposure_s())) {
        return reject(RejectReason::kInvalidField,
                      "FrameHeader.exposure_s is {} (must be finite and >= 0)", h.exposure_s());
    }
    if (h.rows() == 0 || h.cols() == 0 || h.rows() > kMaxFrameSidePixels ||
        h.cols() > kMaxFrameSidePixels) {
        return reject(RejectReason::kAbsurdShape,
                      "FrameHeader.rows x cols is {} x {} (each must be in [1, {}])", h.rows(),
                      h.cols(), kMaxFrameSidePixels);
    }
    // rows, cols <= 2^16 and pixel_bytes <= 8: the product fits easily in 64 bits.
    const std::uint64_t raw_bytes = std::uint64_t{h.rows()} * h.cols() * pixel_bytes;
    if (raw_bytes > kMaxFrameBytes) {
        return reject(RejectReason::kAbsurdShape,
                      "FrameHeader: {} x {} {} pixels are {} bytes, above kMaxFrameBytes ({})",
                      h.rows(), h.cols(), pb::PixelDtype_Name(h.dtype()), raw_bytes,
                      kMaxFrameBytes);
    }
    if (h.uncompressed_size_bytes() != raw_bytes) {
        return reject(RejectReason::kPayloadSizeMismatch,
                      "FrameHeader.uncompressed_size_bytes is {} but rows x cols x dtype size "
                      "({} x {} x {}) is {}",
                      h.uncompressed_size_bytes(), h.rows(), h.cols(), pixel_bytes, raw_bytes);
    }
    if (h.encoding() == pb::ENCODING_RAW && h.payload_size_bytes() != raw_bytes) {
        return reject(RejectReason::kPayloadSizeMismatch,
                      "FrameHeader.payload_size_bytes is {} but a RAW {} x {} x {} frame is {}",
                      h.payload_size_bytes(), h.rows(), h.cols(), pixel_bytes, raw_bytes);
    }
    if (h.payload_size_bytes() > kMaxCompressedFrameBytes) {
        return reject(RejectReason::kAbsurdShape,
                      "FrameHeader.payload_size_bytes is {}, above the compressed bound {}",
                      h.payload_size_bytes(), kMaxCompressedFrameBytes);
    }
    if (auto ok = check_part_count(kType, "one pixel part", 1, payloads.size()); !ok) {
        return ok;
    }
    return check_part_size(kType, "FrameHeader.payload_size_bytes", 0, h.payload_size_bytes(),
                           payloads[0]);
}

Check check_axis(std::string_view field, const pb::UniformAxis& axis) {
    if (!std::isfinite(axis.lower()) || !std::isfinite(axis.upper()) ||
        !(axis.upper() > axis.lower())) {
        return reject(RejectReason::kInvalidField,
                      "ReducedFrame.{} is [{}, {}] (needs finite lower < upper)", field,
                      axis.lower(), axis.upper());
    }
    return {};
}

Check check_reduced(const pb::ReducedFrame& h, std::span<const zmq::message_t> payloads) {
    constexpr std::string_view kType = "ReducedFrame";
    if (auto ok = check_run_id(kType, h.run_id()); !ok) {
        return ok;
    }
    if (auto ok = check_kind_and_orientation(kType, h.kind(), h.orientation()); !ok) {
        return ok;
    }
    if (h.n_q() == 0 || h.n_chi() == 0 || h.n_q() > kMaxCakeBins || h.n_chi() > kMaxCakeBins) {
        return reject(RejectReason::kAbsurdShape,
                      "ReducedFrame.n_chi x n_q is {} x {} (each must be in [1, {}])", h.n_chi(),
                      h.n_q(), kMaxCakeBins);
    }
    const std::uint64_t part_bytes = std::uint64_t{h.n_q()} * h.n_chi() * kCakeValueBytes;
    if (part_bytes > kMaxFrameBytes) {
        return reject(RejectReason::kAbsurdShape,
                      "ReducedFrame: a {} x {} cake part is {} bytes, above kMaxFrameBytes ({})",
                      h.n_chi(), h.n_q(), part_bytes, kMaxFrameBytes);
    }
    if (auto ok = check_axis("q_axis", h.q_axis()); !ok) {
        return ok;
    }
    if (auto ok = check_axis("chi_axis", h.chi_axis()); !ok) {
        return ok;
    }
    if (h.parts().empty()) {
        return reject(RejectReason::kInvalidField, "ReducedFrame.parts is empty");
    }
    std::set<int> seen;
    for (int i = 0; i < h.parts_size(); ++i) {
        const int quantity = h.parts(i).quantity();
        if (!pb::CakeQuantity_IsValid(quantity) || quantity == pb::CAKE_QUANTITY_UNSPECIFIED) {
            return reject(RejectReason::kInvalidField,
                          "ReducedFrame.parts[{}].quantity is unset or unknown ({})", i, quantity);
        }
        if (!seen.insert(quantity).second) {
            return reject(RejectReason::kInvalidField,
                          "ReducedFrame.parts[{}].quantity {} appears twice", i,
                          pb::CakeQuantity_Name(h.parts(i).quantity()));
        }
    }
    if (auto ok = check_part_count(kType, "ReducedFrame.parts",
                                   static_cast<std::size_t>(h.parts_size()), payloads.size());
        !ok) {
        return ok;
    }
    for (std::size_t i = 0; i < payloads.size(); ++i) {
        if (auto ok =
                check_part_size(kType, "n_chi x n_q x 8 (float64)", i, part_bytes, payloads[i]);
            !ok) {
            return ok;
        }
    }
    return {};
}

Check check_result(const pb::AnalysisResult& h, std::span<const zmq::message_t> payloads) {
    constexpr std::string_view kType = "AnalysisResult";
    if (auto ok = check_run_id(kType, h.run_id()); !ok) {
        return ok;
    }
    if (!pb::ExtractionMode_IsValid(h.mode()) || h.mode() == pb::EXTRACTION_MODE_UNSPECIFIED) {
        return reject(RejectReason::kInvalidField, "AnalysisResult.mode is unset or unknown ({})",
                      static_cast<int>(h.mode()));
    }
    if (!pb::Normalisation_IsValid(h.normalisation()) ||
        h.normalisation() == pb::NORMALISATION_UNSPECIFIED) {
        return reject(RejectReason::kInvalidField,
                      "AnalysisResult.normalisation is unset or unknown ({})",
                      static_cast<int>(h.normalisation()));
    }
    if (!pb::Mechanism_IsValid(h.mechanism()) || h.mechanism() == pb::MECHANISM_UNSPECIFIED) {
        return reject(RejectReason::kInvalidField,
                      "AnalysisResult.mechanism is unset or unknown ({})",
                      static_cast<int>(h.mechanism()));
    }
    std::set<int> seen;
    for (int i = 0; i < h.curves_size(); ++i) {
        const pb::CurveDescriptor& curve = h.curves(i);
        if (!pb::CurveKind_IsValid(curve.kind()) || curve.kind() == pb::CURVE_KIND_UNSPECIFIED) {
            return reject(RejectReason::kInvalidField,
                          "AnalysisResult.curves[{}].kind is unset or unknown ({})", i,
                          static_cast<int>(curve.kind()));
        }
        if (!seen.insert(curve.kind()).second) {
            return reject(RejectReason::kInvalidField,
                          "AnalysisResult.curves[{}].kind {} appears twice", i,
                          pb::CurveKind_Name(curve.kind()));
        }
        if (curve.n_points() == 0 || curve.n_points() > kMaxCurvePoints) {
            return reject(RejectReason::kAbsurdShape,
                          "AnalysisResult.curves[{}].n_points is {} (must be in [1, {}])", i,
                          curve.n_points(), kMaxCurvePoints);
        }
    }
    for (int i = 0; i < h.images_size(); ++i) {
        const pb::CakeImage& image = h.images(i);
        if (!pb::CakeImageKind_IsValid(image.kind()) ||
            image.kind() == pb::CAKE_IMAGE_KIND_UNSPECIFIED) {
            return reject(RejectReason::kInvalidField,
                          "AnalysisResult.images[{}].kind is unset or unknown ({})", i,
                          static_cast<int>(image.kind()));
        }
        if (image.n_q() == 0 || image.n_chi() == 0 || image.n_q() > kMaxCakeBins ||
            image.n_chi() > kMaxCakeBins ||
            std::uint64_t{image.n_q()} * image.n_chi() * sizeof(double) > kMaxFrameBytes) {
            return reject(RejectReason::kAbsurdShape, "AnalysisResult.images[{}] is {} x {} cells",
                          i, image.n_chi(), image.n_q());
        }
    }
    const auto curve_count = static_cast<std::size_t>(h.curves_size());
    if (auto ok = check_part_count(
            kType,
            h.images_size() == 0 ? "AnalysisResult.curves" : "AnalysisResult.curves and images",
            curve_count + static_cast<std::size_t>(h.images_size()), payloads.size());
        !ok) {
        return ok;
    }
    for (std::size_t i = curve_count; i < payloads.size(); ++i) {
        const pb::CakeImage& image = h.images(static_cast<int>(i - curve_count));
        const std::uint64_t bytes = std::uint64_t{image.n_q()} * image.n_chi() * sizeof(double);
        if (auto ok =
                check_part_size(kType, "n_chi x n_q x 8 (image float64)", i, bytes, payloads[i]);
            !ok) {
            return ok;
        }
    }
    for (std::size_t i = 0; i < curve_count; ++i) {
        const std::uint64_t bytes =
            kCurveColumns * h.curves(static_cast<int>(i)).n_points() * sizeof(double);
        if (auto ok = check_part_size(kType, "3 x n_points x 8 (x, value, variance float64)", i,
                                      bytes, payloads[i]);
            !ok) {
            return ok;
        }
    }
    return {};
}

Check check_run_start(const pb::RunStart& h, std::span<const zmq::message_t> payloads) {
    if (auto ok = check_run_id("RunStart", h.run_id()); !ok) {
        return ok;
    }
    if (!h.has_config()) {
        return reject(RejectReason::kInvalidField, "RunStart.config is unset");
    }
    return check_part_count("RunStart", "a control message", 0, payloads.size());
}

Check check_run_end(const pb::RunEnd& h, std::span<const zmq::message_t> payloads) {
    if (auto ok = check_run_id("RunEnd", h.run_id()); !ok) {
        return ok;
    }
    if (!pb::RunEndReason_IsValid(h.reason()) || h.reason() == pb::RUN_END_REASON_UNSPECIFIED) {
        return reject(RejectReason::kInvalidField, "RunEnd.reason is unset or unknown ({})",
                      static_cast<int>(h.reason()));
    }
    return check_part_count("RunEnd", "a control message", 0, payloads.size());
}

Check check_heartbeat(const pb::Heartbeat& h, std::span<const zmq::message_t> payloads) {
    if (h.service().empty()) {
        return reject(RejectReason::kInvalidField, "Heartbeat.service is empty");
    }
    if (!pb::ServiceState_IsValid(h.state()) || h.state() == pb::SERVICE_STATE_UNSPECIFIED) {
        return reject(RejectReason::kInvalidField, "Heartbeat.state is unset or unknown ({})",
                      static_cast<int>(h.state()));
    }
    return check_part_count("Heartbeat", "a control message", 0, payloads.size());
}

Check check_worker_credit(const pb::WorkerCredit& h, std::span<const zmq::message_t> payloads) {
    if (h.instance().empty()) {
        return reject(RejectReason::kInvalidField, "WorkerCredit.instance is empty");
    }
    return check_part_count("WorkerCredit", "a control message", 0, payloads.size());
}

Check check_frame_ack(const pb::FrameAck& h, std::span<const zmq::message_t> payloads) {
    if (auto ok = check_run_id("FrameAck", h.run_id()); !ok) {
        return ok;
    }
    return check_part_count("FrameAck", "a control message", 0, payloads.size());
}

Check check_run_event(const pb::RunEvent& h, std::span<const zmq::message_t> payloads) {
    if (auto ok = check_run_id("RunEvent", h.run_id()); !ok) {
        return ok;
    }
    const pb::StateChangeType type = h.change().type();
    if (!pb::StateChangeType_IsValid(type) || type == pb::STATE_CHANGE_TYPE_UNSPECIFIED) {
        return reject(RejectReason::kInvalidField, "RunEvent.change.type is unset or unknown ({})",
                      static_cast<int>(type));
    }
    return check_part_count("RunEvent", "a control message", 0, payloads.size());
}

Check check_run_control_request(const pb::RunControlRequest& h,
                                std::span<const zmq::message_t> payloads) {
    if (h.action_case() == pb::RunControlRequest::ACTION_NOT_SET) {
        return reject(RejectReason::kInvalidField,
                      "RunControlRequest.action is not set (start, next, stop or status)");
    }
    return check_part_count("RunControlRequest", "a control message", 0, payloads.size());
}

Check check_run_control_reply(const pb::RunControlReply& h,
                              std::span<const zmq::message_t> payloads) {
    if (!h.ok() && h.error().empty()) {
        return reject(RejectReason::kInvalidField, "RunControlReply: not ok and no error text");
    }
    return check_part_count("RunControlReply", "a control message", 0, payloads.size());
}

Check check_ranges(const char* field, const pb::RunReceipt& run,
                   const google::protobuf::RepeatedPtrField<pb::SequenceRange>& ranges) {
    for (const pb::SequenceRange& range : ranges) {
        if (range.first() > range.last()) {
            return reject(RejectReason::kInvalidField,
                          "ArchiveReceipts: run {}: {} range [{}, {}] ends before it begins",
                          run.run_id(), field, range.first(), range.last());
        }
    }
    return {};
}

Check check_archive_receipts(const pb::ArchiveReceipts& h,
                             std::span<const zmq::message_t> payloads) {
    if (h.session() == 0) {
        return reject(RejectReason::kInvalidField, "ArchiveReceipts.session is unset (0)");
    }
    for (const pb::RunReceipt& run : h.runs()) {
        if (auto ok = check_run_id("ArchiveReceipts.runs", run.run_id()); !ok) {
            return ok;
        }
        if (auto ok = check_ranges("raw", run, run.raw()); !ok) {
            return ok;
        }
        if (auto ok = check_ranges("cakes", run, run.cakes()); !ok) {
            return ok;
        }
        if (auto ok = check_ranges("raw_refused", run, run.raw_refused()); !ok) {
            return ok;
        }
        if (auto ok = check_ranges("cakes_refused", run, run.cakes_refused()); !ok) {
            return ok;
        }
    }
    return check_part_count("ArchiveReceipts", "a control message", 0, payloads.size());
}

Check check_body(const pb::Envelope& envelope, std::span<const zmq::message_t> payloads) {
    switch (envelope.body_case()) {
        case pb::Envelope::kRunStart:
            return check_run_start(envelope.run_start(), payloads);
        case pb::Envelope::kFrameHeader:
            return check_frame(envelope.frame_header(), payloads);
        case pb::Envelope::kReducedFrame:
            return check_reduced(envelope.reduced_frame(), payloads);
        case pb::Envelope::kAnalysisResult:
            return check_result(envelope.analysis_result(), payloads);
        case pb::Envelope::kRunEnd:
            return check_run_end(envelope.run_end(), payloads);
        case pb::Envelope::kHeartbeat:
            return check_heartbeat(envelope.heartbeat(), payloads);
        case pb::Envelope::kWorkerCredit:
            return check_worker_credit(envelope.worker_credit(), payloads);
        case pb::Envelope::kFrameAck:
            return check_frame_ack(envelope.frame_ack(), payloads);
        case pb::Envelope::kRunEvent:
            return check_run_event(envelope.run_event(), payloads);
        case pb::Envelope::kRunControlRequest:
            return check_run_control_request(envelope.run_control_request(), payloads);
        case pb::Envelope::kRunControlReply:
            return check_run_control_reply(envelope.run_control_reply(), payloads);
        case pb::Envelope::kArchiveReceipts:
            return check_archive_receipts(envelope.archive_receipts(), payloads);
        case pb::Envelope::BODY_NOT_SET:
            break;
    }
    return reject(RejectReason::kMissingBody,
                  "Envelope.body is not set (or is a message type this build does not know)");
}

// Serializes the envelope straight into part 0 and appends the payloads, after the same checks
// decode() applies.
Result<Multipart> assemble(const pb::Envelope& envelope, std::vector<zmq::message_t> payloads) {
    if (auto ok = check_body(envelope, payloads); !ok) {
        return tl::unexpected(ok.error().error.with_context("encode"));
    }
    const std::size_t size = envelope.ByteSizeLong();
    if (size > kMaxEnvelopeBytes) {
        return fail(ErrorCode::kInvalidArgument,
                    "encode: the envelope is {} bytes, above kMaxEnvelopeBytes ({})", size,
                    kMaxEnvelopeBytes);
    }
    Multipart parts;
    parts.reserve(payloads.size() + 1);
    zmq::message_t head(size);
    envelope.SerializeWithCachedSizesToArray(static_cast<std::uint8_t*>(head.data()));
    parts.push_back(std::move(head));
    for (auto& payload : payloads) {
        parts.push_back(std::move(payload));
    }
    return parts;
}

// A control message: an envelope whose body `set_body` fills, no payload parts.
template <class SetBody>
Result<Multipart> control_message(SetBody&& set_body) {
    pb::Envelope envelope;
    envelope.set_schema_version(kSchemaVersion);
    std::forward<SetBody>(set_body)(envelope);
    return assemble(envelope, {});
}

template <class T>
Result<Frame> frame_from_bytes(const FrameMessage& message) {
    std::vector<T> pixels(static_cast<std::size_t>(message.header.rows()) * message.header.cols());
    if (message.payload.size() != pixels.size() * sizeof(T)) {
        return fail(ErrorCode::kCorrupt, "FrameHeader: payload holds {} bytes, expected {}",
                    message.payload.size(), pixels.size() * sizeof(T));
    }
    if (!pixels.empty()) {
        std::memcpy(pixels.data(), message.payload.data(), message.payload.size());
    }
    Frame frame = Frame::from_vector(FrameShape{message.header.rows(), message.header.cols()},
                                     std::move(pixels));
    if (message.header.exposure_s() > 0.0) {
        frame.exposure_s = message.header.exposure_s();
    }
    frame.index_in_source = message.header.sequence();
    return frame;
}

}  // namespace

std::string_view to_string(RejectReason reason) {
    switch (reason) {
        case RejectReason::kEmptyMessage:
            return "empty_message";
        case RejectReason::kOversizedHeader:
            return "oversized_header";
        case RejectReason::kMalformedHeader:
            return "malformed_header";
        case RejectReason::kUnknownVersion:
            return "unknown_version";
        case RejectReason::kMissingBody:
            return "missing_body";
        case RejectReason::kInvalidField:
            return "invalid_field";
        case RejectReason::kAbsurdShape:
            return "absurd_shape";
        case RejectReason::kMissingPart:
            return "missing_part";
        case RejectReason::kExtraPart:
            return "extra_part";
        case RejectReason::kPayloadSizeMismatch:
            return "payload_size_mismatch";
    }
    return "unknown";
}

std::string_view message_type_name(const Message& message) {
    constexpr std::string_view kNames[] = {
        "RunStart", "FrameHeader",       "ReducedFrame",    "AnalysisResult",
        "RunEnd",   "Heartbeat",         "WorkerCredit",    "FrameAck",
        "RunEvent", "RunControlRequest", "RunControlReply", "ArchiveReceipts"};
    static_assert(std::size(kNames) == std::variant_size_v<Message>);
    return kNames[message.index()];
}

DecodeResult decode(Multipart&& parts) {
    if (parts.empty()) {
        return reject(RejectReason::kEmptyMessage, "the message has no parts");
    }
    const zmq::message_t& head = parts.front();
    if (head.size() == 0) {
        return reject(RejectReason::kEmptyMessage, "part 0 (Envelope) is empty");
    }
    if (head.size() > kMaxEnvelopeBytes) {
        return reject(RejectReason::kOversizedHeader,
                      "part 0 (Envelope) is {} bytes, above kMaxEnvelopeBytes ({})", head.size(),
                      kMaxEnvelopeBytes);
    }
    pb::Envelope envelope;
    if (!envelope.ParseFromArray(head.data(), static_cast<int>(head.size()))) {
        return reject(RejectReason::kMalformedHeader,
                      "part 0 ({} bytes) is not an anisoflow.stream.v1.Envelope", head.size());
    }
    if (envelope.schema_version() != kSchemaVersion) {
        return reject(RejectReason::kUnknownVersion,
                      "Envelope.schema_version is {}{}; this build speaks version {}",
                      envelope.schema_version(), envelope.schema_version() == 0 ? " (unset)" : "",
                      kSchemaVersion);
    }
    const std::span<const zmq::message_t> payloads(parts.data() + 1, parts.size() - 1);
    if (auto ok = check_body(envelope, payloads); !ok) {
        return tl::unexpected(std::move(ok.error()));
    }
    std::vector<zmq::message_t> moved;
    moved.reserve(payloads.size());
    for (std::size_t i = 1; i < parts.size(); ++i) {
        moved.push_back(std::move(parts[i]));
    }
    switch (envelope.body_case()) {
        case pb::Envelope::kRunStart:
            return RunStartMessage{std::move(*envelope.mutable_run_start())};
        case pb::Envelope::kFrameHeader:
            return FrameMessage{std::move(*envelope.mutable_frame_header()),
                                std::move(moved.front())};
        case pb::Envelope::kReducedFrame:
            return ReducedMessage{std::move(*envelope.mutable_reduced_frame()), std::move(moved)};
        case pb::Envelope::kAnalysisResult: {
            const auto curve_count =
                static_cast<std::ptrdiff_t>(envelope.analysis_result().curves_size());
            std::vector<zmq::message_t> images(std::make_move_iterator(moved.begin() + curve_count),
                                               std::make_move_iterator(moved.end()));
            moved.resize(static_cast<std::size_t>(curve_count));
            return ResultMessage{std::move(*envelope.mutable_analysis_result()), std::move(moved),
                                 std::move(images)};
        }
        case pb::Envelope::kRunEnd:
            return RunEndMessage{std::move(*envelope.mutable_run_end())};
        case pb::Envelope::kHeartbeat:
            return HeartbeatMessage{std::move(*envelope.mutable_heartbeat())};
        case pb::Envelope::kWorkerCredit:
            return WorkerCreditMessage{std::move(*envelope.mutable_worker_credit())};
        case pb::Envelope::kFrameAck:
            return FrameAckMessage{std::move(*envelope.mutable_frame_ack())};
        case pb::Envelope::kRunEvent:
            return RunEventMessage{std::move(*envelope.mutable_run_event())};
        case pb::Envelope::kRunControlRequest:
            return RunControlRequestMessage{std::move(*envelope.mutable_run_control_request())};
        case pb::Envelope::kRunControlReply:
            return RunControlReplyMessage{std::move(*envelope.mutable_run_control_reply())};
        case pb::Envelope::kArchiveReceipts:
            return ArchiveReceiptsMessage{std::move(*envelope.mutable_archive_receipts())};
        case pb::Envelope::BODY_NOT_SET:
            break;
    }
    assert(false && "check_body() rejects an unset body");
    return reject(RejectReason::kMissingBody, "Envelope.body is not set");
}

Result<Multipart> encode_frame(const pb::FrameHeader& header, zmq::message_t payload) {
    pb::Envelope envelope;
    envelope.set_schema_version(kSchemaVersion);
    pb::FrameHeader& h = *envelope.mutable_frame_header();
    h = header;
    h.set_payload_size_bytes(payload.size());
    if (h.encoding() == pb::ENCODING_RAW && h.uncompressed_size_bytes() == 0) {
        h.set_uncompressed_size_bytes(payload.size());
    }
    std::vector<zmq::message_t> payloads;
    payloads.push_back(std::move(payload));
    return assemble(envelope, std::move(payloads));
}

Result<Multipart> encode_reduced(const pb::ReducedFrame& header,
                                 std::vector<zmq::message_t> parts) {
    pb::Envelope envelope;
    envelope.set_schema_version(kSchemaVersion);
    *envelope.mutable_reduced_frame() = header;
    return assemble(envelope, std::move(parts));
}

Result<Multipart> encode_result(const pb::AnalysisResult& header,
                                std::vector<zmq::message_t> curves,
                                std::vector<zmq::message_t> images) {
    pb::Envelope envelope;
    envelope.set_schema_version(kSchemaVersion);
    *envelope.mutable_analysis_result() = header;
    for (auto& image : images) {
        curves.push_back(std::move(image));
    }
    return assemble(envelope, std::move(curves));
}

Result<Multipart> encode_control(const pb::RunStart& start) {
    return control_message([&](pb::Envelope& envelope) { *envelope.mutable_run_start() = start; });
}

Result<Multipart> encode_control(const pb::RunEnd& end) {
    return control_message([&](pb::Envelope& envelope) { *envelope.mutable_run_end() = end; });
}

Result<Multipart> encode_control(const pb::Heartbeat& heartbeat) {
    return control_message(
        [&](pb::Envelope& envelope) { *envelope.mutable_heartbeat() = heartbeat; });
}

Result<Multipart> encode_control(const pb::WorkerCredit& credit) {
    return control_message(
        [&](pb::Envelope& envelope) { *envelope.mutable_worker_credit() = credit; });
}

Result<Multipart> encode_control(const pb::FrameAck& ack) {
    return control_message([&](pb::Envelope& envelope) { *envelope.mutable_frame_ack() = ack; });
}

Result<Multipart> encode_control(const pb::RunEvent& event) {
    return control_message([&](pb::Envelope& envelope) { *envelope.mutable_run_event() = event; });
}

Result<Multipart> encode_control(const pb::RunControlRequest& request) {
    return control_message(
        [&](pb::Envelope& envelope) { *envelope.mutable_run_control_request() = request; });
}

Result<Multipart> encode_control(const pb::RunControlReply& reply) {
    return control_message(
        [&](pb::Envelope& envelope) { *envelope.mutable_run_control_reply() = reply; });
}

Result<Multipart> encode_control(const pb::ArchiveReceipts& receipts) {
    return control_message(
        [&](pb::Envelope& envelope) { *envelope.mutable_archive_receipts() = receipts; });
}

std::uint64_t size_of(const Multipart& parts) {
    std::uint64_t bytes = 0;
    for (const zmq::message_t& part : parts) {
        bytes += part.size();
    }
    return bytes;
}

std::uint64_t total_frames(const pb::FrameCounts& counts) {
    return counts.data_p() + counts.data_n() + counts.dark() + counts.flat() + counts.background();
}

void count_frame(pb::FrameCounts& counts, const pb::FrameHeader& header) {
    switch (header.kind()) {
        case pb::FRAME_KIND_DATA:
            if (header.orientation() == pb::ORIENTATION_N) {
                counts.set_data_n(counts.data_n() + 1);
            } else {
                counts.set_data_p(counts.data_p() + 1);
            }
            break;
        case pb::FRAME_KIND_DARK:
            counts.set_dark(counts.dark() + 1);
            break;
        case pb::FRAME_KIND_FLAT:
            counts.set_flat(counts.flat() + 1);
            break;
        default:
            counts.set_background(counts.background() + 1);
            break;
    }
}

std::string_view frame_kind_name(pb::FrameKind kind) {
    switch (kind) {
        case pb::FRAME_KIND_DATA:
            return "data";
        case pb::FRAME_KIND_DARK:
            return "dark";
        case pb::FRAME_KIND_FLAT:
            return "flat";
        case pb::FRAME_KIND_BACKGROUND:
            return "background";
        default:
            return "none";
    }
}

std::string_view orientation_name(pb::Orientation orientation) {
    switch (orientation) {
        case pb::ORIENTATION_P:
            return "P";
        case pb::ORIENTATION_N:
            return "N";
        default:
            return "-";
    }
}

std::optional<PixelType> to_pixel_type(pb::PixelDtype dtype) {
    switch (dtype) {
        case pb::PIXEL_DTYPE_UINT8:
            return PixelType::kUint8;
        case pb::PIXEL_DTYPE_UINT16:
            return PixelType::kUint16;
        case pb::PIXEL_DTYPE_UINT32:
            return PixelType::kUint32;
        case pb::PIXEL_DTYPE_INT8:
            return PixelType::kInt8;
        case pb::PIXEL_DTYPE_INT16:
            return PixelType::kInt16;
        case pb::PIXEL_DTYPE_INT32:
            return PixelType::kInt32;
        case pb::PIXEL_DTYPE_FLOAT32:
            return PixelType::kFloat32;
        case pb::PIXEL_DTYPE_FLOAT64:
            return PixelType::kFloat64;
        default:
            return std::nullopt;
    }
}

pb::PixelDtype to_pixel_dtype(PixelType type) {
    switch (type) {
        case PixelType::kUint8:
            return pb::PIXEL_DTYPE_UINT8;
        case PixelType::kUint16:
            return pb::PIXEL_DTYPE_UINT16;
        case PixelType::kUint32:
            return pb::PIXEL_DTYPE_UINT32;
        case PixelType::kInt8:
            return pb::PIXEL_DTYPE_INT8;
        case PixelType::kInt16:
            return pb::PIXEL_DTYPE_INT16;
        case PixelType::kInt32:
            return pb::PIXEL_DTYPE_INT32;
        case PixelType::kFloat32:
            return pb::PIXEL_DTYPE_FLOAT32;
        case PixelType::kFloat64:
            return pb::PIXEL_DTYPE_FLOAT64;
    }
    return pb::PIXEL_DTYPE_UNSPECIFIED;
}

Result<Frame> to_frame(const FrameMessage& message) {
    if (message.header.encoding() != pb::ENCODING_RAW) {
        return fail(ErrorCode::kUnsupported,
                    "FrameHeader.encoding is {}: decompress it (lib/codec) before to_frame()",
                    pb::Encoding_Name(message.header.encoding()));
    }
    const auto type = to_pixel_type(message.header.dtype());
    if (!type) {
        return fail(ErrorCode::kCorrupt, "FrameHeader.dtype is unset or unknown ({})",
                    static_cast<int>(message.header.dtype()));
    }
    switch (*type) {
        case PixelType::kUint8:
            return frame_from_bytes<std::uint8_t>(message);
        case PixelType::kUint16:
            return frame_from_bytes<std::uint16_t>(message);
        case PixelType::kUint32:
            return frame_from_bytes<std::uint32_t>(message);
        case PixelType::kInt8:
            return frame_from_bytes<std::int8_t>(message);
        case PixelType::kInt16:
            return frame_from_bytes<std::int16_t>(message);
        case PixelType::kInt32:
            return frame_from_bytes<std::int32_t>(message);
        case PixelType::kFloat32:
            return frame_from_bytes<float>(message);
        case PixelType::kFloat64:
            return frame_from_bytes<double>(message);
    }
    return fail(ErrorCode::kCorrupt, "FrameHeader.dtype is unknown");
}

}  // namespace anisoflow::transport
