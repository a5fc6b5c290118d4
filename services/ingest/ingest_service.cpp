#include "ingest_service.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <utility>
#include <variant>
#include <vector>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "anisoflow/state/v1/state.pb.h"
#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/core/clock.hpp"
#include "anisoflow/dectris/decode.hpp"
#include "anisoflow/io/watched_folder.hpp"
#include "anisoflow/runtime/bounded_queue.hpp"
#include "anisoflow/runtime/config_loader.hpp"
#include "anisoflow/runtime/stage.hpp"
#include "anisoflow/transport/archive_receipts.hpp"
#include "anisoflow/transport/dispatch.hpp"
#include "anisoflow/transport/experiment.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/rejection_log.hpp"
#include "anisoflow/transport/seen_sequences.hpp"
#include "anisoflow/transport/socket.hpp"
#include "anisoflow/transport/socket_security.hpp"

#include "open_run_store.hpp"
#include "run_control.hpp"

namespace anisoflow::ingest {

namespace {

namespace pb = ::anisoflow::stream::v1;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kSourcePoll{50};    // how often the source thread checks stop and timeouts
constexpr milliseconds kDispatchPoll{20};  // longest wait of the dispatch loop for worker messages
constexpr milliseconds kControlLinger{1000};  // the last RunEnd still goes out after stop

bool needs_credit(pb::FrameKind kind) {
    return kind != pb::FRAME_KIND_DARK && kind != pb::FRAME_KIND_FLAT;
}

// ---- what the source thread hands to the dispatch thread ---------------------------------------

struct StartEvent {
    pb::RunStart start;
    // Set when a restarted ingest resumes a run a killed one left open: what was sent before.
    std::optional<state::v1::IngestOpenRun> resumed;
};
struct FrameEvent {
    pb::FrameHeader header;
    zmq::message_t payload;
    Clock::time_point received_at;  // when the source handed it over (dispatch latency)
};
struct EndEvent {
    std::string run_id;
    pb::RunEndReason reason = pb::RUN_END_REASON_COMPLETED;
    std::string detail;
    std::vector<pb::StateChange> history;  // under run control: the run log, for RunEnd
    std::uint64_t source_frames = 0;       // frames of the run by the source's own count; 0: none
};
// Under run control: a change of the run's state, published where it falls among the frames.
struct RunEventEvent {
    pb::RunEvent event;
};
using SourceEvent = std::variant<StartEvent, FrameEvent, EndEvent, RunEventEvent>;

// Between the two threads; full, it holds the source back (backpressure, never a drop).
using EventQueue = runtime::BoundedQueue<SourceEvent>;

struct Metrics {
    metrics::CounterFamily control_requests;  // run control requests, by action
    metrics::CounterFamily control_refused;   // of those, the refused ones
    metrics::Counter frames_received;
    metrics::Counter frames_dispatched;
    metrics::Counter frames_redispatched;
    metrics::Counter frames_acked;
    metrics::Counter frames_confirmed;
    metrics::Counter frames_out_of_order;
    metrics::CounterFamily frames_rejected;
    metrics::CounterFamily runs_ended;
    metrics::Gauge queue_depth;
    metrics::Gauge workers_alive;
    metrics::Gauge frames_in_flight;
    metrics::Gauge frames_unconfirmed;
    metrics::Counter bytes_received;
    metrics::Counter bytes_sent;
    metrics::Histogram dispatch_seconds;
    metrics::Counter raw_frames_sent;
    metrics::Counter runs_resumed;
    metrics::Gauge raw_unreceipted;
    metrics::Counter raw_resent;
    metrics::Counter archive_sessions;
};

// Bounds of the latency histograms, seconds: 1 ms to 60 s (a frame may wait for credit).
const std::vector<double> kLatencySecondsBuckets = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2,
                                                    0.5,   1.0,   2.0,   5.0,  10.0, 30.0, 60.0};

Result<Metrics> register_metrics(metrics::Registry& registry) {
    auto received = registry.counter("anisoflow_ingest_frames_received_total",
                                     "frames received from the source");
    auto dispatched = registry.counter("anisoflow_ingest_frames_dispatched_total",
                                       "frames handed to a reduce worker the first time");
    auto redispatched = registry.counter("anisoflow_ingest_frames_redispatched_total",
                                         "frames sent again after their worker was lost");
    auto acked = registry.counter("anisoflow_ingest_frames_acked_total",
                                  "frames acknowledged by a reduce worker (credit returned)");
    auto confirmed = registry.counter("anisoflow_ingest_frames_confirmed_total",
                                      "frames analyze confirmed it has: done at ingest");
    auto out_of_order = registry.counter("anisoflow_ingest_frames_out_of_order_total",
                                         "frames whose sequence was not the next expected");
    auto rejected = registry.counter_family(
        "anisoflow_ingest_frames_rejected_total", "messages from the source dropped, by reason",
        "reason",
        {"duplicate", "no_run", "malformed", "unexpected_message", "dispatch", "no_state",
         "no_acquisition", "shape_mismatch", "bad_file"});
    auto control_requests =
        registry.counter_family("anisoflow_ingest_run_control_requests_total",
                                "run control requests served (docs/run-control.md), by action",
                                "action", {"start", "next", "stop", "status", "malformed"});
    auto control_refused =
        registry.counter_family("anisoflow_ingest_run_control_refused_total",
                                "run control requests refused (the reply says why), by action",
                                "action", {"start", "next", "stop", "status", "malformed"});
    auto ended =
        registry.counter_family("anisoflow_ingest_runs_ended_total", "runs ended, by RunEnd reason",
                                "reason", {"completed", "aborted"});
    auto depth = registry.gauge("anisoflow_ingest_queue_depth_frames",
                                "events queued between the source and the dispatcher");
    auto alive = registry.gauge("anisoflow_ingest_workers_alive",
                                "reduce workers with a recent "
                                "credit heartbeat");
    auto in_flight =
        registry.gauge("anisoflow_ingest_frames_in_flight",
                       "data frames waiting for a worker or sent and not yet confirmed by analyze");
    auto unconfirmed = registry.gauge("anisoflow_ingest_frames_unconfirmed",
                                      "data frames reduced whose receipt by analyze is pending");
    auto bytes_received = registry.counter(
        "anisoflow_ingest_bytes_received_total",
        "bytes received: the source's messages and the reduce workers' credits and acks");
    auto bytes_sent = registry.counter(
        "anisoflow_ingest_bytes_sent_total",
        "bytes sent: frames (and re-sends) to the reduce workers, the control messages and the "
        "raw frame feed");
    auto dispatch_seconds = registry.histogram(
        "anisoflow_ingest_dispatch_latency_seconds",
        "from a frame's arrival from the source to its hand-over to the dispatcher (credit "
        "granted, or queued there while no worker is alive)",
        kLatencySecondsBuckets);
    auto raw_sent = registry.counter("anisoflow_ingest_raw_frames_sent_total",
                                     "frames handed to archive on the raw frame feed");
    auto resumed = registry.counter(
        "anisoflow_ingest_runs_resumed_total",
        "runs a killed ingest left open in state_dir that this one resumed after its restart");
    auto raw_unreceipted = registry.gauge(
        "anisoflow_ingest_raw_unreceipted_frames",
        "raw frames sent to archive that no archive receipt covers yet, kept to send again");
    auto raw_resent = registry.counter(
        "anisoflow_ingest_raw_resent_total",
        "raw feed messages sent again to a restarted archive (receipts from a new session)");
    auto archive_sessions = registry.counter(
        "anisoflow_ingest_archive_sessions_total",
        "archive processes seen in the receipts (the first, then one per restart of archive)");
    for (const auto* error : {raw_sent ? nullptr : &raw_sent.error(),
                              resumed ? nullptr : &resumed.error(),
                              archive_sessions ? nullptr : &archive_sessions.error(),
                              raw_unreceipted ? nullptr : &raw_unreceipted.error(),
                              raw_resent ? nullptr : &raw_resent.error(),
                              bytes_received ? nullptr : &bytes_received.error(),
                              bytes_sent ? nullptr : &bytes_sent.error(),
                              dispatch_seconds ? nullptr : &dispatch_seconds.error(),
                              received ? nullptr : &received.error(),
                              dispatched ? nullptr : &dispatched.error(),
                              redispatched ? nullptr : &redispatched.error(),
                              acked ? nullptr : &acked.error(),
                              confirmed ? nullptr : &confirmed.error(),
                              unconfirmed ? nullptr : &unconfirmed.error(),
                              out_of_order ? nullptr : &out_of_order.error(),
                              rejected ? nullptr : &rejected.error(),
                              ended ? nullptr : &ended.error(),
                              depth ? nullptr : &depth.error(),
                              alive ? nullptr : &alive.error(),
                              in_flight ? nullptr : &in_flight.error()}) {
        if (error != nullptr) {
            return tl::unexpected(*error);
        }
    }
    if (!control_requests || !control_refused) {
        return tl::unexpected(control_requests ? control_refused.error()
                                               : control_requests.error());
    }
    return Metrics{*control_requests, *control_refused, *received,       *dispatched,
                   *redispatched,     *acked,           *confirmed,      *out_of_order,
                   *rejected,         *ended,           *depth,          *alive,
                   *in_flight,        *unconfirmed,     *bytes_received, *bytes_sent,
                   *dispatch_seconds, *raw_sent,        *resumed,        *raw_unreceipted,
                   *raw_resent,       *archive_sessions};
}

// ---- the source thread: runs opened, numbered, checked and closed
// --------------------------------

// Tracks the run open at the source: duplicates and out-of-order sequences, silence, aborts.
// `timeout` zero: a silent run stays open (run control ends runs, not silence).
class RunTracker {
  public:
    RunTracker(EventQueue& queue, Metrics& metrics, milliseconds timeout)
        : queue_(queue), metrics_(metrics), timeout_(timeout) {}

    // Queues what run control decided (a RunStart, RunEvents, an end), in that order.
    bool apply(RunEffects&& effects, const runtime::StopToken& stop) {
        if (effects.start && !start(std::move(*effects.start), stop)) {
            return false;
        }
        for (pb::RunEvent& event : effects.events) {
            if (run_id_ && *run_id_ == event.run_id() &&
                !queue_.push(RunEventEvent{std::move(event)}, stop)) {
                return false;
            }
        }
        if (effects.end && run_id_ && *run_id_ == effects.end->run_id) {
            return end(effects.end->reason, std::move(effects.end->detail), stop,
                       std::move(effects.end->history));
        }
        return true;
    }

    [[nodiscard]] const std::optional<std::string>& open_run() const { return run_id_; }

    // Takes up the run a killed ingest left open (state_dir): its later frames are the open
    // run's, not refused as of no run. Frames the killed one took are not known here, so a
    // repeat of one is not caught as a duplicate; sequences already sent count as expected.
    bool resume(state::v1::IngestOpenRun open, const runtime::StopToken& stop) {
        run_id_ = open.start().run_id();
        seen_.clear();
        next_expected_ = open.sequences_end();
        last_message_ = Clock::now();
        spdlog::warn(
            "run resumed run={} resumes={} data_p={} data_n={} sequences_end={}: a previous "
            "ingest left it open; frames it had taken but not sent are named missing at the end",
            *run_id_, open.resumes() + 1, open.frames_sent().data_p(), open.frames_sent().data_n(),
            open.sequences_end());
        pb::RunStart start = open.start();
        return queue_.push(StartEvent{std::move(start), std::move(open)}, stop);
    }

    bool start(pb::RunStart start, const runtime::StopToken& stop) {
        if (run_id_ && *run_id_ == start.run_id()) {
            last_message_ = Clock::now();
            return true;  // a repeated RunStart changes nothing
        }
        if (run_id_ && !end(pb::RUN_END_REASON_ABORTED, "a new run started before its end", stop)) {
            return false;
        }
        if (start.started_unix_ns() == 0) {
            start.set_started_unix_ns(unix_now_ns());
        }
        run_id_ = start.run_id();
        seen_.clear();
        next_expected_ = 0;
        last_message_ = Clock::now();
        spdlog::info("run started run={}", *run_id_);
        return queue_.push(StartEvent{std::move(start), std::nullopt}, stop);
    }

    // Checks and queues one frame of the open run; false only when stop interrupted the push.
    bool frame(pb::FrameHeader header, zmq::message_t payload, const runtime::StopToken& stop) {
        metrics_.frames_received.increment();
        if (!run_id_ || header.run_id() != *run_id_) {
            metrics_.frames_rejected.with("no_run").increment();
            return true;
        }
        last_message_ = Clock::now();
        const std::uint64_t sequence = header.sequence();
        if (!seen_.insert(sequence)) {
            metrics_.frames_rejected.with("duplicate").increment();
            return true;
        }
        if (sequence != next_expected_) {
            metrics_.frames_out_of_order.increment();
        }
        next_expected_ = std::max(next_expected_, sequence + 1);
        return queue_.push(FrameEvent{std::move(header), std::move(payload), Clock::now()}, stop);
    }

    bool end(pb::RunEndReason reason, std::string detail, const runtime::StopToken& stop,
             std::vector<pb::StateChange> history = {}, std::uint64_t source_frames = 0) {
        if (!run_id_) {
            return true;
        }
        EndEvent event{*run_id_, reason, std::move(detail), std::move(history), source_frames};
        if (reason == pb::RUN_END_REASON_ABORTED) {
            spdlog::warn("run aborted run={} detail=\"{}\"", event.run_id, event.detail);
        }
        run_id_.reset();
        seen_.clear();
        return queue_.push(std::move(event), stop);
    }

    // Closes a run silent for longer than the timeout.
    bool check_timeout(const runtime::StopToken& stop) {
        if (timeout_ > milliseconds::zero() && run_id_ && Clock::now() - last_message_ > timeout_) {
            return end(pb::RUN_END_REASON_ABORTED,
                       fmt::format("no message for {} ms", timeout_.count()), stop);
        }
        return true;
    }

  private:
    EventQueue& queue_;
    Metrics& metrics_;
    milliseconds timeout_;
    std::optional<std::string> run_id_;
    transport::SeenSequences seen_;  // for duplicates; holds ranges, not every sequence
    std::uint64_t next_expected_ = 0;
    Clock::time_point last_message_;
};

// The anisoflow stream: RunStart, FrameHeader + pixels, RunEnd as an anisoflow sender writes them.
Result<void> read_anisoflow_stream(zmq::socket_t& socket, RunTracker& tracker, Metrics& metrics,
                                   const runtime::StopToken& stop) {
    transport::RejectionLog rejections("source");
    while (!stop.stop_requested()) {
        auto received = transport::receive(socket, kSourcePoll);
        if (!received) {
            return tl::unexpected(received.error());
        }
        if (!*received) {
            if (!tracker.check_timeout(stop)) {
                return {};
            }
            continue;
        }
        metrics.bytes_received.increment(static_cast<double>(transport::size_of(**received)));
        auto decoded = transport::decode(std::move(**received));
        if (!decoded) {
            metrics.frames_rejected.with("malformed").increment();
            rejections.log(decoded.error());
            continue;
        }
        bool pushed = true;
        if (auto* start = std::get_if<transport::RunStartMessage>(&*decoded)) {
            pushed = tracker.start(std::move(start->start), stop);
        } else if (auto* frame = std::get_if<transport::FrameMessage>(&*decoded)) {
            pushed = tracker.frame(std::move(frame->header), std::move(frame->payload), stop);
        } else if (auto* end = std::get_if<transport::RunEndMessage>(&*decoded)) {
            if (tracker.open_run() && *tracker.open_run() == end->end.run_id()) {
                // The sender counts what it sent: frames a killed ingest took with it are then
                // known to the one that ends the run, even with no later frame to show them.
                pushed = tracker.end(end->end.reason(), end->end.detail(), stop, {},
                                     transport::total_frames(end->end.frames_sent()));
            } else {
                metrics.frames_rejected.with("no_run").increment();
            }
        } else {
            metrics.frames_rejected.with("unexpected_message").increment();
        }
        if (!pushed) {
            return {};
        }
    }
    return {};
}

pb::Encoding to_encoding(dectris::Encoding encoding) {
    switch (encoding) {
        case dectris::Encoding::kRaw:
            return pb::ENCODING_RAW;
        case dectris::Encoding::kLz4Block:
            return pb::ENCODING_LZ4;
        case dectris::Encoding::kLz4Hdf5:
            return pb::ENCODING_LZ4_HDF5;
        case dectris::Encoding::kBslz4:
            return pb::ENCODING_BSLZ4;
    }
    return pb::ENCODING_UNSPECIFIED;
}

// The series a DECTRIS image or end belongs to, as run control names it.
std::string series_name(const std::string& unique_id, std::uint64_t series_id) {
    return unique_id.empty() ? fmt::format("series-{}", series_id) : unique_id;
}

// The run of a DECTRIS series: the configured ExperimentConfig, its geometry from the detector
// unless a calibrated one is configured, and the frames the series will hold.
pb::RunStart dectris_run_start(const cfg::DectrisRun& run, const dectris::SeriesStart& start) {
    pb::RunStart out;
    out.set_run_id(run.run_id_prefix() + series_name(start.series_unique_id, start.series_id));
    out.set_started_unix_ns(unix_now_ns());
    out.set_source_version(std::string(metrics::build_version()));
    pb::ExperimentConfig& config = *out.mutable_config();
    config = run.experiment();
    if (start.config) {
        const dectris::DetectorConfig& detector = *start.config;
        pb::PoniGeometry& geometry = *config.mutable_geometry();
        if (geometry.distance_m() == 0.0) {
            constexpr double kMetresPerAngstrom = 1e-10;
            geometry.set_distance_m(detector.detector_distance_m);
            geometry.set_wavelength_m(detector.incident_wavelength_angstrom * kMetresPerAngstrom);
            geometry.set_pixel1_m(detector.y_pixel_size_m);
            geometry.set_pixel2_m(detector.x_pixel_size_m);
            geometry.set_poni1_m(detector.beam_center_y_px * detector.y_pixel_size_m);
            geometry.set_poni2_m(detector.beam_center_x_px * detector.x_pixel_size_m);
            geometry.set_detector_rows(static_cast<std::uint32_t>(detector.shape.height_px));
            geometry.set_detector_cols(static_cast<std::uint32_t>(detector.shape.width_px));
            geometry.set_detector_type(
                detector.detector_description.empty() ? "Detector" : detector.detector_description);
        }
        const std::uint64_t images = detector.number_of_images;
        const std::uint64_t darks = std::min<std::uint64_t>(run.dark_images(), images);
        const std::uint64_t flats = std::min<std::uint64_t>(run.flat_images(), images - darks);
        const std::uint64_t data = images - darks - flats;
        const std::uint64_t p =
            run.data_p_images() == 0 ? data : std::min<std::uint64_t>(run.data_p_images(), data);
        pb::FrameCounts& expected = *config.mutable_frames_expected();
        expected.set_dark(darks);
        expected.set_flat(flats);
        expected.set_data_p(p);
        expected.set_data_n(data - p);
    }
    return out;
}

// What a DECTRIS image says of its pixels: encoding, type, shape, exposure.
pb::FrameHeader dectris_frame_header(const dectris::Image& image,
                                     const dectris::ChannelData& channel, double count_time_s) {
    pb::FrameHeader header;
    header.set_acquired_unix_ns(unix_now_ns());
    const double real_time_s = std::chrono::duration<double>(image.timing.real_time).count();
    header.set_exposure_s(real_time_s > 0.0 ? real_time_s : count_time_s);
    header.set_encoding(to_encoding(channel.encoding));
    header.set_dtype(transport::to_pixel_dtype(channel.pixel_type));
    header.set_rows(static_cast<std::uint32_t>(channel.shape.height_px));
    header.set_cols(static_cast<std::uint32_t>(channel.shape.width_px));
    header.set_uncompressed_size_bytes(channel.uncompressed_size_bytes);
    return header;
}

// Without run control: the image's place in the series says what it is (source.dectris_run_file).
void label_by_position(const cfg::DectrisRun& run, const std::string& run_id,
                       std::uint64_t image_number, pb::FrameHeader& header) {
    header.set_run_id(run_id);
    header.set_sequence(image_number);
    const std::uint64_t n = image_number;
    if (n < run.dark_images()) {
        header.set_kind(pb::FRAME_KIND_DARK);
    } else if (n < std::uint64_t{run.dark_images()} + run.flat_images()) {
        header.set_kind(pb::FRAME_KIND_FLAT);
    } else {
        const std::uint64_t data_index = n - run.dark_images() - run.flat_images();
        header.set_kind(pb::FRAME_KIND_DATA);
        header.set_orientation(run.data_p_images() == 0 || data_index < run.data_p_images()
                                   ? pb::ORIENTATION_P
                                   : pb::ORIENTATION_N);
    }
}

// Run control's REP socket, served by the source thread between source messages so that every
// state change falls where it belongs among the frames (docs/run-control.md).
class ControlDesk {
  public:
    ControlDesk(zmq::socket_t& rep, RunController& controller, RunTracker& tracker,
                Metrics& metrics)
        : rep_(rep), controller_(controller), tracker_(tracker), metrics_(metrics) {}

    RunController& controller() { return controller_; }

    // Waits up to kSourcePoll for a source message, serving run control meanwhile; an empty
    // optional when none came.
    Result<std::optional<transport::Multipart>> receive(zmq::socket_t& source,
                                                        const runtime::StopToken& stop) {
        std::array<zmq::pollitem_t, 2> items = {zmq::pollitem_t{source.handle(), 0, ZMQ_POLLIN, 0},
                                                zmq::pollitem_t{rep_.handle(), 0, ZMQ_POLLIN, 0}};
        try {
            zmq::poll(items.data(), items.size(), kSourcePoll);
        } catch (const zmq::error_t& error) {
            if (error.num() != EINTR) {
                return fail(ErrorCode::kIo, "poll: {}", error.what());
            }
            return std::optional<transport::Multipart>{};
        }
        if ((items[1].revents & ZMQ_POLLIN) != 0) {
            serve(stop);
        }
        if ((items[0].revents & ZMQ_POLLIN) == 0) {
            return std::optional<transport::Multipart>{};
        }
        return transport::receive(source, milliseconds{0});
    }

    // Waits up to `timeout` for run control requests and serves them (a source without a
    // socket: the watched folder).
    Result<void> serve_for(milliseconds timeout, const runtime::StopToken& stop) {
        zmq::pollitem_t item{rep_.handle(), 0, ZMQ_POLLIN, 0};
        try {
            zmq::poll(&item, 1, timeout);
        } catch (const zmq::error_t& error) {
            if (error.num() != EINTR) {
                return fail(ErrorCode::kIo, "poll: {}", error.what());
            }
            return {};
        }
        if ((item.revents & ZMQ_POLLIN) != 0) {
            serve(stop);
        }
        return {};
    }

    bool apply(RunEffects&& effects, const runtime::StopToken& stop) {
        return tracker_.apply(std::move(effects), stop);
    }

  private:
    // Every request waiting, one reply each (REP: strictly request, reply).
    void serve(const runtime::StopToken& stop) {
        while (!stop.stop_requested()) {
            auto received = transport::receive(rep_, milliseconds{0});
            if (!received || !*received) {
                if (!received) {
                    spdlog::warn("run control receive failed error=\"{}\"",
                                 received.error().message);
                }
                return;
            }
            metrics_.bytes_received.increment(static_cast<double>(transport::size_of(**received)));
            pb::RunControlReply reply;
            std::string_view action = "malformed";
            auto decoded = transport::decode(std::move(**received));
            auto* request =
                decoded ? std::get_if<transport::RunControlRequestMessage>(&*decoded) : nullptr;
            if (request == nullptr) {
                reply = controller_.refuse(
                    decoded ? fmt::format("expected a RunControlRequest, got a {}",
                                          transport::message_type_name(*decoded))
                            : decoded.error().error.message);
            } else {
                action = action_name(request->request);
                RunController::Handled handled =
                    controller_.handle(request->request, unix_now_ns());
                reply = std::move(handled.reply);
                (void)apply(std::move(handled.effects), stop);
            }
            metrics_.control_requests.with(action).increment();
            if (!reply.ok()) {
                metrics_.control_refused.with(action).increment();
                spdlog::warn("run control request refused action={} error=\"{}\"", action,
                             reply.error());
            }
            auto encoded = transport::encode_control(reply);
            if (!encoded) {  // the status outgrew an envelope: say so rather than stay silent
                encoded = transport::encode_control(controller_.refuse(encoded.error().message));
            }
            if (!encoded) {
                spdlog::error("run control reply not encoded error=\"{}\"",
                              encoded.error().message);
                return;  // a REP that does not reply is stuck: cannot happen with the above
            }
            const std::uint64_t bytes = transport::size_of(*encoded);
            if (auto sent = transport::try_send(rep_, *encoded); sent && *sent) {
                metrics_.bytes_sent.increment(static_cast<double>(bytes));
            } else {
                spdlog::warn("run control reply not sent");
            }
        }
    }

    static std::string_view action_name(const pb::RunControlRequest& request) {
        switch (request.action_case()) {
            case pb::RunControlRequest::kStart:
                return "start";
            case pb::RunControlRequest::kNext:
                return "next";
            case pb::RunControlRequest::kStop:
                return "stop";
            case pb::RunControlRequest::kStatus:
                return "status";
            default:
                return "malformed";
        }
    }

    zmq::socket_t& rep_;
    RunController& controller_;
    RunTracker& tracker_;
    Metrics& metrics_;
};

// DECTRIS Stream v1 (JSON multipart) or v2 (CBOR). Without run control one series is one run,
// its images labelled by position; with it (`desk`) a series is an acquisition inside the run
// that run control opened, and its images get the state in force.
Result<void> read_dectris_stream(zmq::socket_t& socket, const cfg::IngestSource& source,
                                 const cfg::DectrisRun& run, RunTracker& tracker, Metrics& metrics,
                                 ControlDesk* desk, const runtime::StopToken& stop) {
    const bool v1 = source.dectris_protocol() == cfg::DECTRIS_PROTOCOL_STREAM_V1;
    const milliseconds series_timeout(source.series_timeout_ms());
    // A plain pair rather than std::optional: GCC 12 warns maybe-uninitialized on the compare.
    bool in_series = false;
    std::uint64_t series_id = 0;
    std::string series;
    double count_time_s = 0.0;
    transport::RejectionLog rejections("dectris");
    while (!stop.stop_requested()) {
        auto received =
            desk != nullptr ? desk->receive(socket, stop) : transport::receive(socket, kSourcePoll);
        if (!received) {
            return tl::unexpected(received.error());
        }
        if (!*received) {
            const bool pushed = desk != nullptr
                                    ? desk->apply(desk->controller().close_silent_acquisition(
                                                      series_timeout, unix_now_ns(), Clock::now()),
                                                  stop)
                                    : tracker.check_timeout(stop);
            if (!pushed) {
                return {};
            }
            continue;
        }
        metrics.bytes_received.increment(static_cast<double>(transport::size_of(**received)));
        transport::Multipart& parts = **received;
        std::vector<dectris::ByteSpan> spans;
        spans.reserve(parts.size());
        for (const auto& part : parts) {
            spans.push_back(transport::bytes_of(part));
        }
        auto decoded =
            v1 ? dectris::decode_v1(spans)
               : (spans.size() == 1
                      ? dectris::decode_v2(spans.front())
                      : Result<dectris::Message>(
                            fail(ErrorCode::kCorrupt,
                                 "stream v2: {} parts, a message is one CBOR part", spans.size())));
        if (!decoded) {
            metrics.frames_rejected.with("malformed").increment();
            rejections.log("malformed", decoded.error().message);
            continue;
        }
        bool pushed = true;
        if (auto* start = std::get_if<dectris::SeriesStart>(&*decoded)) {
            in_series = true;
            series_id = start->series_id;
            series = series_name(start->series_unique_id, start->series_id);
            count_time_s = start->config ? start->config->count_time_s : 0.0;
            if (desk != nullptr) {
                std::optional<FrameShape> shape;
                if (start->config) {
                    shape =
                        FrameShape{start->config->shape.height_px, start->config->shape.width_px};
                }
                pushed = desk->apply(
                    desk->controller().open_acquisition(series, shape, unix_now_ns(), Clock::now()),
                    stop);
            } else {
                pushed = tracker.start(dectris_run_start(run, *start), stop);
            }
        } else if (auto* image = std::get_if<dectris::Image>(&*decoded)) {
            if (!in_series || image->series_id != series_id || image->channels.empty() ||
                (desk == nullptr && !tracker.open_run())) {
                metrics.frames_received.increment();
                metrics.frames_rejected.with(desk != nullptr ? "no_acquisition" : "no_run")
                    .increment();
                continue;
            }
            // The first channel (threshold) is the frame; payload bytes travel as they came.
            dectris::ChannelData& channel = image->channels.front();
            pb::FrameHeader header = dectris_frame_header(*image, channel, count_time_s);
            if (desk != nullptr) {
                if (auto refused = desk->controller().tag_image(header, series, image->image_number,
                                                                Clock::now())) {
                    metrics.frames_received.increment();
                    metrics.frames_rejected.with(to_string(*refused)).increment();
                    continue;
                }
            } else {
                label_by_position(run, *tracker.open_run(), image->image_number, header);
            }
            pushed = tracker.frame(std::move(header),
                                   transport::make_payload(std::move(channel.payload)), stop);
        } else if (auto* end = std::get_if<dectris::SeriesEnd>(&*decoded)) {
            if (desk != nullptr) {
                if (in_series && end->series_id == series_id) {
                    pushed = desk->apply(
                        desk->controller().close_acquisition(series, "", unix_now_ns()), stop);
                    in_series = false;
                }
            } else if (tracker.open_run() && in_series && end->series_id == series_id) {
                pushed = tracker.end(pb::RUN_END_REASON_COMPLETED, "", stop);
                in_series = false;
            } else {
                metrics.frames_rejected.with("no_run").increment();
            }
        }
        if (!pushed) {
            return {};
        }
    }
    return {};
}

// A folder the detector writes files into (docs/watched-folder.md): each frame of each new file,
// read as it settles, gets the state run control has in force.
Result<void> read_watched_folder(io::WatchedFolder& folder, ControlDesk& desk, RunTracker& tracker,
                                 Metrics& metrics, const runtime::StopToken& stop) {
    bool busy = false;  // the last poll returned frames: more may be ready at once
    Clock::time_point next_warning;
    while (!stop.stop_requested()) {
        if (auto served = desk.serve_for(busy ? milliseconds::zero() : kSourcePoll, stop);
            !served) {
            return served;
        }
        auto polled = folder.poll();
        if (!polled) {
            busy = false;
            if (Clock::now() >= next_warning) {  // the directory went away: say so, go on
                spdlog::warn("watched folder error=\"{}\"", polled.error().message);
                next_warning = Clock::now() + std::chrono::seconds(10);
            }
            continue;
        }
        busy = !polled->empty();
        for (io::WatchedFrame& watched : *polled) {
            metrics.frames_received.increment();
            if (!watched.frame) {
                metrics.frames_rejected.with("bad_file").increment();
                spdlog::error("frame file skipped error=\"{}\"", watched.frame.error().message);
                continue;
            }
            Frame& frame = *watched.frame;
            pb::FrameHeader header;
            header.set_acquired_unix_ns(unix_now_ns());
            header.set_exposure_s(frame.exposure_s.value_or(0.0));
            header.set_encoding(pb::ENCODING_RAW);
            header.set_dtype(transport::to_pixel_dtype(frame.pixel_type()));
            header.set_rows(static_cast<std::uint32_t>(frame.shape.rows));
            header.set_cols(static_cast<std::uint32_t>(frame.shape.cols));
            if (auto refused = desk.controller().tag(header)) {
                metrics.frames_rejected.with(to_string(*refused)).increment();
                spdlog::debug("frame refused file={} index={} reason={}", watched.file.string(),
                              watched.index_in_file, to_string(*refused));
                continue;
            }
            zmq::message_t payload =
                std::visit([](auto& pixels) { return transport::make_payload(std::move(pixels)); },
                           frame.pixels);
            metrics.bytes_received.increment(static_cast<double>(payload.size()));
            if (!tracker.frame(std::move(header), std::move(payload), stop)) {
                return {};
            }
        }
    }
    return {};
}

// ---- the dispatch thread: frames to workers, control messages ----------------------------------

struct RunBook {
    pb::RunStart start;
    pb::FrameCounts sent;
    pb::FrameCounts raw_sent;  // frames on the raw frame feed (its RunEnd says how many)
    Clock::time_point next_republish;
    std::optional<EndEvent> end;  // set once the source ended the run
    Clock::time_point drain_deadline;
    std::uint64_t sequences_end = 0;  // one past the highest sequence dispatched
    std::uint32_t resumes = 0;        // restarts of ingest this run has seen (state_dir)

    // RunEnd.sequences_end: what was dispatched, or the source's count where that is more.
    [[nodiscard]] std::uint64_t frames_at_source() const {
        return std::max(sequences_end, end ? end->source_frames : 0);
    }
};

// A RunEnd already published, repeated for subscribers that missed it (run_end_repeats).
struct EndedRun {
    pb::RunEnd end;
    std::uint32_t repeats_left = 0;
    Clock::time_point next_repeat;
};

}  // namespace

struct IngestService::State {
    State(cfg::IngestConfig config_in, Metrics metrics_in)
        : config(std::move(config_in)), metrics(std::move(metrics_in)) {}

    cfg::IngestConfig config;
    cfg::DectrisRun dectris_run;  // kind dectris_stream: read from source.dectris_run_file
    zmq::context_t context;
    transport::SocketSecurity security;  // before the sockets, after the context it serves
    std::optional<transport::Dispatcher> dispatcher;
    zmq::socket_t control;
    zmq::socket_t source;
    zmq::socket_t raw;          // the raw frame feed to archive; unset when raw archiving is off
    zmq::socket_t run_control;  // REP of run control; unset when off (docs/run-control.md)
    zmq::socket_t receipts;     // SUB of archive's receipts; unset when off
    std::optional<io::WatchedFolder> folder;  // kind watched_folder; the source thread's
    std::optional<OpenRunStore> store;        // config.state_dir set; the dispatch thread's
    std::optional<state::v1::IngestOpenRun> left_open;  // found there at start, to resume
    IngestEndpoints endpoints;
    Metrics metrics;
    std::unique_ptr<EventQueue> queue;
    // Members above are set once by create(); those below belong to the dispatch thread.

    std::map<std::string, RunBook, std::less<>> runs;
    std::vector<EndedRun> ended;           // RunEnds still to be repeated
    transport::DispatchCounters exported;  // dispatcher counts already added to the metrics
    std::optional<SourceEvent> held;       // a data frame waiting for credit
    bool held_on_raw_feed = false;         // `held` already went out on the raw frame feed
    Clock::time_point held_since;
    Clock::time_point next_held_warning;  // repeated every send_timeout_ms while held
    Clock::time_point next_idle_warning;  // frames waiting and no worker alive
    bool save_failing = false;            // the last save of the open run failed (logged once)
    // With receipts (endpoints.receipts_in): raw feed messages archive has not stored yet, and
    // those to send again to a restarted archive before anything new (docs/protocol.md,
    // "Archive receipts").
    std::optional<transport::UnreceiptedMessages> unreceipted;
    std::deque<transport::Multipart> raw_resend;
    transport::RejectionLog receipt_rejections{"receipts_in"};

    void publish(Result<transport::Multipart> message) {
        if (!message) {
            spdlog::error("control message not encoded error=\"{}\"", message.error().message);
            return;
        }
        // PUB never blocks: a slow subscriber loses messages, which is why RunStart repeats.
        const std::uint64_t bytes = transport::size_of(*message);
        auto sent = transport::try_send(control, *message);
        if (!sent) {
            spdlog::warn("control publish failed error=\"{}\"", sent.error().message);
        } else if (*sent) {
            metrics.bytes_sent.increment(static_cast<double>(bytes));
        }
    }

    // The run as sent so far, for an ingest restarted after a crash (config.state_dir). Once per
    // frame: a rename of a file under 1 KB, small beside a frame's dispatch.
    void save_open_run(const RunBook& book) {
        if (!store) {
            return;
        }
        state::v1::IngestOpenRun open;
        *open.mutable_start() = book.start;
        *open.mutable_frames_sent() = book.sent;
        *open.mutable_raw_frames_sent() = book.raw_sent;
        open.set_sequences_end(book.sequences_end);
        open.set_resumes(book.resumes);
        if (auto saved = store->save(open); !saved && !save_failing) {
            spdlog::error("open run not saved run={} error=\"{}\": a restart will not resume it",
                          book.start.run_id(), saved.error().message);
            save_failing = true;  // said once; the next save that works clears it
        } else if (saved) {
            save_failing = false;
        }
    }

    void heartbeat() {
        pb::Heartbeat beat;
        beat.set_service("ingest");
        beat.set_instance(config.instance());
        beat.set_sent_unix_ns(unix_now_ns());
        pb::ServiceState state = pb::SERVICE_STATE_IDLE;
        for (const auto& [id, book] : runs) {
            beat.set_run_id(id);
            state = book.end ? pb::SERVICE_STATE_DRAINING : pb::SERVICE_STATE_RUNNING;
        }
        beat.set_state(state);
        publish(transport::encode_control(beat));
    }

    void handle(SourceEvent&& event, Clock::time_point now) {
        if (auto* start = std::get_if<StartEvent>(&event)) {
            const std::string id = start->start.run_id();
            if (runs.contains(id)) {
                return;
            }
            if (auto started = dispatcher->start_run(start->start); !started) {
                spdlog::error("run not started run={} error=\"{}\"", id, started.error().message);
                return;
            }
            publish(transport::encode_control(start->start));
            RunBook book;
            book.start = start->start;
            book.next_republish = now + milliseconds(config.run_start_republish_interval_ms());
            if (start->resumed) {
                book.sent = start->resumed->frames_sent();
                book.raw_sent = start->resumed->raw_frames_sent();
                book.sequences_end = start->resumed->sequences_end();
                book.resumes = start->resumed->resumes() + 1;
                metrics.runs_resumed.increment();
            }
            save_open_run(runs.emplace(id, std::move(book)).first->second);
        } else if (auto* frame = std::get_if<FrameEvent>(&event)) {
            const auto book = runs.find(frame->header.run_id());
            if (book == runs.end()) {
                metrics.frames_rejected.with("no_run").increment();
                return;
            }
            const pb::FrameHeader header = frame->header;
            if (auto sent = dispatcher->dispatch(header, std::move(frame->payload)); !sent) {
                metrics.frames_rejected.with("dispatch").increment();
                spdlog::debug("frame not dispatched error=\"{}\"", sent.error().message);
                return;
            }
            transport::count_frame(book->second.sent, header);
            book->second.sequences_end =
                std::max(book->second.sequences_end, header.sequence() + 1);
            save_open_run(book->second);
            metrics.dispatch_seconds.observe(
                std::chrono::duration<double>(now - frame->received_at).count());
        } else if (auto* run_event = std::get_if<RunEventEvent>(&event)) {
            if (runs.contains(run_event->event.run_id())) {
                publish(transport::encode_control(run_event->event));
            }
        } else if (auto* end = std::get_if<EndEvent>(&event)) {
            const auto book = runs.find(end->run_id);
            if (book == runs.end()) {
                return;
            }
            book->second.end = std::move(*end);
            book->second.drain_deadline = now + milliseconds(config.drain_timeout_ms());
        }
    }

    // RunEnd after drain (or the drain timeout), RunStart again for late subscribers.
    void follow_runs(Clock::time_point now, bool stopping) {
        repeat_run_ends(now);
        for (auto it = runs.begin(); it != runs.end();) {
            RunBook& book = it->second;
            if (!book.end && stopping) {
                book.end = EndEvent{it->first, pb::RUN_END_REASON_ABORTED, "ingest stopped", {}};
                book.drain_deadline = now;
            }
            // Until its RunEnd goes out, draining included: analyze takes a run whose RunStart
            // stops coming for an orphan (its ingest gone) and ends it.
            if (now >= book.next_republish) {
                publish(transport::encode_control(book.start));
                book.next_republish = now + milliseconds(config.run_start_republish_interval_ms());
            }
            if (!book.end) {
                ++it;
                continue;
            }
            const bool drained = dispatcher->drained(it->first);
            if (!drained && now < book.drain_deadline) {
                ++it;
                continue;
            }
            pb::RunEnd end;
            end.set_run_id(it->first);
            *end.mutable_frames_sent() = book.sent;
            end.set_sequences_end(book.frames_at_source());
            end.set_reason(book.end->reason);
            end.set_ended_unix_ns(unix_now_ns());
            std::string detail = book.end->detail;
            if (book.resumes > 0) {
                detail += fmt::format("{}resumed after {} restart{} of ingest",
                                      detail.empty() ? "" : "; ", book.resumes,
                                      book.resumes == 1 ? "" : "s");
            }
            if (!drained) {
                const transport::Dispatcher::RunBacklog left = dispatcher->backlog(it->first);
                detail += fmt::format(
                    "{}drain timeout: {} frames never reached analyze ({} never dispatched, {} at "
                    "a worker, {} reduced but not confirmed by analyze; workers alive {})",
                    detail.empty() ? "" : "; ", left.waiting + left.at_worker + left.unconfirmed,
                    left.waiting, left.at_worker, left.unconfirmed, dispatcher->workers_alive());
            }
            end.set_detail(detail);
            for (const pb::StateChange& change : book.end->history) {
                *end.add_state_changes() = change;
            }
            publish(transport::encode_control(end));
            if (config.run_end_repeats() > 0 && !stopping) {
                ended.push_back({end, config.run_end_repeats(),
                                 now + milliseconds(config.run_start_republish_interval_ms())});
            }
            dispatcher->end_run(it->first);
            if (store) {
                if (auto cleared = store->clear(it->first); !cleared) {
                    spdlog::error("open run not cleared run={} error=\"{}\"", it->first,
                                  cleared.error().message);
                }
            }
            const bool aborted = end.reason() == pb::RUN_END_REASON_ABORTED;
            metrics.runs_ended.with(aborted ? "aborted" : "completed").increment();
            spdlog::info(
                "run ended run={} reason={} data_p={} data_n={} dark={} flat={} "
                "drained={}",
                it->first, aborted ? "aborted" : "completed", book.sent.data_p(),
                book.sent.data_n(), book.sent.dark(), book.sent.flat(), drained);
            it = runs.erase(it);
        }
    }

    void repeat_run_ends(Clock::time_point now) {
        for (EndedRun& run : ended) {
            if (now >= run.next_repeat) {
                publish(transport::encode_control(run.end));
                --run.repeats_left;
                run.next_repeat = now + milliseconds(config.run_start_republish_interval_ms());
            }
        }
        std::erase_if(ended, [](const EndedRun& run) { return run.repeats_left == 0; });
    }

    void export_metrics() {
        const transport::DispatchCounters& now = dispatcher->counters();
        metrics.frames_dispatched.increment(
            static_cast<double>(now.frames_dispatched - exported.frames_dispatched));
        metrics.frames_redispatched.increment(
            static_cast<double>(now.frames_redispatched - exported.frames_redispatched));
        metrics.frames_acked.increment(
            static_cast<double>(now.frames_acked - exported.frames_acked));
        metrics.frames_confirmed.increment(
            static_cast<double>(now.frames_confirmed - exported.frames_confirmed));
        metrics.bytes_sent.increment(static_cast<double>(now.bytes_sent - exported.bytes_sent));
        metrics.bytes_received.increment(
            static_cast<double>(now.bytes_received - exported.bytes_received));
        exported = now;
        metrics.queue_depth.set(static_cast<double>(queue->size() + (held ? 1 : 0)));
        metrics.workers_alive.set(static_cast<double>(dispatcher->workers_alive()));
        metrics.frames_in_flight.set(
            static_cast<double>(dispatcher->in_flight() + dispatcher->waiting()));
        metrics.frames_unconfirmed.set(static_cast<double>(dispatcher->unconfirmed()));
    }

    // Takes events while they can go out: a data frame waits (held) until a worker has credit.
    // With no worker alive at all, data frames go on into the dispatcher's waiting line, up to
    // queue_capacity_frames of them, so that the source queue keeps moving and a run's end is
    // seen (its drain timeout can then report the frames never dispatched); beyond that the
    // source is held back, as it is while the workers are busy.
    void take_events(Clock::time_point now) {
        while (true) {
            if (!held) {
                held = queue->try_pop();
                if (!held) {
                    return;
                }
                held_since = now;
                next_held_warning = now + milliseconds(config.send_timeout_ms());
            }
            if (const auto* frame = std::get_if<FrameEvent>(&*held);
                frame != nullptr && needs_credit(frame->header.kind()) &&
                !dispatcher->has_credit() &&
                !(dispatcher->workers_alive() == 0 &&
                  dispatcher->waiting() < config.queue_capacity_frames())) {
                if (now >= next_held_warning) {
                    // Repeated while it lasts: an operator must see that the beamline waits.
                    spdlog::warn(
                        "no reduce worker has credit waited_ms={} workers_alive={} "
                        "frames_waiting={} queue_depth={}: the source is held back",
                        std::chrono::duration_cast<milliseconds>(now - held_since).count(),
                        dispatcher->workers_alive(), dispatcher->waiting(), queue->size() + 1);
                    next_held_warning = now + milliseconds(config.send_timeout_ms());
                }
                return;
            }
            if (!held_on_raw_feed) {
                if (!to_raw_feed(*held)) {
                    if (now >= next_held_warning) {
                        spdlog::warn(
                            "archive does not take raw frames waited_ms={} queue_depth={} "
                            "unreceipted={} to_send_again={}: the source is held back",
                            std::chrono::duration_cast<milliseconds>(now - held_since).count(),
                            queue->size() + 1, unreceipted ? unreceipted->frames() : 0,
                            raw_resend.size());
                        next_held_warning = now + milliseconds(config.send_timeout_ms());
                    }
                    return;
                }
                held_on_raw_feed = true;
            }
            handle(std::move(*held), now);
            held.reset();
            held_on_raw_feed = false;
        }
    }

    // The raw frame feed (docs/protocol.md, "Raw frame feed"): each run's RunStart, every frame
    // of it as the source gave it (the payload shared, not copied), then a RunEnd counting them,
    // in order on one PUSH pipe. False when archive's pipe is full: the event waits (held), so
    // the source is held back and no frame is skipped. True when raw archiving is off.
    bool to_raw_feed(SourceEvent& event) {
        if (raw.handle() == nullptr) {
            return true;
        }
        if (!send_raw_again()) {
            return false;  // what a restarted archive may lack goes first, in order
        }
        if (unreceipted && unreceipted->frames() >= config.max_unreceipted_raw_frames()) {
            return false;  // archive stores nothing: the source is held back, as when it is full
        }
        Result<transport::Multipart> message = transport::Multipart{};
        pb::FrameCounts* counts = nullptr;
        const pb::FrameHeader* frame_header = nullptr;
        if (const auto* start = std::get_if<StartEvent>(&event)) {
            if (runs.contains(start->start.run_id())) {
                return true;
            }
            message = transport::encode_control(start->start);
        } else if (auto* frame = std::get_if<FrameEvent>(&event)) {
            const auto book = runs.find(frame->header.run_id());
            if (book == runs.end()) {
                return true;  // refused by handle() as well
            }
            zmq::message_t shared;
            shared.copy(frame->payload);  // zmq_msg_copy: a reference, not a copy of the pixels
            message = transport::encode_frame(frame->header, std::move(shared));
            counts = &book->second.raw_sent;
            frame_header = &frame->header;
        } else if (const auto* end = std::get_if<EndEvent>(&event)) {
            const auto book = runs.find(end->run_id);
            if (book == runs.end()) {
                return true;
            }
            pb::RunEnd raw_end;
            raw_end.set_run_id(end->run_id);
            *raw_end.mutable_frames_sent() = book->second.raw_sent;
            raw_end.set_sequences_end(std::max(book->second.sequences_end, end->source_frames));
            raw_end.set_reason(end->reason);
            raw_end.set_ended_unix_ns(unix_now_ns());
            raw_end.set_detail(end->detail);
            for (const pb::StateChange& change : end->history) {
                *raw_end.add_state_changes() = change;
            }
            message = transport::encode_control(raw_end);
        } else if (const auto* run_event = std::get_if<RunEventEvent>(&event)) {
            if (!runs.contains(run_event->event.run_id())) {
                return true;
            }
            message = transport::encode_control(run_event->event);
        }
        if (!message) {
            spdlog::error("raw feed message not encoded error=\"{}\"", message.error().message);
            return true;  // nothing to wait for: the frame still goes to the reducers
        }
        if (!send_raw(*message)) {
            return false;
        }
        if (counts != nullptr) {
            transport::count_frame(*counts, *frame_header);
            metrics.raw_frames_sent.increment();
        }
        return true;
    }

    // Sends again, in order, what a restarted archive may not have stored; true once all went.
    bool send_raw_again() {
        while (!raw_resend.empty()) {
            if (!send_raw(raw_resend.front())) {
                return false;
            }
            raw_resend.pop_front();
        }
        return true;
    }

    // One message onto the raw feed without waiting; with receipts it is kept until archive has
    // stored it. False when the pipe is full (`parts` untouched) or the send failed.
    bool send_raw(transport::Multipart& parts) {
        const std::uint64_t bytes = transport::size_of(parts);
        std::optional<transport::Multipart> shared;
        if (unreceipted) {
            shared = transport::share(parts);  // the send empties the message
        }
        auto sent = transport::try_send(raw, parts);
        if (!sent) {
            spdlog::warn("raw feed send failed error=\"{}\"", sent.error().message);
            return false;
        }
        if (!*sent) {
            return false;
        }
        metrics.bytes_sent.increment(static_cast<double>(bytes));
        if (shared) {
            unreceipted->keep(std::move(*shared));
            metrics.raw_unreceipted.set(static_cast<double>(unreceipted->frames()));
        }
        return true;
    }

    // Archive's receipts: what they cover is forgotten; receipts of a new archive process mean
    // what is kept may have died with the old one, so it goes again before anything new.
    void take_receipts() {
        if (!unreceipted) {
            return;
        }
        // Refusals are logged at most once a second per reason: a flood cannot fill the log.
        const transport::ReceiptsTaken taken =
            transport::take_receipts(receipts, *unreceipted, raw_resend,
                                     [this](std::string_view reason, std::string_view error) {
                                         receipt_rejections.log(reason, error);
                                     });
        if (taken.error) {
            spdlog::warn("receipts not read error=\"{}\"", taken.error->message);
        }
        metrics.bytes_received.increment(static_cast<double>(taken.bytes));
        metrics.archive_sessions.increment(static_cast<double>(taken.new_sessions));
        if (taken.sent_again > 0) {
            spdlog::info(
                "archive session {:016x}: sending again {} raw feed messages it may not have "
                "stored",
                taken.new_session, taken.sent_again);
            metrics.raw_resent.increment(static_cast<double>(taken.sent_again));
        }
        metrics.raw_unreceipted.set(static_cast<double>(unreceipted->frames()));
    }

    // Frames wait in the dispatcher with no worker to take them: say so every send_timeout_ms.
    void warn_no_workers(Clock::time_point now) {
        if (dispatcher->workers_alive() > 0 || dispatcher->waiting() == 0 || held) {
            next_idle_warning = now + milliseconds(config.send_timeout_ms());
            return;  // held frames have their own warning (take_events)
        }
        if (now >= next_idle_warning) {
            spdlog::warn("no reduce worker alive frames_waiting={}: held until a worker joins",
                         dispatcher->waiting());
            next_idle_warning = now + milliseconds(config.send_timeout_ms());
        }
    }

    Result<void> read_source(const runtime::StopToken& stop) {
        const bool controlled = run_control.handle() != nullptr;
        // Under run control silence closes an acquisition, never the run.
        RunTracker tracker(
            *queue, metrics,
            controlled ? milliseconds::zero() : milliseconds(config.source().series_timeout_ms()));
        if (left_open) {
            const std::string run_id = left_open->start().run_id();
            if (!tracker.resume(std::move(*left_open), stop)) {
                return {};
            }
            left_open.reset();
            // Run control's state (acquisitions, frame kinds) is not kept: such a run ends
            // aborted, counted and named, instead of being continued under a guess.
            if (controlled && !tracker.end(pb::RUN_END_REASON_ABORTED,
                                           "ingest restarted under run control: its run state "
                                           "was lost, the run is not continued",
                                           stop)) {
                return {};
            }
            spdlog::debug("open run taken up run={}", run_id);
        }
        if (!controlled) {
            return config.source().kind() == cfg::SOURCE_KIND_DECTRIS_STREAM
                       ? read_dectris_stream(source, config.source(), dectris_run, tracker, metrics,
                                             nullptr, stop)
                       : read_anisoflow_stream(source, tracker, metrics, stop);
        }
        RunController controller{std::string(metrics::build_version())};
        ControlDesk desk(run_control, controller, tracker, metrics);
        Result<void> result = folder ? read_watched_folder(*folder, desk, tracker, metrics, stop)
                                     : read_dectris_stream(source, config.source(), dectris_run,
                                                           tracker, metrics, &desk, stop);
        // A run still open ends with its log; the dispatch thread sends it if it can.
        (void)tracker.apply(controller.abort("ingest stopped", unix_now_ns()), stop);
        return result;
    }
};

IngestService::IngestService(std::unique_ptr<State> state) : state_(std::move(state)) {}
IngestService::~IngestService() = default;
IngestService::IngestService(IngestService&&) noexcept = default;
IngestService& IngestService::operator=(IngestService&&) noexcept = default;

Result<IngestService> IngestService::create(const cfg::IngestConfig& config,
                                            metrics::Registry& registry) {
    const cfg::IngestSource& source = config.source();
    if (source.kind() != cfg::SOURCE_KIND_DECTRIS_STREAM &&
        source.kind() != cfg::SOURCE_KIND_ANISOFLOW_STREAM &&
        source.kind() != cfg::SOURCE_KIND_WATCHED_FOLDER) {
        return fail(ErrorCode::kUnsupported,
                    "source.kind {}: this ingest reads dectris_stream, anisoflow_stream or "
                    "watched_folder",
                    cfg::SourceKind_Name(source.kind()));
    }
    auto registered = register_metrics(registry);
    if (!registered) {
        return tl::unexpected(registered.error());
    }
    auto state = std::make_unique<State>(config, *registered);
    auto security = transport::SocketSecurity::load(config.security());
    if (!security) {
        return tl::unexpected(security.error());
    }
    state->security = std::move(*security);
    if (auto started = state->security.start(state->context); !started) {
        return tl::unexpected(started.error().with_context("security"));
    }
    const cfg::Socket& run_control = config.endpoints().run_control();
    if (!run_control.address().empty() && source.kind() == cfg::SOURCE_KIND_ANISOFLOW_STREAM) {
        return fail(ErrorCode::kUnsupported,
                    "endpoints.run_control: an anisoflow stream announces its own runs; run "
                    "control drives a dectris_stream or watched_folder source");
    }
    if (run_control.address().empty() && source.kind() == cfg::SOURCE_KIND_WATCHED_FOLDER) {
        return fail(ErrorCode::kInvalidArgument,
                    "endpoints.run_control: empty, and a watched folder says nothing of runs or "
                    "frame kinds; set it (docs/run-control.md)");
    }
    if (source.kind() == cfg::SOURCE_KIND_WATCHED_FOLDER) {
        io::WatchedFolderOptions options;
        options.directory = source.watch_directory();
        options.pattern = source.watch_pattern();
        options.settle_time = milliseconds(source.watch_settle_ms());
        options.open_retry_time = milliseconds(source.watch_open_retry_ms());
        options.existing = source.watch_existing() == cfg::WATCH_EXISTING_TAKE
                               ? io::ExistingFiles::kTake
                               : io::ExistingFiles::kSkip;
        if (!source.watch_hdf5_dataset().empty()) {
            options.hdf5_dataset = source.watch_hdf5_dataset();
        }
        auto folder = io::WatchedFolder::open(std::move(options));
        if (!folder) {
            return tl::unexpected(folder.error().with_context("source.watch_directory"));
        }
        state->folder.emplace(std::move(*folder));
    }
    if (source.kind() == cfg::SOURCE_KIND_DECTRIS_STREAM && run_control.address().empty()) {
        if (auto loaded = runtime::merge_toml_file(state->dectris_run, source.dectris_run_file());
            !loaded) {
            return tl::unexpected(loaded.error().with_context("source.dectris_run_file"));
        }
        // A calibrated geometry (distance_m set) is used as written: refuse bad values now
        // rather than have every run's RunStart refused by the workers.
        if (state->dectris_run.experiment().geometry().distance_m() != 0.0) {
            std::string bad;
            for (const std::string& problem :
                 transport::experiment_problems(state->dectris_run.experiment())) {
                if (problem.rfind("geometry.", 0) == 0) {
                    bad += (bad.empty() ? "experiment." : "; experiment.") + problem;
                }
            }
            if (!bad.empty()) {
                return fail(ErrorCode::kInvalidArgument, "source.dectris_run_file: {}: {}",
                            source.dectris_run_file(), bad);
            }
        }
    }
    state->queue = std::make_unique<EventQueue>(config.queue_capacity_frames(), kSourcePoll);
    if (!config.state_dir().empty()) {
        auto store = OpenRunStore::open(config.state_dir());
        if (!store) {
            return tl::unexpected(store.error());
        }
        // A file that does not read is reported and moved aside: ingest starts without it.
        if (auto left = store->load(); !left) {
            spdlog::error("open run not resumed error=\"{}\"", left.error().message);
        } else {
            state->left_open = std::move(*left);
        }
        state->store.emplace(std::move(*store));
    }

    transport::DispatcherOptions options;
    options.worker_timeout = milliseconds(config.worker_timeout_ms());
    options.max_unconfirmed = config.max_unconfirmed_frames();
    options.send_hwm = static_cast<int>(config.endpoints().frames_out().send_hwm_messages());
    options.receive_hwm = static_cast<int>(config.endpoints().frames_out().receive_hwm_messages());
    auto frames_keys = state->security.keys_for(config.endpoints().frames_out().address());
    if (!frames_keys) {
        return tl::unexpected(frames_keys.error().with_context("endpoints.frames_out"));
    }
    options.curve = std::move(*frames_keys);
    auto dispatcher = transport::Dispatcher::open(
        state->context, config.endpoints().frames_out().address(), options);
    if (!dispatcher) {
        return tl::unexpected(dispatcher.error().with_context("endpoints.frames_out"));
    }
    state->endpoints.frames = dispatcher->endpoint();
    state->dispatcher.emplace(std::move(*dispatcher));

    transport::SocketOptions control_options;
    control_options.send_hwm =
        static_cast<int>(config.endpoints().control_out().send_hwm_messages());
    control_options.receive_hwm =
        static_cast<int>(config.endpoints().control_out().receive_hwm_messages());
    control_options.linger = kControlLinger;
    const std::string& control_address = config.endpoints().control_out().address();
    auto control_secured = state->security.secure(control_address, control_options);
    if (!control_secured) {
        return tl::unexpected(control_secured.error().with_context("endpoints.control_out"));
    }
    auto control = transport::open_socket(state->context, zmq::socket_type::pub, control_address,
                                          *control_secured);
    if (!control) {
        return tl::unexpected(control.error().with_context("endpoints.control_out"));
    }
    state->control = std::move(*control);
    state->endpoints.control = state->control.get(zmq::sockopt::last_endpoint);
    if (state->endpoints.control.empty()) {
        state->endpoints.control = control_address.substr(1);
    }

    const cfg::Socket& raw_out = config.endpoints().raw_out();
    if (!raw_out.address().empty()) {
        transport::SocketOptions raw_options;
        raw_options.send_hwm = static_cast<int>(raw_out.send_hwm_messages());
        raw_options.receive_hwm = static_cast<int>(raw_out.receive_hwm_messages());
        raw_options.linger = kControlLinger;
        auto raw_secured = state->security.secure(raw_out.address(), raw_options);
        if (!raw_secured) {
            return tl::unexpected(raw_secured.error().with_context("endpoints.raw_out"));
        }
        auto raw = transport::open_socket(state->context, zmq::socket_type::push, raw_out.address(),
                                          *raw_secured);
        if (!raw) {
            return tl::unexpected(raw.error().with_context("endpoints.raw_out"));
        }
        state->raw = std::move(*raw);
        state->endpoints.raw = state->raw.get(zmq::sockopt::last_endpoint);
        if (const cfg::Socket& in = config.endpoints().receipts_in(); !in.address().empty()) {
            if (config.max_unreceipted_raw_frames() == 0) {
                return fail(ErrorCode::kInvalidArgument,
                            "max_unreceipted_raw_frames: 0; at least 1 with endpoints.receipts_in");
            }
            transport::SocketOptions receipt_options;
            receipt_options.send_hwm = static_cast<int>(in.send_hwm_messages());
            receipt_options.receive_hwm = static_cast<int>(in.receive_hwm_messages());
            auto receipt_secured = state->security.secure(in.address(), receipt_options);
            if (!receipt_secured) {
                return tl::unexpected(
                    receipt_secured.error().with_context("endpoints.receipts_in"));
            }
            auto receipts = transport::open_socket(state->context, zmq::socket_type::sub,
                                                   in.address(), *receipt_secured);
            if (!receipts) {
                return tl::unexpected(receipts.error().with_context("endpoints.receipts_in"));
            }
            state->receipts = std::move(*receipts);
            state->unreceipted.emplace(transport::ReceiptFeed::kRawFrames);
        }
    }

    if (!run_control.address().empty()) {
        transport::SocketOptions rep_options;
        rep_options.send_hwm = static_cast<int>(run_control.send_hwm_messages());
        rep_options.receive_hwm = static_cast<int>(run_control.receive_hwm_messages());
        auto rep_secured = state->security.secure(run_control.address(), rep_options);
        if (!rep_secured) {
            return tl::unexpected(rep_secured.error().with_context("endpoints.run_control"));
        }
        auto rep = transport::open_socket(state->context, zmq::socket_type::rep,
                                          run_control.address(), *rep_secured);
        if (!rep) {
            return tl::unexpected(rep.error().with_context("endpoints.run_control"));
        }
        state->run_control = std::move(*rep);
        state->endpoints.run_control = state->run_control.get(zmq::sockopt::last_endpoint);
    }

    if (state->folder) {
        state->endpoints.source = state->folder->directory().string();
        return IngestService(std::move(state));
    }
    transport::SocketOptions source_options;
    source_options.receive_hwm = static_cast<int>(source.receive_hwm_messages());
    const std::string& source_address = source.kind() == cfg::SOURCE_KIND_DECTRIS_STREAM
                                            ? source.dectris_address()
                                            : source.stream_address();
    auto pull_secured = state->security.secure(source_address, source_options);
    if (!pull_secured) {
        return tl::unexpected(pull_secured.error().with_context("source"));
    }
    auto pull = transport::open_socket(state->context, zmq::socket_type::pull, source_address,
                                       *pull_secured);
    if (!pull) {
        return tl::unexpected(pull.error().with_context("source"));
    }
    state->source = std::move(*pull);
    state->endpoints.source = state->source.get(zmq::sockopt::last_endpoint);
    if (state->endpoints.source.empty()) {
        state->endpoints.source = source_address.substr(1);
    }
    return IngestService(std::move(state));
}

const IngestEndpoints& IngestService::endpoints() const { return state_->endpoints; }

Result<void> IngestService::run(const runtime::StopSource& stop) {
    State& s = *state_;
    spdlog::info("ingest ready frames={} control={} source={} kind={}", s.endpoints.frames,
                 s.endpoints.control, s.endpoints.source,
                 cfg::SourceKind_Name(s.config.source().kind()));
    runtime::StageThread source_stage(
        "source", stop, [&s](const runtime::StopToken& token) { return s.read_source(token); });
    const runtime::StopToken token = stop.token();
    const milliseconds heartbeat_interval(s.config.heartbeat_interval_ms());
    auto next_heartbeat = Clock::now();
    while (!token.stop_requested()) {
        const bool idle = !s.held && s.queue->size() == 0;
        if (auto polled = s.dispatcher->poll(idle ? kDispatchPoll : milliseconds::zero());
            !polled) {
            stop.request_stop();
            return tl::unexpected(polled.error().with_context("dispatch"));
        }
        const auto now = Clock::now();
        s.take_receipts();
        if (s.unreceipted) {
            (void)s.send_raw_again();  // also when the source is quiet (a run already ended)
        }
        s.take_events(now);
        s.warn_no_workers(now);
        s.follow_runs(now, false);
        if (now >= next_heartbeat) {
            s.heartbeat();
            next_heartbeat = now + heartbeat_interval;
        }
        s.export_metrics();
        if (s.held) {
            // Waiting for credit: poll() above returns at once when nothing came, so wait here.
            if (auto polled = s.dispatcher->poll(kDispatchPoll); !polled) {
                stop.request_stop();
                return tl::unexpected(polled.error().with_context("dispatch"));
            }
        }
    }
    auto source_result = source_stage.join();
    // What the source queued before stop still goes out if workers can take it; open runs end
    // as ABORTED.
    s.take_events(Clock::now());
    s.follow_runs(Clock::now(), true);
    s.export_metrics();
    return source_result;
}

Result<void> run(const cfg::IngestConfig& config, runtime::ServiceContext& context) {
    auto service = IngestService::create(config, context.metrics);
    if (!service) {
        return tl::unexpected(service.error());
    }
    return service->run(context.stop);
}

}  // namespace anisoflow::ingest
