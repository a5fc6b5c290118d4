#pragma once
// Run control (docs/run-control.md, docs/adr/0006-run-control.md): the experiment announces the
// run and says what the frames are; the detector only streams them. RunController is the state
// machine behind ingest's REP socket, free of sockets and threads: the source thread calls it for
// every request and every detector event, in arrival order, and queues the effects it returns,
// so every frame is tagged with the state in force when it arrived.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/core/frame.hpp"
#include "anisoflow/transport/seen_sequences.hpp"

namespace anisoflow::ingest {

namespace pb = ::anisoflow::stream::v1;

/// Longest operator note kept in the run log, bytes (longer ones are cut).
inline constexpr std::size_t kMaxNoteBytes = 256;
/// Entries of one run's log; a request that would add more is refused (RunEnd must stay small).
inline constexpr std::size_t kMaxStateChanges = 4096;

/// What the source thread queues after a request or a detector event, in this order: the run's
/// RunStart, its RunEvents, then its end.
struct RunEffects {
    struct End {
        std::string run_id;
        pb::RunEndReason reason = pb::RUN_END_REASON_COMPLETED;
        std::string detail;
        std::vector<pb::StateChange> history;  ///< the whole run log, RUN_ENDED last
    };
    std::optional<pb::RunStart> start;
    std::vector<pb::RunEvent> events;
    std::optional<End> end;
};

/// Why a frame was not tagged (the label of anisoflow_ingest_frames_rejected_total).
enum class Refusal {
    kNoRun,          ///< "no_run": no run is open
    kNoAcquisition,  ///< "no_acquisition": a detector image outside an open series
    kNoState,        ///< "no_state": the run has no kind yet (no SetState since StartRun)
    kDuplicate,      ///< "duplicate": an image number the series already delivered
    kShapeMismatch,  ///< "shape_mismatch": the series' shape is not the run geometry's
};
std::string_view to_string(Refusal refusal);

class RunController {
  public:
    using Clock = std::chrono::steady_clock;

    struct Handled {
        pb::RunControlReply reply;
        RunEffects effects;
    };

    /// `source_version` goes into each RunStart.
    explicit RunController(std::string source_version);

    /// One request from the control socket. A refused request changes nothing and says why in
    /// the reply, naming the field at fault.
    [[nodiscard]] Handled handle(const pb::RunControlRequest& request, std::int64_t now_unix_ns);

    [[nodiscard]] pb::RunStatus status() const;
    [[nodiscard]] const std::optional<std::string>& open_run() const { return run_id_; }

    /// A detector series began: an acquisition inside the open run. A series of another shape
    /// than the run geometry's is refused (its images are then refused as shape_mismatch; each
    /// image's own shape is checked too, for series that do not announce one); a series that
    /// starts while another is open closes that one first.
    [[nodiscard]] RunEffects open_acquisition(const std::string& series,
                                              std::optional<FrameShape> shape,
                                              std::int64_t now_unix_ns, Clock::time_point now);
    /// The series ended (`note` says how, e.g. "no message for 30000 ms").
    [[nodiscard]] RunEffects close_acquisition(const std::string& series, const std::string& note,
                                               std::int64_t now_unix_ns);
    /// Closes an acquisition silent for longer than `timeout`; the run stays open.
    [[nodiscard]] RunEffects close_silent_acquisition(std::chrono::milliseconds timeout,
                                                      std::int64_t now_unix_ns,
                                                      Clock::time_point now);

    /// Tags one detector image of `series` with the run, the next sequence and the state in
    /// force, or says why not.
    [[nodiscard]] std::optional<Refusal> tag_image(pb::FrameHeader& header,
                                                   const std::string& series,
                                                   std::uint64_t image_number,
                                                   Clock::time_point now);
    /// Tags one frame of a source without series (frame files).
    [[nodiscard]] std::optional<Refusal> tag(pb::FrameHeader& header);

    /// Ends the open run as ABORTED (ingest is stopping); nothing when no run is open.
    [[nodiscard]] RunEffects abort(const std::string& detail, std::int64_t now_unix_ns);

    /// A request that could not be decoded, for the reply.
    [[nodiscard]] pb::RunControlReply refuse(std::string error) const;

  private:
    pb::RunControlReply start(const pb::StartRun& request, std::int64_t now_unix_ns,
                              RunEffects& effects);
    pb::RunControlReply set_state(const pb::SetState& request, std::int64_t now_unix_ns,
                                  RunEffects& effects);
    pb::RunControlReply stop(const pb::StopRun& request, std::int64_t now_unix_ns,
                             RunEffects& effects);
    // Appends a change to the log (and to `effects` as a RunEvent).
    void log(pb::StateChangeType type, const std::string& note, std::int64_t now_unix_ns,
             RunEffects& effects);
    void end_run(pb::RunEndReason reason, std::string detail, std::int64_t now_unix_ns,
                 RunEffects& effects);
    [[nodiscard]] std::optional<Refusal> tag_frame(pb::FrameHeader& header);

    std::string source_version_;
    std::optional<std::string> run_id_;
    FrameShape run_shape_;
    pb::FrameKind kind_ = pb::FRAME_KIND_UNSPECIFIED;
    pb::Orientation orientation_ = pb::ORIENTATION_UNSPECIFIED;
    std::uint64_t next_sequence_ = 0;
    pb::FrameCounts taken_;
    std::vector<pb::StateChange> history_;
    std::uint64_t frames_refused_ = 0;
    // The acquisition (detector series) open inside the run.
    std::optional<std::string> series_;
    bool series_refused_ = false;  // shape mismatch: its images are refused
    transport::SeenSequences images_seen_;
    Clock::time_point last_image_;
};

}  // namespace anisoflow::ingest
