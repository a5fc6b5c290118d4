#pragma once
// anisoflow-reduce: one worker of the reduction (docs/protocol.md, "Acknowledged dispatch to
// reducers"). Frames come from ingest over a FrameInput (transport::WorkerLink in production);
// RunStart builds the geometry and cake integrator, dark and flat frames are averaged into the
// corrections, data frames are decompressed and integrated into CakeAccumulator sums that go out
// as a ReducedFrame on the reduced DEALER, then the frame is acknowledged (REDUCED: its credit
// returns); analyze's receipt for the cake comes back on the same DEALER and is relayed to
// ingest (RECEIVED), which only then forgets the frame.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include <zmq.hpp>

#include "anisoflow/config/v1/services.pb.h"

#include "anisoflow/core/frame.hpp"
#include "anisoflow/core/result.hpp"
#include "anisoflow/runtime/service_main.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/socket_security.hpp"

namespace anisoflow::reducer {

namespace cfg = ::anisoflow::config::v1;
namespace pb = ::anisoflow::stream::v1;

/// Where a worker's frames come from and where it reports them done. Single-threaded: the
/// receive stage owns it.
class FrameInput {
  public:
    FrameInput() = default;
    virtual ~FrameInput() = default;
    FrameInput(const FrameInput&) = delete;
    FrameInput& operator=(const FrameInput&) = delete;
    FrameInput(FrameInput&&) = delete;
    FrameInput& operator=(FrameInput&&) = delete;

    /// One message from ingest (RunStart or a frame) or its Rejection; nullopt after `timeout`.
    [[nodiscard]] virtual Result<std::optional<transport::DecodeResult>> receive(
        std::chrono::milliseconds timeout) = 0;
    /// REDUCED: the frame's ReducedFrame was handed to the reduced socket; REJECTED: no worker
    /// can reduce it; RECEIVED: analyze's receipt of the ReducedFrame, relayed.
    [[nodiscard]] virtual Result<void> ack(std::string_view run_id, std::uint64_t sequence,
                                           pb::AckStatus status) = 0;
    /// Bytes received from and sent to ingest so far (the bytes_*_total metrics); 0 if unknown.
    [[nodiscard]] virtual std::uint64_t bytes_received() const { return 0; }
    [[nodiscard]] virtual std::uint64_t bytes_sent() const { return 0; }
    /// Acks and credits ingest did not take in time, dropped so far (ingest gone); 0 if unknown.
    [[nodiscard]] virtual std::uint64_t control_dropped() const { return 0; }
};

/// The production input: a transport::WorkerLink on endpoints.frames_in, named `instance`,
/// announcing queue_capacity_frames credits.
[[nodiscard]] Result<std::unique_ptr<FrameInput>> open_worker_link(
    zmq::context_t& context, const cfg::ReduceConfig& config,
    const transport::SocketSecurity& security);

/// A RAW frame message's pixels where they lie in the message (no copy), when the payload has
/// the header's size and is aligned for its pixel type; nullopt otherwise (decode_pixels()).
[[nodiscard]] std::optional<FrameView> raw_view(const transport::FrameMessage& message);

/// The pixels of a frame message, decompressed (RAW, LZ4 plain or HDF5-framed, BSLZ4) and
/// checked against the header's shape and dtype. The exposure is the header's (0 = unknown).
[[nodiscard]] Result<Frame> decode_pixels(const transport::FrameMessage& message);

/// The service loop: runs until stop is requested on `context`.
[[nodiscard]] Result<void> run(const cfg::ReduceConfig& config, runtime::ServiceContext& context);

/// As run(), with the frames taken from `input` instead of a WorkerLink (tests).
[[nodiscard]] Result<void> run_with_input(const cfg::ReduceConfig& config,
                                          runtime::ServiceContext& context,
                                          zmq::context_t& zmq_context,
                                          const transport::SocketSecurity& security,
                                          std::unique_ptr<FrameInput> input);

}  // namespace anisoflow::reducer
