#pragma once
// The multipart messages between the services (docs/protocol.md): part 0 a serialized
// anisoflow.stream.v1.Envelope, parts 1..n raw payloads whose count and sizes the envelope's
// body declares. encode_*() build them; decode() checks them and names what is wrong.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <tl/expected.hpp>
#include <zmq.hpp>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/core/frame.hpp"
#include "anisoflow/core/result.hpp"

namespace anisoflow::transport {

namespace pb = ::anisoflow::stream::v1;

/// The wire schema version this build speaks (Envelope.schema_version); others are rejected.
inline constexpr std::uint32_t kSchemaVersion = 1;
/// Largest decoded frame or cake part accepted, bytes: 1 GiB is 16x a 4k x 4k float32 frame.
inline constexpr std::uint64_t kMaxFrameBytes = std::uint64_t{1} << 30;
/// Largest frame side accepted, pixels (the largest area detectors today are ~4-8k pixels).
inline constexpr std::uint32_t kMaxFrameSidePixels = 65536;
/// Largest number of Q or chi bins of a cake accepted, bins.
inline constexpr std::uint32_t kMaxCakeBins = 1U << 20;
/// Largest number of samples of one curve accepted, points.
inline constexpr std::uint64_t kMaxCurvePoints = std::uint64_t{1} << 24;
/// Largest envelope (part 0) accepted, bytes: headers are small, pixels never travel in them.
inline constexpr std::size_t kMaxEnvelopeBytes = std::size_t{1} << 20;

/// Why a message was rejected. to_string() gives a snake_case label for metrics, e.g.
/// anisoflow_reduce_messages_rejected_total{reason="payload_size_mismatch"}.
enum class RejectReason {
    kEmptyMessage,         ///< no parts at all, or an empty part 0
    kOversizedHeader,      ///< part 0 larger than kMaxEnvelopeBytes
    kMalformedHeader,      ///< part 0 is not a parsable Envelope
    kUnknownVersion,       ///< Envelope.schema_version is not kSchemaVersion
    kMissingBody,          ///< the Envelope's oneof body is not set
    kInvalidField,         ///< a required field is unset or out of its domain (e.g. dtype)
    kAbsurdShape,          ///< a declared shape or size beyond the k*Max* bounds
    kMissingPart,          ///< fewer payload parts than the header declares
    kExtraPart,            ///< more payload parts than the header declares
    kPayloadSizeMismatch,  ///< a payload part's size differs from the header's declaration
};

/// "empty_message", "oversized_header", "malformed_header", "unknown_version", "missing_body",
/// "invalid_field", "absurd_shape", "missing_part", "extra_part", "payload_size_mismatch".
std::string_view to_string(RejectReason reason);

/// A rejected message: the reason for metrics and the error (naming the message type and field
/// at fault) for logs.
struct Rejection {
    RejectReason reason;
    Error error;
};

/// The parts of one ZeroMQ message, in order.
using Multipart = std::vector<zmq::message_t>;

/// Decoded messages: the typed header and the payload parts that follow it.
struct RunStartMessage {
    pb::RunStart start;
};
struct FrameMessage {
    pb::FrameHeader header;
    zmq::message_t payload;  ///< header.payload_size_bytes bytes, encoded as header.encoding
};
struct ReducedMessage {
    pb::ReducedFrame header;
    std::vector<zmq::message_t> parts;  ///< one per header.parts(), n_chi x n_q float64 each
};
struct ResultMessage {
    pb::AnalysisResult header;
    std::vector<zmq::message_t> curves;  ///< one per header.curves(), 3 x n_points float64 each
    std::vector<zmq::message_t> images;  ///< one per header.images(), n_chi x n_q float64 each
};
struct RunEndMessage {
    pb::RunEnd end;
};
struct HeartbeatMessage {
    pb::Heartbeat heartbeat;
};
struct WorkerCreditMessage {
    pb::WorkerCredit credit;
};
struct FrameAckMessage {
    pb::FrameAck ack;
};
struct RunEventMessage {
    pb::RunEvent event;
};
struct RunControlRequestMessage {
    pb::RunControlRequest request;
};
struct RunControlReplyMessage {
    pb::RunControlReply reply;
};
struct ArchiveReceiptsMessage {
    pb::ArchiveReceipts receipts;
};
using Message =
    std::variant<RunStartMessage, FrameMessage, ReducedMessage, ResultMessage, RunEndMessage,
                 HeartbeatMessage, WorkerCreditMessage, FrameAckMessage, RunEventMessage,
                 RunControlRequestMessage, RunControlReplyMessage, ArchiveReceiptsMessage>;

/// "RunStart", "FrameHeader", "ReducedFrame", "AnalysisResult", "RunEnd", "Heartbeat",
/// "WorkerCredit", "FrameAck", "RunEvent", "RunControlRequest", "RunControlReply",
/// "ArchiveReceipts".
std::string_view message_type_name(const Message& message);

using DecodeResult = tl::expected<Message, Rejection>;

/// Checks and unpacks one received message (the parts are moved into the result, not copied):
/// part 0 parses as an Envelope of kSchemaVersion with its body set; the body's required fields
/// are set; shapes are within the k*Max* bounds; the number of payload parts and each part's size
/// match the body's declaration. Never throws.
[[nodiscard]] DecodeResult decode(Multipart&& parts);

/// A frame message. Fills header.payload_size_bytes from `payload` (and, for ENCODING_RAW,
/// uncompressed_size_bytes when 0), then checks the result as decode() would, so that a sender
/// never emits what its peers reject. Build `payload` with make_payload() to avoid a copy.
[[nodiscard]] Result<Multipart> encode_frame(const pb::FrameHeader& header, zmq::message_t payload);
/// A reduced cake: one part per header.parts() entry, in that order.
[[nodiscard]] Result<Multipart> encode_reduced(const pb::ReducedFrame& header,
                                               std::vector<zmq::message_t> parts);
/// An analysis result: one curve part per header.curves() entry, in that order, then one image
/// part per header.images() entry.
[[nodiscard]] Result<Multipart> encode_result(const pb::AnalysisResult& header,
                                              std::vector<zmq::message_t> curves,
                                              std::vector<zmq::message_t> images = {});
/// Control messages, without payload parts.
[[nodiscard]] Result<Multipart> encode_control(const pb::RunStart& start);
[[nodiscard]] Result<Multipart> encode_control(const pb::RunEnd& end);
[[nodiscard]] Result<Multipart> encode_control(const pb::Heartbeat& heartbeat);
/// The reduce side of acknowledged dispatch (dispatch.hpp), without payload parts.
[[nodiscard]] Result<Multipart> encode_control(const pb::WorkerCredit& credit);
[[nodiscard]] Result<Multipart> encode_control(const pb::FrameAck& ack);
/// Run control (docs/run-control.md), without payload parts.
[[nodiscard]] Result<Multipart> encode_control(const pb::RunEvent& event);
[[nodiscard]] Result<Multipart> encode_control(const pb::RunControlRequest& request);
[[nodiscard]] Result<Multipart> encode_control(const pb::RunControlReply& reply);
/// Archive's receipts (docs/protocol.md, "Archive receipts"), without payload parts.
[[nodiscard]] Result<Multipart> encode_control(const pb::ArchiveReceipts& receipts);

/// Bytes of every part of a message, for the bytes in/out metrics.
std::uint64_t size_of(const Multipart& parts);

/// Adds one frame to the count of its kind (and, for DATA, its orientation: N, else P).
void count_frame(pb::FrameCounts& counts, const pb::FrameHeader& header);

/// Every frame `counts` holds, of any kind and orientation.
[[nodiscard]] std::uint64_t total_frames(const pb::FrameCounts& counts);

/// "data", "dark", "flat", "background"; "none" for UNSPECIFIED or an unknown value.
std::string_view frame_kind_name(pb::FrameKind kind);
/// "P", "N"; "-" for UNSPECIFIED or an unknown value.
std::string_view orientation_name(pb::Orientation orientation);

/// The frame's pixel type (nullopt for PIXEL_DTYPE_UNSPECIFIED or an unknown value).
std::optional<PixelType> to_pixel_type(pb::PixelDtype dtype);
pb::PixelDtype to_pixel_dtype(PixelType type);

/// A RAW frame's pixels copied into an owned Frame (compressed payloads are lib/codec's).
[[nodiscard]] Result<Frame> to_frame(const FrameMessage& message);

}  // namespace anisoflow::transport
