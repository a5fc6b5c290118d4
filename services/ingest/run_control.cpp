#include "run_control.hpp"

#include <algorithm>
#include <ctime>
#include <utility>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "anisoflow/core/clock.hpp"
#include "anisoflow/transport/experiment.hpp"
#include "anisoflow/transport/message.hpp"

namespace anisoflow::ingest {

namespace {

// Run ids become file names in the archive (docs/archive.md): no separators, no "..".
bool valid_run_id(std::string_view id) {
    constexpr std::size_t kMaxRunIdBytes = 128;
    if (id.empty() || id.size() > kMaxRunIdBytes || id.front() == '.') {
        return false;
    }
    return std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-' || c == ':';
    });
}

std::string default_run_id(std::int64_t now_unix_ns) {
    return fmt::format("run-{:%Y%m%dT%H%M%SZ}", utc_calendar(now_unix_ns));
}

std::string cut_note(const std::string& note) {
    return note.size() <= kMaxNoteBytes ? note : note.substr(0, kMaxNoteBytes);
}

// The problem with a requested state, or empty.
std::string state_problem(const pb::SetState& state) {
    switch (state.kind()) {
        case pb::FRAME_KIND_DATA:
            if (state.orientation() != pb::ORIENTATION_P &&
                state.orientation() != pb::ORIENTATION_N) {
                return "SetState.orientation: DATA frames need P or N";
            }
            return {};
        case pb::FRAME_KIND_DARK:
        case pb::FRAME_KIND_FLAT:
        case pb::FRAME_KIND_BACKGROUND:
            return {};
        default:
            return fmt::format("SetState.kind is {}: data, dark, flat or background",
                               static_cast<int>(state.kind()));
    }
}

}  // namespace

std::string_view to_string(Refusal refusal) {
    switch (refusal) {
        case Refusal::kNoRun:
            return "no_run";
        case Refusal::kNoAcquisition:
            return "no_acquisition";
        case Refusal::kNoState:
            return "no_state";
        case Refusal::kDuplicate:
            return "duplicate";
        case Refusal::kShapeMismatch:
            return "shape_mismatch";
    }
    return "unknown";
}

RunController::RunController(std::string source_version)
    : source_version_(std::move(source_version)) {}

RunController::Handled RunController::handle(const pb::RunControlRequest& request,
                                             std::int64_t now_unix_ns) {
    Handled handled;
    switch (request.action_case()) {
        case pb::RunControlRequest::kStart:
            handled.reply = start(request.start(), now_unix_ns, handled.effects);
            break;
        case pb::RunControlRequest::kNext:
            handled.reply = set_state(request.next(), now_unix_ns, handled.effects);
            break;
        case pb::RunControlRequest::kStop:
            handled.reply = stop(request.stop(), now_unix_ns, handled.effects);
            break;
        case pb::RunControlRequest::kStatus:
            handled.reply.set_ok(true);
            break;
        case pb::RunControlRequest::ACTION_NOT_SET:
            handled.reply.set_error("RunControlRequest.action is not set");
            break;
    }
    *handled.reply.mutable_status() = status();
    return handled;
}

pb::RunControlReply RunController::refuse(std::string error) const {
    pb::RunControlReply reply;
    reply.set_error(std::move(error));
    *reply.mutable_status() = status();
    return reply;
}

pb::RunStatus RunController::status() const {
    pb::RunStatus status;
    status.set_frames_refused(frames_refused_);
    if (!run_id_) {
        return status;
    }
    status.set_run_id(*run_id_);
    status.set_kind(kind_);
    status.set_orientation(orientation_);
    *status.mutable_frames_taken() = taken_;
    status.set_acquisition_open(series_.has_value());
    for (const pb::StateChange& change : history_) {
        *status.add_history() = change;
    }
    return status;
}

pb::RunControlReply RunController::start(const pb::StartRun& request, std::int64_t now_unix_ns,
                                         RunEffects& effects) {
    pb::RunControlReply reply;
    if (run_id_) {
        reply.set_error(fmt::format("StartRun: run {} is open; stop it first", *run_id_));
        return reply;
    }
    const std::string run_id =
        request.run_id().empty() ? default_run_id(now_unix_ns) : request.run_id();
    if (!valid_run_id(run_id)) {
        reply.set_error(fmt::format(
            "StartRun.run_id \"{}\": 1-128 letters, digits and . _ - : (not starting with .)",
            run_id));
        return reply;
    }
    if (const auto problems = transport::experiment_problems(request.config()); !problems.empty()) {
        reply.set_error(fmt::format("StartRun.config: {}", fmt::join(problems, "; ")));
        return reply;
    }
    if (request.has_initial_state()) {
        if (auto problem = state_problem(request.initial_state()); !problem.empty()) {
            reply.set_error("StartRun.initial_state: " + problem);
            return reply;
        }
    }
    pb::RunStart run_start;
    run_start.set_run_id(run_id);
    *run_start.mutable_config() = request.config();
    run_start.set_started_unix_ns(now_unix_ns);
    run_start.set_source_version(source_version_);
    effects.start = run_start;

    run_id_ = run_id;
    const pb::PoniGeometry& g = request.config().geometry();
    run_shape_ = FrameShape{g.detector_rows(), g.detector_cols()};
    kind_ = pb::FRAME_KIND_UNSPECIFIED;
    orientation_ = pb::ORIENTATION_UNSPECIFIED;
    next_sequence_ = 0;
    taken_.Clear();
    history_.clear();
    series_.reset();
    series_refused_ = false;
    images_seen_.clear();
    log(pb::STATE_CHANGE_TYPE_RUN_STARTED, request.config().composition(), now_unix_ns, effects);
    spdlog::info("run control: run started run={} composition={}", run_id,
                 request.config().composition());
    if (request.has_initial_state()) {
        (void)set_state(request.initial_state(), now_unix_ns, effects);
    }
    reply.set_ok(true);
    return reply;
}

pb::RunControlReply RunController::set_state(const pb::SetState& request, std::int64_t now_unix_ns,
                                             RunEffects& effects) {
    pb::RunControlReply reply;
    if (!run_id_) {
        reply.set_error("SetState: no run is open; start one first");
        return reply;
    }
    if (auto problem = state_problem(request); !problem.empty()) {
        reply.set_error(std::move(problem));
        return reply;
    }
    if (history_.size() + 2 >= kMaxStateChanges) {  // room kept for the series end and RUN_ENDED
        reply.set_error(
            fmt::format("SetState: the run log of {} holds {} entries, the most a "
                        "run keeps; stop the run and start a new one",
                        *run_id_, history_.size()));
        return reply;
    }
    kind_ = request.kind();
    orientation_ =
        kind_ == pb::FRAME_KIND_DATA ? request.orientation() : pb::ORIENTATION_UNSPECIFIED;
    log(pb::STATE_CHANGE_TYPE_STATE_SET, request.note(), now_unix_ns, effects);
    spdlog::info(
        "run control: state set run={} kind={} orientation={} from_sequence={} note=\"{}\"",
        *run_id_, transport::frame_kind_name(kind_), transport::orientation_name(orientation_),
        next_sequence_, cut_note(request.note()));
    reply.set_ok(true);
    return reply;
}

pb::RunControlReply RunController::stop(const pb::StopRun& request, std::int64_t now_unix_ns,
                                        RunEffects& effects) {
    pb::RunControlReply reply;
    if (!run_id_) {
        reply.set_error("StopRun: no run is open");
        return reply;
    }
    pb::RunEndReason reason = request.reason();
    if (reason == pb::RUN_END_REASON_UNSPECIFIED) {
        reason = pb::RUN_END_REASON_COMPLETED;
    }
    if (!pb::RunEndReason_IsValid(reason)) {
        reply.set_error(
            fmt::format("StopRun.reason is {}: completed or aborted", static_cast<int>(reason)));
        return reply;
    }
    end_run(reason, request.detail(), now_unix_ns, effects);
    reply.set_ok(true);
    return reply;
}

RunEffects RunController::abort(const std::string& detail, std::int64_t now_unix_ns) {
    RunEffects effects;
    if (run_id_) {
        end_run(pb::RUN_END_REASON_ABORTED, detail, now_unix_ns, effects);
    }
    return effects;
}

void RunController::end_run(pb::RunEndReason reason, std::string detail, std::int64_t now_unix_ns,
                            RunEffects& effects) {
    if (series_) {
        log(pb::STATE_CHANGE_TYPE_ACQUISITION_CLOSED,
            fmt::format("series {}: the run ended before the series", *series_), now_unix_ns,
            effects);
        series_.reset();
    }
    log(pb::STATE_CHANGE_TYPE_RUN_ENDED, detail, now_unix_ns, effects);
    spdlog::info(
        "run control: run ended run={} reason={} data_p={} data_n={} dark={} flat={} "
        "background={}",
        *run_id_, reason == pb::RUN_END_REASON_ABORTED ? "aborted" : "completed", taken_.data_p(),
        taken_.data_n(), taken_.dark(), taken_.flat(), taken_.background());
    effects.end = RunEffects::End{*run_id_, reason, std::move(detail), history_};
    run_id_.reset();
    kind_ = pb::FRAME_KIND_UNSPECIFIED;
    orientation_ = pb::ORIENTATION_UNSPECIFIED;
    history_.clear();
    images_seen_.clear();
}

void RunController::log(pb::StateChangeType type, const std::string& note, std::int64_t now_unix_ns,
                        RunEffects& effects) {
    pb::StateChange change;
    change.set_index(static_cast<std::uint32_t>(history_.size()));
    change.set_type(type);
    change.set_changed_unix_ns(now_unix_ns);
    change.set_kind(kind_);
    change.set_orientation(orientation_);
    change.set_next_sequence(next_sequence_);
    change.set_note(cut_note(note));
    history_.push_back(change);
    pb::RunEvent event;
    event.set_run_id(*run_id_);
    *event.mutable_change() = std::move(change);
    effects.events.push_back(std::move(event));
}

RunEffects RunController::open_acquisition(const std::string& series,
                                           std::optional<FrameShape> shape,
                                           std::int64_t now_unix_ns, Clock::time_point now) {
    RunEffects effects;
    if (!run_id_) {
        spdlog::warn(
            "run control: detector series {} started with no run open: its images are "
            "refused",
            series);
        return effects;
    }
    if (series_ && *series_ == series) {
        return effects;  // a repeated start message
    }
    if (series_) {
        effects.events =
            close_acquisition(*series_, "a new series started before its end", now_unix_ns).events;
    }
    series_ = series;
    images_seen_.clear();
    last_image_ = now;
    series_refused_ = shape && (shape->rows != run_shape_.rows || shape->cols != run_shape_.cols);
    if (series_refused_) {
        log(pb::STATE_CHANGE_TYPE_ACQUISITION_OPENED,
            fmt::format("series {}: refused, its {}x{} images are not the run geometry's {}x{}",
                        series, shape->rows, shape->cols, run_shape_.rows, run_shape_.cols),
            now_unix_ns, effects);
        spdlog::error("run control: series {} of {}x{} images refused: run {} expects {}x{}",
                      series, shape->rows, shape->cols, *run_id_, run_shape_.rows, run_shape_.cols);
        return effects;
    }
    log(pb::STATE_CHANGE_TYPE_ACQUISITION_OPENED, fmt::format("series {}", series), now_unix_ns,
        effects);
    return effects;
}

RunEffects RunController::close_acquisition(const std::string& series, const std::string& note,
                                            std::int64_t now_unix_ns) {
    RunEffects effects;
    if (!run_id_ || !series_ || *series_ != series) {
        return effects;
    }
    log(pb::STATE_CHANGE_TYPE_ACQUISITION_CLOSED,
        note.empty() ? fmt::format("series {}", series)
                     : fmt::format("series {}: {}", series, note),
        now_unix_ns, effects);
    series_.reset();
    series_refused_ = false;
    images_seen_.clear();
    return effects;
}

RunEffects RunController::close_silent_acquisition(std::chrono::milliseconds timeout,
                                                   std::int64_t now_unix_ns,
                                                   Clock::time_point now) {
    if (!series_ || now - last_image_ <= timeout) {
        return {};
    }
    spdlog::warn("run control: series {} silent for {} ms: closed as cut off; run {} stays open",
                 *series_, timeout.count(), run_id_.value_or(""));
    return close_acquisition(
        *series_, fmt::format("cut off: no message for {} ms", timeout.count()), now_unix_ns);
}

std::optional<Refusal> RunController::tag_image(pb::FrameHeader& header, const std::string& series,
                                                std::uint64_t image_number, Clock::time_point now) {
    if (!run_id_) {
        ++frames_refused_;
        return Refusal::kNoRun;
    }
    if (!series_ || *series_ != series) {
        ++frames_refused_;
        return Refusal::kNoAcquisition;
    }
    last_image_ = now;
    if (series_refused_) {
        ++frames_refused_;
        return Refusal::kShapeMismatch;
    }
    if (kind_ == pb::FRAME_KIND_UNSPECIFIED) {
        ++frames_refused_;
        return Refusal::kNoState;
    }
    if (!images_seen_.insert(image_number)) {
        ++frames_refused_;
        return Refusal::kDuplicate;
    }
    return tag_frame(header);
}

std::optional<Refusal> RunController::tag(pb::FrameHeader& header) {
    if (!run_id_) {
        ++frames_refused_;
        return Refusal::kNoRun;
    }
    if (kind_ == pb::FRAME_KIND_UNSPECIFIED) {
        ++frames_refused_;
        return Refusal::kNoState;
    }
    return tag_frame(header);
}

std::optional<Refusal> RunController::tag_frame(pb::FrameHeader& header) {
    if (header.rows() != run_shape_.rows || header.cols() != run_shape_.cols) {
        ++frames_refused_;
        return Refusal::kShapeMismatch;
    }
    header.set_run_id(*run_id_);
    header.set_sequence(next_sequence_++);
    header.set_kind(kind_);
    header.set_orientation(orientation_);
    transport::count_frame(taken_, header);
    return std::nullopt;
}

}  // namespace anisoflow::ingest
