#include "reduce_service.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "anisoflow/codec/bitshuffle.hpp"
#include "anisoflow/codec/lz4.hpp"
#include "anisoflow/geometry/detector_geometry.hpp"
#include "anisoflow/metrics/metrics.hpp"
#include "anisoflow/reduce/cake_integrator.hpp"
#include "anisoflow/reduce/corrections.hpp"
#include "anisoflow/runtime/bounded_queue.hpp"
#include "anisoflow/runtime/stage.hpp"
#include "anisoflow/transport/dispatch.hpp"
#include "anisoflow/transport/experiment.hpp"
#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/rejection_log.hpp"
#include "anisoflow/transport/socket.hpp"
#include "anisoflow/transport/socket_security.hpp"

namespace anisoflow::reducer {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long one wait on a socket or the job queue lasts before the stop flag is checked again.
constexpr milliseconds kPollInterval{20};
// Stages that decompress, integrate and send in turn; they share the run's integrator (whose
// `threads` threads integrate one frame at a time), so two keep it busy while the other one
// decompresses or sends.
constexpr std::size_t kWorkerStages = 2;
// Bounds of the reduce-time and latency histograms, seconds: 1 ms to 10 s.
const std::vector<double> kReduceSecondsBuckets = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
                                                   0.2,   0.5,   1.0,   2.0,  5.0,  10.0};

transport::SocketOptions socket_options(const cfg::Socket& socket) {
    transport::SocketOptions options;
    options.send_hwm = static_cast<int>(socket.send_hwm_messages());
    options.receive_hwm = static_cast<int>(socket.receive_hwm_messages());
    return options;
}

class WorkerLinkInput final : public FrameInput {
  public:
    explicit WorkerLinkInput(transport::WorkerLink link) : link_(std::move(link)) {}
    Result<std::optional<transport::DecodeResult>> receive(milliseconds timeout) override {
        return link_.receive(timeout);
    }
    Result<void> ack(std::string_view run_id, std::uint64_t sequence,
                     pb::AckStatus status) override {
        return link_.ack(run_id, sequence, status);
    }
    std::uint64_t bytes_received() const override { return link_.bytes_received(); }
    std::uint64_t bytes_sent() const override { return link_.bytes_sent(); }
    std::uint64_t control_dropped() const override { return link_.control_dropped(); }

  private:
    transport::WorkerLink link_;
};

// One data frame on its way from the receive stage to a worker stage.
struct Job {
    std::shared_ptr<const reduce::CakeIntegrator> integrator;
    transport::FrameMessage frame;
    Clock::time_point received_at;  // when the frame was taken off the frames socket
};

// Frames received and not yet integrated; its capacity is the credit the worker announces.
using JobQueue = runtime::BoundedQueue<Job>;

// Acknowledgements from the worker stages to the receive stage, which owns the FrameInput. One
// FIFO, so a frame's REDUCED leaves before analyze's RECEIVED relayed after it.
struct PendingAck {
    std::string run_id;
    std::uint64_t sequence = 0;
    pb::AckStatus status = pb::ACK_STATUS_UNSPECIFIED;
};

class AckQueue {
  public:
    void push(std::string run_id, std::uint64_t sequence, pb::AckStatus status) {
        const std::lock_guard lock(mutex_);
        acks_.push_back(PendingAck{std::move(run_id), sequence, status});
    }
    std::deque<PendingAck> take() {
        const std::lock_guard lock(mutex_);
        return std::exchange(acks_, {});
    }

  private:
    std::mutex mutex_;
    std::deque<PendingAck> acks_;
};

struct ReduceMetrics {
    metrics::Counter frames_reduced;
    metrics::Counter calibration_frames;
    metrics::Histogram reduce_seconds;
    metrics::CounterFamily errors;
    metrics::CounterFamily rejected;
    metrics::Counter bytes_received;
    metrics::Counter bytes_sent;
    metrics::Histogram latency_seconds;
    metrics::Counter control_dropped;
};

Result<ReduceMetrics> register_metrics(metrics::Registry& registry) {
    auto reduced = registry.counter("anisoflow_reduce_frames_reduced_total",
                                    "data frames integrated and accepted by the reduced socket");
    auto calibration = registry.counter("anisoflow_reduce_calibration_frames_total",
                                        "dark and flat frames averaged into the corrections");
    auto seconds = registry.histogram("anisoflow_reduce_reduce_duration_seconds",
                                      "decompression, integration and send of one data frame",
                                      kReduceSecondsBuckets);
    auto errors = registry.counter_family(
        "anisoflow_reduce_errors_total", "frames that could not be reduced, by reason", "reason",
        {"no_run_start", "bad_run_start", "decompress", "integrate", "send_timeout",
         "unsupported_kind", "pending_overflow"});
    auto rejected = registry.counter_family("anisoflow_reduce_messages_rejected_total",
                                            "messages dropped by decode(), by reason", "reason");
    auto bytes_received = registry.counter(
        "anisoflow_reduce_bytes_received_total",
        "bytes received: frames from ingest, control messages, analyze's receipts");
    auto bytes_sent =
        registry.counter("anisoflow_reduce_bytes_sent_total",
                         "bytes sent: cakes and heartbeats to analyze, credits and acks to ingest");
    auto latency = registry.histogram(
        "anisoflow_reduce_frame_latency_seconds",
        "from a data frame's receipt from ingest to its cake sent to analyze, queue included",
        kReduceSecondsBuckets);
    auto control_dropped = registry.counter(
        "anisoflow_reduce_control_dropped_total",
        "acks and credit heartbeats ingest did not take in time (ingest gone or restarting)");
    if (!reduced || !calibration || !seconds || !errors || !rejected || !bytes_received ||
        !bytes_sent || !latency || !control_dropped) {
        return fail(ErrorCode::kInvalidArgument, "cannot register the reduce metrics");
    }
    return ReduceMetrics{*reduced,        *calibration, *seconds, *errors,         *rejected,
                         *bytes_received, *bytes_sent,  *latency, *control_dropped};
}

using LookupResult = Result<std::shared_ptr<const reduce::CakeLookup>>;

// What a worker knows of one run.
struct RunContext {
    pb::RunStart start;
    std::shared_ptr<const geometry::DetectorGeometry> geometry;
    std::shared_future<LookupResult> lookup;  // the geometry half of the integrator
    reduce::FrameAverager darks;
    reduce::FrameAverager flats;
    std::shared_ptr<const reduce::CakeIntegrator> integrator;  // null: (re)build before use
    std::optional<PixelType> integrator_type;
};

reduce::CakeAxes axes_of(const pb::ExperimentConfig& config) {
    reduce::CakeAxes axes;
    axes.n_q = config.n_q();
    axes.n_chi = config.n_chi();
    axes.q_min_inv_angstrom = config.q_min_inv_angstrom();
    axes.q_max_inv_angstrom = config.q_max_inv_angstrom();
    return axes;
}

// Cake lookups (the geometry half of an integrator, ~0.5 s of trigonometry for 4 Mpixel) by what
// they depend on: geometry, cake axes and polarization. A run's lookup starts building on its own
// thread when the RunStart comes, while the darks and flats are still arriving, and the next run
// with the same geometry (the usual case during a shift) reuses it: its first frames do not wait
// for a rebuild (docs/reduction.md, "Lookup and corrections"). The first data frame waits for
// the build only if it comes sooner than that.
class LookupCache {
  public:
    std::shared_future<LookupResult> get(const pb::RunStart& start,
                                         std::shared_ptr<const geometry::DetectorGeometry> geometry,
                                         const reduce::CakeAxes& axes, unsigned threads) {
        const pb::ExperimentConfig& config = start.config();
        // The service's corrections: solid angle always, the run's polarization factor.
        const reduce::GeometricFactors factors{true, config.polarization_factor()};
        const std::string key = fmt::format(
            "{}|{}|{}|{}|{}|{}", config.geometry().SerializeAsString(), axes.n_q, axes.n_chi,
            axes.q_min_inv_angstrom, axes.q_max_inv_angstrom, *factors.polarization_factor);
        for (const auto& [cached_key, lookup] : entries_) {
            if (cached_key == key) {
                return lookup;
            }
        }
        std::shared_future<LookupResult> lookup =
            std::async(std::launch::async,
                       [geometry = std::move(geometry), axes, factors, threads]() -> LookupResult {
                           return reduce::CakeLookup::create(*geometry, axes,
                                                             reduce::PixelSplitting::kNone, factors,
                                                             std::max(1U, threads));
                       })
                .share();
        entries_.emplace_back(key, lookup);
        if (entries_.size() > kLookupsKept) {
            entries_.pop_front();  // integrators built from it keep what they need
        }
        return lookup;
    }

  private:
    // Two geometries in turn (e.g. two detector distances) without rebuilding; each lookup of a
    // 4 Mpixel detector holds 32 MB.
    static constexpr std::size_t kLookupsKept = 2;
    std::deque<std::pair<std::string, std::shared_future<LookupResult>>> entries_;
};

// The corrections and integrator of a run as `anisoflow analyze` builds them: mean dark and flat,
// the integer type's saturation, the run's polarization factor, no pixel splitting.
Result<std::shared_ptr<const reduce::CakeIntegrator>> build_integrator(const RunContext& run,
                                                                       PixelType type,
                                                                       unsigned threads) {
    reduce::DetectorCorrections corrections;
    if (run.darks.frame_count() > 0) {
        auto mean = run.darks.mean();
        if (!mean) {
            return tl::unexpected(mean.error());
        }
        corrections.dark_counts = std::move(*mean);
        corrections.dark_frame_count = run.darks.frame_count();
    }
    if (run.flats.frame_count() > 0) {
        auto mean = run.flats.mean();
        if (!mean) {
            return tl::unexpected(mean.error());
        }
        corrections.flat = std::move(*mean);
    }
    corrections.saturation_counts = integer_saturation(type);
    const pb::ExperimentConfig& config = run.start.config();
    corrections.polarization_factor = config.polarization_factor();
    // The run's noise model (docs/reduction.md, "Noise models"); UNSPECIFIED is SPEC 2's.
    if (config.variance_model() == pb::VARIANCE_MODEL_INTEGRATING) {
        corrections.variance_model = reduce::VarianceModel::kIntegrating;
        corrections.counts_per_photon =
            config.counts_per_photon() > 0.0 ? config.counts_per_photon() : 1.0;
        if (config.has_read_noise_counts()) {
            corrections.read_noise_counts = config.read_noise_counts();
        } else if (run.darks.frame_count() >= 2) {
            auto variance = run.darks.mean_pixel_variance({});
            if (!variance) {
                return tl::unexpected(variance.error());
            }
            corrections.read_noise_counts = std::sqrt(*variance);
        } else {
            return fail(ErrorCode::kInvalidArgument,
                        "ExperimentConfig.variance_model INTEGRATING needs read_noise_counts or at "
                        "least 2 dark frames before the first data frame ({} so far)",
                        run.darks.frame_count());
        }
        if (!(*corrections.read_noise_counts >= 0.0) ||
            !std::isfinite(*corrections.read_noise_counts) ||
            !std::isfinite(corrections.counts_per_photon)) {
            return fail(ErrorCode::kInvalidArgument,
                        "ExperimentConfig: read_noise_counts {} and counts_per_photon {} must be "
                        "finite and not negative",
                        *corrections.read_noise_counts, corrections.counts_per_photon);
        }
    }
    const LookupResult& lookup = run.lookup.get();  // waits only if still building
    if (!lookup) {
        return tl::unexpected(lookup.error());
    }
    auto integrator = reduce::CakeIntegrator::create(*lookup, threads, std::move(corrections));
    if (!integrator) {
        return tl::unexpected(integrator.error());
    }
    return std::make_shared<const reduce::CakeIntegrator>(std::move(*integrator));
}

std::vector<double> copy_span(std::span<const double> values) {
    return {values.begin(), values.end()};
}

class ReduceService {
  public:
    ReduceService(const cfg::ReduceConfig& config, runtime::ServiceContext& context,
                  zmq::context_t& zmq_context, const transport::SocketSecurity& security,
                  std::unique_ptr<FrameInput> input, ReduceMetrics metrics)
        : config_(config),
          context_(context),
          zmq_(zmq_context),
          security_(security),
          input_(std::move(input)),
          metrics_(std::move(metrics)),
          jobs_(std::max<std::size_t>(1, config.queue_capacity_frames()), kPollInterval) {}

    Result<void> run() {
        auto control =
            security_.open(zmq_, zmq::socket_type::sub, config_.endpoints().control_in().address(),
                           socket_options(config_.endpoints().control_in()));
        if (!control) {
            return tl::unexpected(control.error().with_context("endpoints.control_in"));
        }
        control_ = std::move(*control);
        std::vector<std::unique_ptr<runtime::StageThread>> workers;
        for (std::size_t i = 0; i < kWorkerStages; ++i) {
            // A DEALER, not a PUSH: analyze's receipts come back on it (docs/protocol.md).
            auto reduced = security_.open(zmq_, zmq::socket_type::dealer,
                                          config_.endpoints().reduced_out().address(),
                                          socket_options(config_.endpoints().reduced_out()));
            if (!reduced) {
                return tl::unexpected(reduced.error().with_context("endpoints.reduced_out"));
            }
            workers.push_back(std::make_unique<runtime::StageThread>(
                "integrate-" + std::to_string(i), context_.stop,
                [this, i, socket = std::make_shared<zmq::socket_t>(std::move(*reduced))](
                    const runtime::StopToken& stop) { return work(stop, *socket, i == 0); }));
        }
        spdlog::info("ready instance={} credits={} integration_threads={}", config_.instance(),
                     config_.queue_capacity_frames(), config_.threads());
        auto received = receive_loop(context_.stop.token());
        context_.stop.request_stop();
        Result<void> result = received;
        for (auto& worker : workers) {
            if (auto joined = worker->join(); !joined && result) {
                result = joined;
            }
        }
        return result;
    }

  private:
    void count_error(std::string_view reason, const std::string& detail) {
        metrics_.errors.with(reason).increment();
        // Rate-limited by kind: the counter has every occurrence.
        const std::lock_guard lock(log_mutex_);
        const auto now = Clock::now();
        auto& last = last_logged_[std::string(reason)];
        if (now - last >= std::chrono::seconds(1)) {
            last = now;
            spdlog::warn("frame not reduced reason={} detail=\"{}\"", reason, detail);
        }
    }

    Result<void> receive_loop(const runtime::StopToken& stop) {
        while (!stop.stop_requested()) {
            auto received = input_->receive(kPollInterval);
            if (!received) {
                return tl::unexpected(received.error().with_context("endpoints.frames_in"));
            }
            if (*received) {
                handle(std::move(**received), stop);
            }
            if (auto drained = drain_control(); !drained) {
                return drained;
            }
            export_link_bytes();
            for (const PendingAck& pending : acks_.take()) {
                if (auto acked = input_->ack(pending.run_id, pending.sequence, pending.status);
                    !acked) {
                    return tl::unexpected(acked.error().with_context("ack"));
                }
            }
        }
        return {};
    }

    // The link's byte counts as metrics (the receive stage owns the link).
    void export_link_bytes() {
        const std::uint64_t received = input_->bytes_received();
        const std::uint64_t sent = input_->bytes_sent();
        metrics_.bytes_received.increment(static_cast<double>(received - link_bytes_received_));
        metrics_.bytes_sent.increment(static_cast<double>(sent - link_bytes_sent_));
        link_bytes_received_ = received;
        link_bytes_sent_ = sent;
        const std::uint64_t dropped = input_->control_dropped();
        metrics_.control_dropped.increment(static_cast<double>(dropped - link_control_dropped_));
        link_control_dropped_ = dropped;
    }

    Result<void> drain_control() {
        while (true) {
            auto received = transport::receive(control_, milliseconds{0});
            if (!received) {
                return tl::unexpected(received.error().with_context("endpoints.control_in"));
            }
            if (!*received) {
                return {};
            }
            metrics_.bytes_received.increment(static_cast<double>(transport::size_of(**received)));
            auto decoded = transport::decode(std::move(**received));
            if (!decoded) {
                metrics_.rejected.with(transport::to_string(decoded.error().reason)).increment();
                rejections_.log(decoded.error());
                continue;
            }
            if (auto* start = std::get_if<transport::RunStartMessage>(&*decoded)) {
                on_run_start(start->start);
            } else if (auto* end = std::get_if<transport::RunEndMessage>(&*decoded)) {
                // Jobs in the queue keep their integrator; the calibration of the run goes.
                runs_.erase(end->end.run_id());
                if (std::find(ended_.begin(), ended_.end(), end->end.run_id()) != ended_.end()) {
                    continue;  // a repeated RunEnd (ingest's run_end_repeats)
                }
                ended_.push_back(end->end.run_id());
                if (ended_.size() > kEndedRunsKept) {
                    ended_.pop_front();
                }
            }
        }
    }

    void handle(transport::DecodeResult decoded, const runtime::StopToken& stop) {
        if (!decoded) {
            metrics_.rejected.with(transport::to_string(decoded.error().reason)).increment();
            rejections_.log(decoded.error());
            return;
        }
        if (auto* start = std::get_if<transport::RunStartMessage>(&*decoded)) {
            on_run_start(start->start);
            return;
        }
        if (auto* frame = std::get_if<transport::FrameMessage>(&*decoded)) {
            on_frame(std::move(*frame), stop);
            return;
        }
        metrics_.rejected.with("unexpected_body").increment();
        rejections_.log("unexpected_body", fmt::format("a {} on the frames socket",
                                                       transport::message_type_name(*decoded)));
    }

    void on_run_start(const pb::RunStart& start) {
        if (runs_.contains(start.run_id()) ||
            std::find(ended_.begin(), ended_.end(), start.run_id()) != ended_.end()) {
            return;  // a repeated RunStart changes nothing (docs/protocol.md)
        }
        RunContext run;
        run.start = start;
        const pb::PoniGeometry& g = start.config().geometry();
        if (g.detector_rows() == 0 || g.detector_cols() == 0 || !(g.distance_m() > 0.0) ||
            !(g.wavelength_m() > 0.0) || !(g.pixel1_m() > 0.0) || !(g.pixel2_m() > 0.0)) {
            count_error(
                "bad_run_start",
                fmt::format("run {}: the RunStart's geometry is incomplete", start.run_id()));
            return;
        }
        run.geometry = std::make_shared<const geometry::DetectorGeometry>(transport::to_poni(g));
        run.lookup = lookups_.get(start, run.geometry, axes_of(start.config()), config_.threads());
        spdlog::info("run started run={} detector={}x{} n_q={} n_chi={}", start.run_id(),
                     g.detector_rows(), g.detector_cols(), start.config().n_q(),
                     start.config().n_chi());
        runs_.emplace(start.run_id(), std::move(run));
        // Frames that came before their RunStart.
        std::vector<transport::FrameMessage> waiting;
        std::erase_if(pending_, [&](transport::FrameMessage& frame) {
            if (frame.header.run_id() != start.run_id()) {
                return false;
            }
            waiting.push_back(std::move(frame));
            return true;
        });
        for (auto& frame : waiting) {
            on_frame(std::move(frame), context_.stop.token());
        }
    }

    void reject_frame(const transport::FrameMessage& frame, std::string_view reason,
                      const std::string& detail, bool acknowledge) {
        count_error(reason, detail);
        if (acknowledge) {
            // A frame no worker can reduce is acknowledged so that ingest does not send it
            // round the workers; analyze's counts report it missing.
            acks_.push(frame.header.run_id(), frame.header.sequence(), pb::ACK_STATUS_REJECTED);
        }
    }

    void on_frame(transport::FrameMessage frame, const runtime::StopToken& stop) {
        const std::string& run_id = frame.header.run_id();
        auto found = runs_.find(run_id);
        if (found == runs_.end()) {
            if (pending_.size() >= config_.pending_frames_max()) {
                reject_frame(frame, "pending_overflow",
                             fmt::format("run {}: no RunStart yet and {} frames already held",
                                         run_id, pending_.size()),
                             false);
                return;
            }
            pending_.push_back(std::move(frame));
            return;
        }
        RunContext& run = found->second;
        const pb::FrameKind kind = frame.header.kind();
        if (kind == pb::FRAME_KIND_DARK || kind == pb::FRAME_KIND_FLAT) {
            auto pixels = decode_pixels(frame);
            if (!pixels) {
                reject_frame(frame, "decompress", pixels.error().message, false);
                return;
            }
            auto& averager = kind == pb::FRAME_KIND_DARK ? run.darks : run.flats;
            if (auto added = averager.add(pixels->view()); !added) {
                reject_frame(frame, "integrate", added.error().message, false);
                return;
            }
            run.integrator.reset();  // the next data frame uses the new mean
            metrics_.calibration_frames.increment();
            return;
        }
        if (kind != pb::FRAME_KIND_DATA) {
            reject_frame(frame, "unsupported_kind",
                         fmt::format("run {} frame {}: {} frames are not reduced yet", run_id,
                                     frame.header.sequence(), pb::FrameKind_Name(kind)),
                         true);
            return;
        }
        const auto type = transport::to_pixel_type(frame.header.dtype());
        if (!type) {
            reject_frame(frame, "decompress", "unknown dtype", true);
            return;
        }
        if (!run.integrator || run.integrator_type != *type) {
            const auto build_start = Clock::now();
            auto built = build_integrator(run, *type, config_.threads());
            if (!built) {
                reject_frame(frame, "bad_run_start",
                             fmt::format("run {}: {}", run_id, built.error().message), true);
                return;
            }
            run.integrator = std::move(*built);
            run.integrator_type = *type;
            // What a run's first data frame waited here (docs/reduction.md).
            spdlog::info(
                "integrator ready run={} darks={} flats={} ms={:.1f}", run_id,
                run.darks.frame_count(), run.flats.frame_count(),
                std::chrono::duration<double, std::milli>(Clock::now() - build_start).count());
        }
        jobs_.push(Job{run.integrator, std::move(frame), Clock::now()}, stop);
    }

    Result<void> work(const runtime::StopToken& stop, zmq::socket_t& reduced, bool heartbeats) {
        auto next_heartbeat = Clock::now();
        while (!stop.stop_requested()) {
            if (heartbeats && Clock::now() >= next_heartbeat) {
                send_heartbeat(reduced);
                next_heartbeat = Clock::now() + milliseconds(config_.heartbeat_interval_ms());
            }
            auto job = jobs_.pop(kPollInterval);
            if (!job) {
                if (auto relayed = relay_receipts(reduced); !relayed) {
                    return relayed;
                }
                continue;
            }
            if (auto reduced_one = reduce_one(*job, reduced); !reduced_one) {
                return reduced_one;
            }
        }
        return {};
    }

    void send_heartbeat(zmq::socket_t& reduced) {
        pb::Heartbeat heartbeat;
        heartbeat.set_service("reduce");
        heartbeat.set_instance(config_.instance());
        heartbeat.set_sent_unix_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
        heartbeat.set_state(pb::SERVICE_STATE_RUNNING);
        auto parts = transport::encode_control(heartbeat);
        if (parts) {
            // A heartbeat analyze cannot take now is simply skipped.
            const std::uint64_t bytes = transport::size_of(*parts);
            if (auto sent = transport::try_send(reduced, *parts); sent && *sent) {
                metrics_.bytes_sent.increment(static_cast<double>(bytes));
            }
        }
    }

    // Only socket failures are errors; a bad frame is counted and the worker goes on.
    Result<void> reduce_one(Job& job, zmq::socket_t& reduced) {
        const auto start = Clock::now();
        const pb::FrameHeader& header = job.frame.header;
        const std::string where =
            fmt::format("run {} frame {}", header.run_id(), header.sequence());
        // RAW pixels are integrated where they lie in the message (an 8 MB copy and zero fill
        // less per frame); compressed ones, or misaligned ones, are decoded into a frame first.
        std::optional<Frame> decoded;
        std::optional<FrameView> view = raw_view(job.frame);
        if (!view) {
            auto pixels = decode_pixels(job.frame);
            if (!pixels) {
                reject_frame(job.frame, "decompress", where + ": " + pixels.error().message, true);
                return {};
            }
            decoded = std::move(*pixels);
            view = decoded->view();
        }
        reduce::CakeAccumulator sums;
        if (auto added = job.integrator->accumulate(*view, sums); !added) {
            reject_frame(job.frame, "integrate", where + ": " + added.error().message, true);
            return {};
        }
        const reduce::CakeAxes& axes = job.integrator->axes();
        pb::ReducedFrame out;
        out.set_run_id(header.run_id());
        out.set_sequence(header.sequence());
        out.set_orientation(header.orientation());
        out.set_kind(header.kind());
        out.set_n_q(static_cast<std::uint32_t>(axes.n_q));
        out.set_n_chi(static_cast<std::uint32_t>(axes.n_chi));
        out.mutable_q_axis()->set_lower(axes.q_min_inv_angstrom);
        out.mutable_q_axis()->set_upper(axes.q_max_inv_angstrom);
        out.mutable_q_axis()->set_unit("1/angstrom");
        out.mutable_chi_axis()->set_lower(-180.0);
        out.mutable_chi_axis()->set_upper(180.0);
        out.mutable_chi_axis()->set_unit("deg");
        out.set_frames_accumulated(sums.frame_count());
        out.set_worker(config_.instance());
        out.set_acquired_unix_ns(header.acquired_unix_ns());
        std::vector<zmq::message_t> parts;
        const std::pair<pb::CakeQuantity, std::span<const double>> quantities[] = {
            {pb::CAKE_QUANTITY_SIGNAL_SUM, sums.signal_sums()},
            {pb::CAKE_QUANTITY_VARIANCE_SUM, sums.variance_sums()},
            {pb::CAKE_QUANTITY_NORM_SUM, sums.norm_sums()},
            {pb::CAKE_QUANTITY_COUNT_SUM, sums.count_sums()}};
        for (const auto& [quantity, values] : quantities) {
            out.add_parts()->set_quantity(quantity);
            parts.push_back(transport::make_payload(copy_span(values)));
        }
        auto message = transport::encode_reduced(out, std::move(parts));
        if (!message) {
            reject_frame(job.frame, "integrate", where + ": " + message.error().message, true);
            return {};
        }
        const std::uint64_t bytes = transport::size_of(*message);
        auto sent = transport::send(reduced, *message, milliseconds(config_.send_timeout_ms()));
        if (!sent) {
            return tl::unexpected(sent.error().with_context("endpoints.reduced_out"));
        }
        if (!*sent) {
            // Not acknowledged: ingest sends the frame again once this worker is declared dead.
            reject_frame(job.frame, "send_timeout",
                         where + ": analyze did not accept the cake in time", false);
            return {};
        }
        metrics_.frames_reduced.increment();
        metrics_.bytes_sent.increment(static_cast<double>(bytes));
        metrics_.reduce_seconds.observe(
            std::chrono::duration<double>(Clock::now() - start).count());
        metrics_.latency_seconds.observe(
            std::chrono::duration<double>(Clock::now() - job.received_at).count());
        acks_.push(header.run_id(), header.sequence(), pb::ACK_STATUS_REDUCED);
        return relay_receipts(reduced);
    }

    // Analyze answers each ReducedFrame with a FrameAck RECEIVED on the pipe it came by; ingest
    // keeps the frame until that receipt reaches it, so they go to the receive stage to relay.
    Result<void> relay_receipts(zmq::socket_t& reduced) {
        while (true) {
            auto received = transport::receive(reduced, milliseconds{0});
            if (!received) {
                return tl::unexpected(received.error().with_context("endpoints.reduced_out"));
            }
            if (!*received) {
                return {};
            }
            metrics_.bytes_received.increment(static_cast<double>(transport::size_of(**received)));
            auto decoded = transport::decode(std::move(**received));
            if (!decoded) {
                metrics_.rejected.with(transport::to_string(decoded.error().reason)).increment();
                rejections_.log(decoded.error());
                continue;
            }
            const auto* receipt = std::get_if<transport::FrameAckMessage>(&*decoded);
            if (receipt == nullptr || receipt->ack.status() != pb::ACK_STATUS_RECEIVED) {
                metrics_.rejected.with("unexpected_body").increment();
                rejections_.log("unexpected_body", "not a FrameAck RECEIVED on the reduced socket");
                continue;
            }
            acks_.push(receipt->ack.run_id(), receipt->ack.sequence(), pb::ACK_STATUS_RECEIVED);
        }
    }

    static constexpr std::size_t kEndedRunsKept = 64;

    const cfg::ReduceConfig& config_;
    runtime::ServiceContext& context_;
    zmq::context_t& zmq_;
    const transport::SocketSecurity& security_;
    std::unique_ptr<FrameInput> input_;
    ReduceMetrics metrics_;
    zmq::socket_t control_;
    JobQueue jobs_;
    AckQueue acks_;
    // Receive stage only:
    std::map<std::string, RunContext, std::less<>> runs_;
    LookupCache lookups_;
    std::deque<std::string> ended_;
    std::vector<transport::FrameMessage> pending_;
    std::uint64_t link_bytes_received_ = 0;  // input_'s counts already exported
    std::uint64_t link_bytes_sent_ = 0;
    std::uint64_t link_control_dropped_ = 0;
    std::mutex log_mutex_;
    std::map<std::string, Clock::time_point, std::less<>> last_logged_;  // by reason
    transport::RejectionLog rejections_{"reduce"};  // decode() refusals, logged rate-limited
};

}  // namespace

std::optional<FrameView> raw_view(const transport::FrameMessage& message) {
    const pb::FrameHeader& header = message.header;
    const auto type = transport::to_pixel_type(header.dtype());
    if (header.encoding() != pb::ENCODING_RAW || !type) {
        return std::nullopt;
    }
    const FrameShape shape{header.rows(), header.cols()};
    const std::span<const std::byte> payload = transport::bytes_of(message.payload);
    const std::size_t element = pixel_size_bytes(*type);
    if (payload.size() != shape.pixel_count() * element ||
        reinterpret_cast<std::uintptr_t>(payload.data()) % element != 0) {
        return std::nullopt;  // decode_pixels() names the size mismatch; misaligned: copied
    }
    FrameView view;
    view.shape = shape;
    if (header.exposure_s() > 0.0) {
        view.exposure_s = header.exposure_s();
    }
    const auto as = [&]<class T>(T /*tag*/) {
        // The payload holds pixel_count() values of T at an address aligned for T.
        view.pixels =
            std::span<const T>(reinterpret_cast<const T*>(payload.data()), shape.pixel_count());
    };
    switch (*type) {
        case PixelType::kUint8:
            as(std::uint8_t{});
            break;
        case PixelType::kUint16:
            as(std::uint16_t{});
            break;
        case PixelType::kUint32:
            as(std::uint32_t{});
            break;
        case PixelType::kInt8:
            as(std::int8_t{});
            break;
        case PixelType::kInt16:
            as(std::int16_t{});
            break;
        case PixelType::kInt32:
            as(std::int32_t{});
            break;
        case PixelType::kFloat32:
            as(float{});
            break;
        case PixelType::kFloat64:
            as(double{});
            break;
    }
    return view;
}

Result<Frame> decode_pixels(const transport::FrameMessage& message) {
    const pb::FrameHeader& header = message.header;
    const auto type = transport::to_pixel_type(header.dtype());
    if (!type) {
        return fail(ErrorCode::kInvalidArgument, "FrameHeader.dtype {} is not a pixel type",
                    static_cast<int>(header.dtype()));
    }
    const FrameShape shape{header.rows(), header.cols()};
    const std::size_t element = pixel_size_bytes(*type);
    Frame frame;
    frame.shape = shape;
    frame.index_in_source = header.sequence();
    if (header.exposure_s() > 0.0) {
        frame.exposure_s = header.exposure_s();
    }
    // Sizes first: a small message claiming a huge frame must not make us allocate it.
    const std::span<const std::byte> payload = transport::bytes_of(message.payload);
    const std::size_t frame_bytes = shape.pixel_count() * element;
    if (header.encoding() == pb::ENCODING_RAW && payload.size() != frame_bytes) {
        return fail(ErrorCode::kCorrupt, "RAW payload holds {} bytes, {}x{} pixels need {}",
                    payload.size(), shape.rows, shape.cols, frame_bytes);
    }
    if (header.encoding() != pb::ENCODING_RAW &&
        frame_bytes > (payload.size() + 1) * codec::kLz4MaxExpansion) {
        return fail(ErrorCode::kCorrupt,
                    "{} compressed bytes cannot decode to a {}x{} frame of {} bytes",
                    payload.size(), shape.rows, shape.cols, frame_bytes);
    }
    // Allocate pixels of the header's type and decode straight into their bytes.
    std::span<std::byte> out;
    const auto allocate = [&]<class T>(std::vector<T>&& pixels) {
        auto& stored = frame.pixels.emplace<std::vector<T>>(std::move(pixels));
        out = std::as_writable_bytes(std::span<T>(stored));
    };
    switch (*type) {
        case PixelType::kUint8:
            allocate(std::vector<std::uint8_t>(shape.pixel_count()));
            break;
        case PixelType::kUint16:
            allocate(std::vector<std::uint16_t>(shape.pixel_count()));
            break;
        case PixelType::kUint32:
            allocate(std::vector<std::uint32_t>(shape.pixel_count()));
            break;
        case PixelType::kInt8:
            allocate(std::vector<std::int8_t>(shape.pixel_count()));
            break;
        case PixelType::kInt16:
            allocate(std::vector<std::int16_t>(shape.pixel_count()));
            break;
        case PixelType::kInt32:
            allocate(std::vector<std::int32_t>(shape.pixel_count()));
            break;
        case PixelType::kFloat32:
            allocate(std::vector<float>(shape.pixel_count()));
            break;
        case PixelType::kFloat64:
            allocate(std::vector<double>(shape.pixel_count()));
            break;
    }
    Result<void> decoded;
    if (header.encoding() == pb::ENCODING_RAW) {
        std::memcpy(out.data(), payload.data(), out.size());
    } else if (header.encoding() == pb::ENCODING_BSLZ4) {
        decoded = codec::bslz4_decompress_into(payload, element, out);
    } else if (header.encoding() == pb::ENCODING_LZ4 ||
               pb::Encoding_Name(header.encoding()) == "ENCODING_LZ4_HDF5") {
        // A plain LZ4 block never starts with a zero byte; the HDF5 framing's size header does.
        auto framing = codec::read_filter_header(payload);
        const bool hdf5 = !payload.empty() && payload[0] == std::byte{0} && framing &&
                          framing->uncompressed_size_bytes == out.size();
        decoded = hdf5 ? codec::lz4_hdf5_decompress_into(payload, out)
                       : codec::lz4_decompress_block_into(payload, out);
    } else {
        return fail(ErrorCode::kUnsupported, "FrameHeader.encoding {} is not supported",
                    pb::Encoding_Name(header.encoding()));
    }
    if (!decoded) {
        return tl::unexpected(decoded.error());
    }
    return frame;
}

Result<std::unique_ptr<FrameInput>> open_worker_link(zmq::context_t& context,
                                                     const cfg::ReduceConfig& config,
                                                     const transport::SocketSecurity& security) {
    transport::WorkerLinkOptions options;
    auto keys = security.keys_for(config.endpoints().frames_in().address());
    if (!keys) {
        return tl::unexpected(keys.error().with_context("endpoints.frames_in"));
    }
    options.curve = std::move(*keys);
    options.heartbeat_interval = milliseconds(config.heartbeat_interval_ms());
    options.send_timeout = milliseconds(config.send_timeout_ms());
    options.send_hwm = static_cast<int>(config.endpoints().frames_in().send_hwm_messages());
    options.receive_hwm = static_cast<int>(config.endpoints().frames_in().receive_hwm_messages());
    auto link =
        transport::WorkerLink::open(context, config.endpoints().frames_in().address(),
                                    config.instance(), config.queue_capacity_frames(), options);
    if (!link) {
        return tl::unexpected(link.error().with_context("endpoints.frames_in"));
    }
    return std::unique_ptr<FrameInput>(std::make_unique<WorkerLinkInput>(std::move(*link)));
}

Result<void> run_with_input(const cfg::ReduceConfig& config, runtime::ServiceContext& context,
                            zmq::context_t& zmq_context, const transport::SocketSecurity& security,
                            std::unique_ptr<FrameInput> input) {
    auto metrics = register_metrics(context.metrics);
    if (!metrics) {
        return tl::unexpected(metrics.error());
    }
    ReduceService service(config, context, zmq_context, security, std::move(input),
                          std::move(*metrics));
    return service.run();
}

Result<void> run(const cfg::ReduceConfig& config, runtime::ServiceContext& context) {
    zmq::context_t zmq_context;
    auto security = transport::SocketSecurity::load(config.security());
    if (!security) {
        return tl::unexpected(security.error());
    }
    if (auto started = security->start(zmq_context); !started) {
        return tl::unexpected(started.error().with_context("security"));
    }
    auto input = open_worker_link(zmq_context, config, *security);
    if (!input) {
        return tl::unexpected(input.error());
    }
    return run_with_input(config, context, zmq_context, *security, std::move(*input));
}

}  // namespace anisoflow::reducer
