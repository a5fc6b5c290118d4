#include "analyze_service.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <deque>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>

#include "anisoflow/core/clock.hpp"
#include "anisoflow/metrics/metrics.hpp"
#include "anisoflow/transport/archive_receipts.hpp"
#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/rejection_log.hpp"
#include "anisoflow/transport/seen_sequences.hpp"
#include "anisoflow/transport/socket.hpp"
#include "anisoflow/transport/socket_security.hpp"

namespace anisoflow::analyzer {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr double kMetresPerAngstrom = 1e-10;
// Longest wait on the sockets before the runs' timers are looked at again.
constexpr milliseconds kPollInterval{20};
// Reduced frames held for runs whose RunStart has not arrived yet (the PUB/SUB slow joiner).
constexpr std::size_t kPendingReducedMax = 1024;
// Run ids remembered after their final result, so that late frames are counted, not re-opened.
constexpr std::size_t kFinishedRunsKept = 256;
// Unseen sequence numbers listed in the final log line; the metric counts all missing frames.
constexpr std::size_t kMissingListedMax = 32;
// Bounds of the analysis-time histogram, seconds.
const std::vector<double> kAnalysisSecondsBuckets = {0.01, 0.02, 0.05, 0.1,  0.2, 0.5,
                                                     1.0,  2.0,  5.0,  10.0, 30.0};
// Bounds of the latency histograms, seconds: a partial result comes every recompute_interval_ms
// (2 s by default), so 1 ms to 60 s.
const std::vector<double> kLatencySecondsBuckets = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2,
                                                    0.5,   1.0,   2.0,   5.0,  10.0, 30.0, 60.0};
constexpr double kSecondsPerNanosecond = 1e-9;

transport::SocketOptions socket_options(const cfg::Socket& socket) {
    transport::SocketOptions options;
    options.send_hwm = static_cast<int>(socket.send_hwm_messages());
    options.receive_hwm = static_cast<int>(socket.receive_hwm_messages());
    return options;
}

pb::Mechanism to_proto(physics::Mechanism mechanism) {
    switch (mechanism) {
        case physics::Mechanism::kBondStretching:
            return pb::MECHANISM_BOND_STRETCHING;
        case physics::Mechanism::kBondRotation:
            return pb::MECHANISM_BOND_ROTATION;
        case physics::Mechanism::kIsotropic:
            return pb::MECHANISM_ISOTROPIC;
        case physics::Mechanism::kUndetermined:
            return pb::MECHANISM_UNDETERMINED;
    }
    return pb::MECHANISM_UNDETERMINED;
}

// One curve part: x, value and variance columns one after the other (variance NaN if unknown).
void add_curve(ResultMessageParts& out, pb::CurveKind kind, const std::vector<double>& x,
               const std::vector<double>& value, const std::vector<double>& variance) {
    const std::size_t n = x.size();
    std::vector<double> columns(3 * n, std::numeric_limits<double>::quiet_NaN());
    std::copy_n(x.begin(), n, columns.begin());
    std::copy_n(value.begin(), std::min(n, value.size()), columns.begin() + static_cast<long>(n));
    std::copy_n(variance.begin(), std::min(n, variance.size()),
                columns.begin() + static_cast<long>(2 * n));
    pb::CurveDescriptor* descriptor = out.header.add_curves();
    descriptor->set_kind(kind);
    descriptor->set_n_points(n);
    out.curves.push_back(transport::make_payload(std::move(columns)));
}

// What analyze knows of one run.
struct RunState {
    std::optional<pb::RunStart> start;
    std::optional<physics::AnalysisSettings> settings;
    std::optional<physics::AnisotropyAnalyzer> analyzer;
    reduce::CakeAccumulator p;
    reduce::CakeAccumulator n;
    transport::SeenSequences sequences;              // data frames kept (as ranges)
    std::vector<transport::ReducedMessage> pending;  // before RunStart
    bool changed = false;                            // frames merged since the last result
    Clock::time_point last_result{};                 // when the analysis of the last result began
    std::optional<pb::RunEnd> end;
    Clock::time_point drain_deadline{};
    Clock::time_point last_announced{};  // the last RunStart of the run from ingest
    bool orphaned = false;               // ended here: ingest stopped announcing it
    // Cakes merged since the last result: when each arrived, and its frame's acquisition time
    // (0 = unknown), for the latency histograms observed when the next result goes out.
    std::vector<Clock::time_point> unpublished_received;
    std::vector<std::int64_t> unpublished_acquired_unix_ns;
};

struct AnalyzeMetrics {
    metrics::Counter frames_merged;
    metrics::Counter duplicates;
    metrics::Counter frames_missing;
    metrics::Counter results_published;
    metrics::Histogram analysis_seconds;
    metrics::CounterFamily errors;
    metrics::CounterFamily rejected;
    metrics::Counter frames_lost;
    metrics::Counter bytes_received;
    metrics::Counter bytes_sent;
    metrics::Histogram result_latency;
    metrics::Histogram frame_to_result;
    metrics::Gauge unreceipted;
    metrics::Counter resent;
    metrics::Counter sessions;
};

Result<AnalyzeMetrics> register_metrics(metrics::Registry& registry) {
    auto merged = registry.counter("anisoflow_analyze_frames_merged_total",
                                   "reduced data frames merged into a run's sums");
    auto duplicates = registry.counter("anisoflow_analyze_frames_duplicate_total",
                                       "reduced frames of a (run, sequence) already merged");
    auto missing = registry.counter("anisoflow_analyze_frames_missing_total",
                                    "data frames RunEnd reported sent that never arrived");
    auto results = registry.counter("anisoflow_analyze_results_published_total",
                                    "AnalysisResult messages published, partial and final");
    auto seconds =
        registry.histogram("anisoflow_analyze_analysis_duration_seconds",
                           "one anisotropy analysis of a run's sums", kAnalysisSecondsBuckets);
    auto errors = registry.counter_family(
        "anisoflow_analyze_errors_total", "messages or analyses that failed, by reason", "reason",
        {"bad_run_start", "layout_mismatch", "missing_sums", "not_data", "late_frame",
         "pending_overflow", "analysis", "archive_send_timeout", "archive_send", "receipt_dropped",
         "run_orphaned", "archive_unreceipted"});
    auto rejected = registry.counter_family("anisoflow_analyze_messages_rejected_total",
                                            "messages dropped by decode(), by reason", "reason");
    auto lost = registry.counter(
        "anisoflow_analyze_frames_lost_total",
        "data frames RunEnd reported sent that are not in the run's final result (must stay 0)");
    auto bytes_received =
        registry.counter("anisoflow_analyze_bytes_received_total",
                         "bytes received: cakes and heartbeats from reduce, control messages");
    auto bytes_sent = registry.counter(
        "anisoflow_analyze_bytes_sent_total",
        "bytes sent: results, the archive feed, receipts to the workers, heartbeats");
    auto result_latency =
        registry.histogram("anisoflow_analyze_result_latency_seconds",
                           "from a cake's arrival to the first result that includes it published",
                           kLatencySecondsBuckets);
    auto frame_to_result = registry.histogram(
        "anisoflow_analyze_frame_to_result_seconds",
        "from a frame's acquisition (FrameHeader.acquired_unix_ns) to the first result that "
        "includes it published",
        kLatencySecondsBuckets);
    auto unreceipted = registry.gauge(
        "anisoflow_analyze_archive_unreceipted_messages",
        "messages sent to archive that no archive receipt covers yet, kept to send again");
    auto resent = registry.counter(
        "anisoflow_analyze_archive_resent_total",
        "messages sent again to a restarted archive (its receipts came from a new session)");
    auto sessions = registry.counter(
        "anisoflow_analyze_archive_sessions_total",
        "archive processes seen in the receipts (the first, then one per restart of archive)");
    if (!merged || !duplicates || !missing || !results || !seconds || !errors || !rejected ||
        !lost || !bytes_received || !bytes_sent || !result_latency || !frame_to_result ||
        !unreceipted || !resent || !sessions) {
        return fail(ErrorCode::kInvalidArgument, "cannot register the analyze metrics");
    }
    return AnalyzeMetrics{*merged,         *duplicates, *missing,        *results,
                          *seconds,        *errors,     *rejected,       *lost,
                          *bytes_received, *bytes_sent, *result_latency, *frame_to_result,
                          *unreceipted,    *resent,     *sessions};
}

class AnalyzeService {
  public:
    AnalyzeService(const cfg::AnalyzeConfig& config, runtime::ServiceContext& context,
                   AnalyzeMetrics metrics)
        : config_(config), context_(context), metrics_(std::move(metrics)) {}

    Result<void> run() {
        const auto& endpoints = config_.endpoints();
        const std::pair<const char*, const cfg::Socket*> required[] = {
            {"endpoints.archive_out", &endpoints.archive_out()}};
        for (const auto& [key, socket] : required) {
            if (socket->address().empty() || socket->send_hwm_messages() == 0) {
                return fail(ErrorCode::kInvalidArgument, "{}: address and send_hwm_messages needed",
                            key);
            }
        }
        if (config_.archive_send_timeout_ms() == 0) {
            return fail(ErrorCode::kInvalidArgument, "archive_send_timeout_ms: 0; at least 1 ms");
        }
        auto security = transport::SocketSecurity::load(config_.security());
        if (!security) {
            return tl::unexpected(security.error());
        }
        security_ = std::move(*security);
        if (auto started = security_.start(zmq_); !started) {
            return tl::unexpected(started.error().with_context("security"));
        }
        // A ROUTER, not a PULL: each ReducedFrame is answered with a receipt on its pipe.
        auto reduced =
            security_.open(zmq_, zmq::socket_type::router, endpoints.reduced_in().address(),
                           socket_options(endpoints.reduced_in()));
        auto control = security_.open(zmq_, zmq::socket_type::sub, endpoints.control_in().address(),
                                      socket_options(endpoints.control_in()));
        auto results =
            security_.open(zmq_, zmq::socket_type::pub, endpoints.results_out().address(),
                           socket_options(endpoints.results_out()));
        auto archive =
            security_.open(zmq_, zmq::socket_type::push, endpoints.archive_out().address(),
                           socket_options(endpoints.archive_out()));
        for (const auto* opened : {&reduced, &control, &results, &archive}) {
            if (!*opened) {
                return tl::unexpected(opened->error());
            }
        }
        reduced_ = std::move(*reduced);
        try {
            // A receipt that cannot go (worker gone, pipe full) is an error we count, not a
            // silent drop.
            reduced_.set(zmq::sockopt::router_mandatory, true);
        } catch (const zmq::error_t& error) {
            return fail(ErrorCode::kIo, "endpoints.reduced_in: {}", error.what());
        }
        control_ = std::move(*control);
        results_ = std::move(*results);
        archive_ = std::move(*archive);
        if (const cfg::Socket& in = endpoints.receipts_in(); !in.address().empty()) {
            if (config_.max_unreceipted_messages() == 0) {
                return fail(ErrorCode::kInvalidArgument,
                            "max_unreceipted_messages: 0; at least 1 with endpoints.receipts_in");
            }
            auto receipts =
                security_.open(zmq_, zmq::socket_type::sub, in.address(), socket_options(in));
            if (!receipts) {
                return tl::unexpected(receipts.error().with_context("endpoints.receipts_in"));
            }
            receipts_ = std::move(*receipts);
            unreceipted_.emplace(transport::ReceiptFeed::kArchiveFeed);
        }
        spdlog::info("ready recompute_interval_ms={} drain_timeout_ms={}",
                     config_.recompute_interval_ms(), config_.drain_timeout_ms());

        const runtime::StopToken stop = context_.stop.token();
        auto next_heartbeat = Clock::now();
        while (!stop.stop_requested()) {
            // While archive holds messages back, or has not receipted max_unreceipted_messages
            // of them, cakes wait in the workers (backpressure) and the loop waits for room on
            // the archive feed, or for receipts, instead.
            // Only sockets that are there: zmq_poll reads an item without a socket as a file
            // descriptor (fd 0, stdin, when left zero).
            const bool held = !archive_backlog_.empty();
            std::array<zmq::pollitem_t, 3> items{};
            std::size_t polled = 0;
            items[polled++] = zmq::pollitem_t{control_.handle(), 0, ZMQ_POLLIN, 0};
            if (held) {
                items[polled++] = zmq::pollitem_t{archive_.handle(), 0, ZMQ_POLLOUT, 0};
            } else if (!unreceipted_full()) {
                items[polled++] = zmq::pollitem_t{reduced_.handle(), 0, ZMQ_POLLIN, 0};
            }
            if (receipts_.handle() != nullptr) {
                items[polled++] = zmq::pollitem_t{receipts_.handle(), 0, ZMQ_POLLIN, 0};
            }
            try {
                zmq::poll(items.data(), polled, poll_timeout(next_heartbeat));
            } catch (const zmq::error_t& error) {
                if (error.num() != EINTR) {  // a signal (SIGTERM): the loop looks at `stop`
                    return fail(ErrorCode::kIo, "poll: {}", error.what());
                }
            }
            // Control first: a RunStart lets the cakes that follow be merged at once.
            if (auto drained = drain(control_, "endpoints.control_in", false); !drained) {
                return drained;
            }
            if (auto drained = drain_receipts(); !drained) {
                return drained;
            }
            flush_archive();
            if (archive_backlog_.empty() && !unreceipted_full()) {
                if (auto drained = drain(reduced_, "endpoints.reduced_in", true); !drained) {
                    return drained;
                }
            }
            step_runs();
            if (Clock::now() >= next_heartbeat) {
                send_heartbeat();
                next_heartbeat = Clock::now() + milliseconds(config_.heartbeat_interval_ms());
            }
        }
        return {};
    }

  private:
    // How long the sockets may be waited on: until the next message, at most kPollInterval, and
    // no later than the moment a run's pending result falls due (its last result is
    // recompute_interval_ms old), so that a due result is not held back by the poll.
    milliseconds poll_timeout(Clock::time_point next_heartbeat) const {
        const auto now = Clock::now();
        Clock::time_point wake = std::min(now + kPollInterval, next_heartbeat);
        const milliseconds interval(config_.recompute_interval_ms());
        for (const auto& [id, run] : runs_) {
            if (run.start && run.changed && analysable(run)) {
                wake = std::min(wake, run.last_result + interval);
            }
        }
        if (wake <= now) {
            return milliseconds{0};
        }
        // Rounded up: waking a little early would only poll once more for nothing.
        return std::chrono::ceil<milliseconds>(wake - now);
    }

    // `routed`: part 0 is the sending worker's routing id (the reduced ROUTER).
    Result<void> drain(zmq::socket_t& socket, const char* key, bool routed) {
        // Bounded, so that a flood on one socket cannot starve the timers; cakes stop as soon as
        // archive holds one back (each merged cake is forwarded to archive).
        for (int i = 0; i < 256 && (!routed || (archive_backlog_.empty() && !unreceipted_full()));
             ++i) {
            auto received = transport::receive(socket, milliseconds{0});
            if (!received) {
                return tl::unexpected(received.error().with_context(key));
            }
            if (!*received) {
                break;
            }
            transport::Multipart& parts = **received;
            metrics_.bytes_received.increment(static_cast<double>(transport::size_of(parts)));
            std::optional<zmq::message_t> peer;
            if (routed && !parts.empty()) {
                peer = std::move(parts.front());
                parts.erase(parts.begin());
            }
            auto decoded = transport::decode(std::move(parts));
            if (!decoded) {
                metrics_.rejected.with(transport::to_string(decoded.error().reason)).increment();
                rejections_.log(decoded.error());
                continue;
            }
            if (auto* start = std::get_if<transport::RunStartMessage>(&*decoded)) {
                on_run_start(start->start);
            } else if (auto* end = std::get_if<transport::RunEndMessage>(&*decoded)) {
                on_run_end(end->end);
            } else if (auto* cake = std::get_if<transport::ReducedMessage>(&*decoded)) {
                const std::string run_id = cake->header.run_id();
                const std::uint64_t sequence = cake->header.sequence();
                if (on_reduced(std::move(*cake)) && peer) {
                    send_receipt(*peer, run_id, sequence);
                }
            } else if (!std::holds_alternative<transport::HeartbeatMessage>(*decoded) &&
                       !std::holds_alternative<transport::RunEventMessage>(*decoded)) {
                // Heartbeats and run control's events carry nothing analyze acts on; anything
                // else does not belong on these sockets (docs/protocol.md, "Sockets").
                metrics_.rejected.with("unexpected_body").increment();
                rejections_.log(
                    "unexpected_body",
                    fmt::format("a {} on {}", transport::message_type_name(*decoded), key));
            }
        }
        return {};
    }

    void count_error(std::string_view reason, const std::string& detail) {
        metrics_.errors.with(reason).increment();
        const auto now = Clock::now();
        auto& last = last_logged_[std::string(reason)];
        if (now - last >= std::chrono::seconds(1)) {
            last = now;
            spdlog::warn("counted error reason={} detail=\"{}\"", reason, detail);
        }
    }

    bool finished(const std::string& run_id) const {
        return std::find(finished_.begin(), finished_.end(), run_id) != finished_.end();
    }

    // Everything for archive goes out in order through archive_backlog_. A full feed (archive
    // slow, stalled or restarting) is never a drop: the message waits, and while anything waits
    // analyze takes no more cakes, so the workers and then ingest and its source are held back
    // (docs/faults.md). Socket errors are counted and the message is dropped.
    void forward(transport::Multipart parts) {
        archive_backlog_.push_back(std::move(parts));
        flush_archive();
    }

    // With receipts: at max_unreceipted_messages kept, no more cakes are taken (the workers,
    // then ingest and its source, are held back) until archive receipts some.
    bool unreceipted_full() {
        if (!unreceipted_ || unreceipted_->size() < config_.max_unreceipted_messages()) {
            unreceipted_full_since_ = {};
            return false;
        }
        const auto now = Clock::now();
        if (unreceipted_full_since_ == Clock::time_point{}) {
            unreceipted_full_since_ = now;
        } else if (now - unreceipted_full_since_ >=
                   milliseconds(config_.archive_send_timeout_ms())) {
            count_error("archive_unreceipted",
                        fmt::format("archive has stored none of the last {} messages for {} ms "
                                    "(down, or its receipts do not reach endpoints.receipts_in); "
                                    "the workers are held back",
                                    unreceipted_->size(), config_.archive_send_timeout_ms()));
            unreceipted_full_since_ = now;
        }
        return true;
    }

    // Archive's receipts (docs/protocol.md, "Archive receipts"): what they cover is forgotten;
    // receipts of a new archive process (restarted) mean that what is kept may have died with
    // the old one, so it all goes again, ahead of what waits and in the order it first went.
    Result<void> drain_receipts() {
        if (!unreceipted_) {
            return {};
        }
        const transport::ReceiptsTaken taken =
            transport::take_receipts(receipts_, *unreceipted_, archive_backlog_,
                                     [this](std::string_view reason, std::string_view error) {
                                         metrics_.rejected.with(reason).increment();
                                         rejections_.log(reason, error);
                                     });
        metrics_.bytes_received.increment(static_cast<double>(taken.bytes));
        metrics_.sessions.increment(static_cast<double>(taken.new_sessions));
        if (taken.sent_again > 0) {
            spdlog::info(
                "archive session {:016x}: sending again {} messages it may not have stored",
                taken.new_session, taken.sent_again);
            metrics_.resent.increment(static_cast<double>(taken.sent_again));
        }
        metrics_.unreceipted.set(static_cast<double>(unreceipted_->size()));
        if (taken.error) {
            return tl::unexpected(taken.error->with_context("endpoints.receipts_in"));
        }
        return {};
    }

    // Sends what waits for archive until the feed is full; warns every archive_send_timeout_ms
    // while it holds the chain back. With receipts, each message sent is kept until archive
    // has stored it.
    void flush_archive() {
        while (!archive_backlog_.empty()) {
            transport::Multipart& parts = archive_backlog_.front();
            const std::uint64_t bytes = transport::size_of(parts);
            std::optional<transport::Multipart> shared;
            if (unreceipted_) {
                shared = transport::share(parts);  // the send empties `parts`
            }
            auto sent = transport::try_send(archive_, parts);
            if (!sent) {
                count_error("archive_send", sent.error().message);
                archive_backlog_.pop_front();
                continue;
            }
            if (!*sent) {
                const auto now = Clock::now();
                if (archive_blocked_since_ == Clock::time_point{}) {
                    archive_blocked_since_ = now;
                } else if (now - archive_blocked_since_ >=
                           milliseconds(config_.archive_send_timeout_ms())) {
                    count_error(
                        "archive_send_timeout",
                        fmt::format("archive has not taken a message for {} ms; {} wait, "
                                    "and the workers are held back",
                                    config_.archive_send_timeout_ms(), archive_backlog_.size()));
                    archive_blocked_since_ = now;
                }
                return;
            }
            metrics_.bytes_sent.increment(static_cast<double>(bytes));
            archive_backlog_.pop_front();
            archive_blocked_since_ = {};
            if (shared) {
                unreceipted_->keep(std::move(*shared));
                metrics_.unreceipted.set(static_cast<double>(unreceipted_->size()));
            }
        }
    }

    void on_run_start(const pb::RunStart& start) {
        if (finished(start.run_id())) {
            return;
        }
        RunState& run = runs_[start.run_id()];
        run.last_announced = Clock::now();
        if (run.start) {
            return;  // a repeated RunStart changes nothing (but says ingest still runs it)
        }
        auto settings = analysis_settings(start.config());
        if (!settings) {
            count_error("bad_run_start", start.run_id() + ": " + settings.error().message);
            runs_.erase(start.run_id());
            return;
        }
        auto analyzer = physics::AnisotropyAnalyzer::create(*settings);
        if (!analyzer) {
            count_error("bad_run_start", start.run_id() + ": " + analyzer.error().message);
            runs_.erase(start.run_id());
            return;
        }
        run.start = start;
        run.settings = std::move(*settings);
        run.analyzer.emplace(std::move(*analyzer));
        spdlog::info("run started run={} mode={}", start.run_id(),
                     pb::ExtractionMode_Name(start.config().mode()));
        if (auto parts = transport::encode_control(start)) {
            forward(std::move(*parts));
        }
        auto pending = std::exchange(run.pending, {});
        for (auto& cake : pending) {
            (void)on_reduced(std::move(cake));  // receipted when they arrived
        }
    }

    void on_run_end(const pb::RunEnd& end) {
        auto found = runs_.find(end.run_id());
        if (found == runs_.end() || found->second.end) {
            return;
        }
        found->second.end = end;
        found->second.drain_deadline = Clock::now() + milliseconds(config_.drain_timeout_ms());
    }

    // Tells the worker that sent a ReducedFrame that analyze has it; the worker relays it to
    // ingest, which then forgets the frame (docs/protocol.md, "Acknowledged dispatch").
    void send_receipt(const zmq::message_t& peer, const std::string& run_id,
                      std::uint64_t sequence) {
        pb::FrameAck receipt;
        receipt.set_run_id(run_id);
        receipt.set_sequence(sequence);
        receipt.set_status(pb::ACK_STATUS_RECEIVED);
        auto encoded = transport::encode_control(receipt);
        if (!encoded) {
            count_error("receipt_dropped", encoded.error().message);
            return;
        }
        transport::Multipart message;
        message.emplace_back(peer.data(), peer.size());
        for (auto& part : *encoded) {
            message.push_back(std::move(part));
        }
        // Never blocks: an unsent receipt costs a duplicate cake later, not a stalled analyze.
        const std::uint64_t bytes = transport::size_of(message);
        auto sent = transport::try_send(reduced_, message);
        if (sent && *sent) {
            metrics_.bytes_sent.increment(static_cast<double>(bytes));
        } else {
            count_error("receipt_dropped",
                        fmt::format("run {} frame {}: {}", run_id, sequence,
                                    sent ? "the worker's pipe is full" : sent.error().message));
        }
    }

    // false when the cake was dropped unseen (no room before its RunStart): no receipt then,
    // so that the frame is sent again should its worker die. Everything else is receipted,
    // duplicates and cakes analyze refuses included: sending those again would not help.
    bool on_reduced(transport::ReducedMessage cake) {
        const pb::ReducedFrame& h = cake.header;
        if (finished(h.run_id())) {
            count_error("late_frame", fmt::format("run {} frame {} came after the final result",
                                                  h.run_id(), h.sequence()));
            return true;
        }
        // Looked up, not inserted, until the cake is held: a flood of unknown run ids must not
        // grow runs_ past the kPendingReducedMax cakes it may hold.
        auto found = runs_.find(h.run_id());
        if (found == runs_.end() || !found->second.start) {
            std::size_t held = 0;
            for (const auto& [id, other] : runs_) {
                held += other.pending.size();
            }
            if (held >= kPendingReducedMax) {
                count_error(
                    "pending_overflow",
                    fmt::format("run {}: no RunStart yet and {} cakes held", h.run_id(), held));
                return false;
            }
            runs_[h.run_id()].pending.push_back(std::move(cake));
            return true;
        }
        RunState& run = found->second;
        if (h.kind() != pb::FRAME_KIND_DATA ||
            (h.orientation() != pb::ORIENTATION_P && h.orientation() != pb::ORIENTATION_N)) {
            count_error("not_data", fmt::format("run {} frame {}: only data cakes are merged",
                                                h.run_id(), h.sequence()));
            return true;
        }
        if (run.sequences.contains(h.sequence())) {
            metrics_.duplicates.increment();
            return true;
        }
        const pb::ExperimentConfig& config = run.start->config();
        if (h.n_q() != config.n_q() || h.n_chi() != config.n_chi() ||
            h.q_axis().lower() != config.q_min_inv_angstrom() ||
            h.q_axis().upper() != config.q_max_inv_angstrom()) {
            count_error("layout_mismatch",
                        fmt::format("run {} frame {}: cake {}x{} on [{}, {}] is not the run's",
                                    h.run_id(), h.sequence(), h.n_chi(), h.n_q(),
                                    h.q_axis().lower(), h.q_axis().upper()));
            return true;
        }
        auto sums = sums_of(cake);
        if (!sums) {
            count_error("missing_sums", fmt::format("run {} frame {}: {}", h.run_id(), h.sequence(),
                                                    sums.error().message));
            return true;
        }
        reduce::CakeAccumulator& target = h.orientation() == pb::ORIENTATION_P ? run.p : run.n;
        if (auto merged = target.merge(*sums); !merged) {
            count_error("layout_mismatch", merged.error().message);
            return true;
        }
        run.sequences.insert(h.sequence());
        run.changed = true;
        run.unpublished_received.push_back(Clock::now());
        run.unpublished_acquired_unix_ns.push_back(h.acquired_unix_ns());
        metrics_.frames_merged.increment();
        const pb::ReducedFrame header = cake.header;
        if (auto parts = transport::encode_reduced(header, std::move(cake.parts))) {
            forward(std::move(*parts));
        }
        return true;
    }

    bool analysable(const RunState& run) const {
        return run.p.frame_count() > 0 &&
               (run.settings->mode == physics::ExtractionMode::kSingle || run.n.frame_count() > 0);
    }

    // Analyses the run's sums and publishes the result (and feeds it to archive); false when the
    // analysis failed and nothing was published.
    bool publish(const std::string& run_id, RunState& run, bool is_final) {
        const auto start = Clock::now();
        const reduce::Cake cake_p = run.p.finish();
        std::optional<reduce::Cake> cake_n;
        if (run.settings->mode == physics::ExtractionMode::kPn) {
            cake_n = run.n.finish();
        }
        auto result = run.analyzer->analyse(cake_p, cake_n ? &*cake_n : nullptr);
        metrics_.analysis_seconds.observe(
            std::chrono::duration<double>(Clock::now() - start).count());
        run.changed = false;
        // The interval runs from the start of this analysis: measured from its end, a cake that
        // comes one interval after the previous one would wait the analysis time again.
        run.last_result = start;
        if (!result) {
            count_error("analysis", run_id + ": " + result.error().message);
            return false;
        }
        ResultMessageParts parts =
            make_result(run_id, *run.settings, *result, run.p.frame_count(), run.n.frame_count());
        parts.header.set_is_final(is_final);
        std::vector<zmq::message_t> images;
        if (cake_n) {  // the P - N image pages show (docs/gateway.md); archive keeps the cakes
            std::vector<double> difference = reduce::relative_difference(cake_p, *cake_n);
            if (!difference.empty()) {
                pb::CakeImage& image = *parts.header.add_images();
                image.set_kind(pb::CAKE_IMAGE_KIND_PN_RELATIVE_DIFFERENCE);
                image.set_n_q(static_cast<std::uint32_t>(cake_p.axes.n_q));
                image.set_n_chi(static_cast<std::uint32_t>(cake_p.axes.n_chi));
                pb::UniformAxis& q = *image.mutable_q_axis();
                q.set_lower(cake_p.axes.q_min_inv_angstrom);
                q.set_upper(cake_p.axes.q_max_inv_angstrom);
                q.set_unit("1/angstrom");
                pb::UniformAxis& chi = *image.mutable_chi_axis();
                chi.set_lower(-180.0);
                chi.set_upper(180.0);
                chi.set_unit("deg");
                // Copied, not moved in: GCC 12 -O3 reports a false -Wfree-nonheap-object on the
                // moved-from vector here (the same family as PR 105329); 0.6 MB per result.
                images.push_back(transport::copy_payload(std::as_bytes(std::span(difference))));
            }
        }
        pb::AnalysisResult archived = parts.header;
        archived.clear_images();  // the run file keeps the cakes themselves
        auto for_archive = transport::encode_result(archived, [&] {
            std::vector<zmq::message_t> copies;
            for (const auto& curve : parts.curves) {
                copies.push_back(transport::copy_payload(transport::bytes_of(curve)));
            }
            return copies;
        }());
        auto for_pub =
            transport::encode_result(parts.header, std::move(parts.curves), std::move(images));
        if (!for_pub || !for_archive) {
            count_error("analysis",
                        run_id + ": " + (for_pub ? for_archive : for_pub).error().message);
            return false;
        }
        // PUB never blocks: a slow subscriber misses an update, never the archive.
        const std::uint64_t bytes = transport::size_of(*for_pub);
        if (auto sent = transport::try_send(results_, *for_pub); sent && *sent) {
            metrics_.bytes_sent.increment(static_cast<double>(bytes));
        }
        forward(std::move(*for_archive));
        metrics_.results_published.increment();
        observe_latencies(run);
        const auto& a = parts.header;
        spdlog::info("{} result run={} frames_p={} frames_n={} alpha={:.6g} r_c={} mechanism={}",
                     is_final ? "final" : "partial", run_id, a.n_frames_p(), a.n_frames_n(),
                     a.alpha(),
                     a.has_r_c_angstrom() ? fmt::format("{:.3f}", a.r_c_angstrom()) : "none",
                     pb::Mechanism_Name(a.mechanism()));
        return true;
    }

    // Each cake merged since the last result is now in a published one.
    void observe_latencies(RunState& run) {
        const auto now = Clock::now();
        const std::int64_t now_ns = unix_now_ns();
        for (const Clock::time_point received : run.unpublished_received) {
            metrics_.result_latency.observe(std::chrono::duration<double>(now - received).count());
        }
        for (const std::int64_t acquired_ns : run.unpublished_acquired_unix_ns) {
            if (acquired_ns > 0 && now_ns >= acquired_ns) {
                metrics_.frame_to_result.observe(static_cast<double>(now_ns - acquired_ns) *
                                                 kSecondsPerNanosecond);
            }
        }
        run.unpublished_received.clear();
        run.unpublished_acquired_unix_ns.clear();
    }

    // Ingest stopped re-publishing the run's RunStart: it was killed or restarted, and its
    // RunEnd will never come. The run ends as aborted with what arrived: how many frames the
    // source sent died with ingest, so the missing ones named are the gaps below the highest
    // sequence seen (docs/faults.md).
    void end_orphan(const std::string& run_id, RunState& run) {
        pb::RunEnd end;
        end.set_run_id(run_id);
        end.set_reason(pb::RUN_END_REASON_ABORTED);
        end.set_ended_unix_ns(unix_now_ns());
        end.set_detail(
            fmt::format("ingest stopped announcing the run (no RunStart for {} ms): "
                        "ended by analyze with the frames that arrived",
                        config_.run_orphan_timeout_ms()));
        end.mutable_frames_sent()->set_data_p(run.p.frame_count());
        end.mutable_frames_sent()->set_data_n(run.n.frame_count());
        run.end = std::move(end);
        run.orphaned = true;
        run.drain_deadline = Clock::now();
        count_error("run_orphaned", fmt::format("run {}: {}", run_id, run.end->detail()));
        if (!run.sequences.empty()) {
            std::vector<std::uint64_t> unseen;
            for (std::uint64_t s = 0;
                 s < *run.sequences.highest() && unseen.size() < kMissingListedMax; ++s) {
                if (!run.sequences.contains(s)) {
                    unseen.push_back(s);
                }
            }
            spdlog::warn(
                "run orphaned run={} data_p={} data_n={} unseen_sequences=[{}] (below the highest "
                "sequence seen; includes dark/flat sequences; first {} listed)",
                run_id, run.p.frame_count(), run.n.frame_count(), fmt::join(unseen, ","),
                kMissingListedMax);
        }
    }

    void finish_run(const std::string& run_id, RunState& run) {
        const pb::FrameCounts& sent = run.end->frames_sent();
        const std::uint64_t got_p = run.p.frame_count();
        const std::uint64_t got_n = run.n.frame_count();
        const std::uint64_t missing_by_count = (sent.data_p() > got_p ? sent.data_p() - got_p : 0) +
                                               (sent.data_n() > got_n ? sent.data_n() - got_n : 0);
        // A resumed ingest counts only the frames it dispatched: one a killed ingest had taken
        // from the source and never sent shows only as a sequence below sequences_end that no
        // frame kind accounts for (docs/adr/0007); so does one the source counted and ingest
        // refused. Every sequence that is not a dark, flat or background frame sent is taken for
        // a data frame: analyze cannot tell the kind of a frame it never got, so a calibration
        // frame lost that way counts here too. (A frame dispatched just before the kill and not
        // yet in the state file is counted by neither RunEnd nor this, and may hide one such.)
        const std::uint64_t total =
            std::max(transport::total_frames(sent), run.end->sequences_end());
        const std::uint64_t calibration = sent.dark() + sent.flat() + sent.background();
        const std::uint64_t data_expected =
            std::max(sent.data_p() + sent.data_n(), total > calibration ? total - calibration : 0);
        const std::uint64_t missing = std::max(
            missing_by_count, data_expected > got_p + got_n ? data_expected - got_p - got_n : 0);
        if (missing > 0) {
            metrics_.frames_missing.increment(static_cast<double>(missing));
            // Sequences run over every kind; dark and flat frames never reach analyze, so the
            // unseen numbers below include them (docs/protocol.md).
            std::vector<std::uint64_t> unseen;
            for (std::uint64_t s = 0; s < total && unseen.size() < kMissingListedMax; ++s) {
                if (!run.sequences.contains(s)) {
                    unseen.push_back(s);
                }
            }
            spdlog::warn(
                "run incomplete run={} missing_data_frames={} data_p={}/{} data_n={}/{} "
                "unseen_sequences=[{}] (includes dark/flat sequences; first {} listed)",
                run_id, missing, got_p, sent.data_p(), got_n, sent.data_n(), fmt::join(unseen, ","),
                kMissingListedMax);
        }
        // Data frames of the run (sent, or below sequences_end) that the final result does not
        // hold; must stay 0 (alert AnisoflowFramesLost).
        const bool published = analysable(run) && publish(run_id, run, true);
        const std::uint64_t in_result = published ? got_p + got_n : 0;
        if (data_expected > in_result) {
            metrics_.frames_lost.increment(static_cast<double>(data_expected - in_result));
        }
        if (!analysable(run)) {
            count_error("analysis", fmt::format("run {}: no final result, too few frames (p={} "
                                                "n={})",
                                                run_id, got_p, got_n));
        }
        if (auto parts = transport::encode_control(*run.end)) {
            forward(std::move(*parts));
        }
        spdlog::info("run ended run={} frames_p={} frames_n={} missing={}", run_id, got_p, got_n,
                     missing);
    }

    void step_runs() {
        const auto now = Clock::now();
        const milliseconds interval(config_.recompute_interval_ms());
        for (auto it = runs_.begin(); it != runs_.end();) {
            RunState& run = it->second;
            if (!run.start) {
                ++it;
                continue;
            }
            if (!run.end && config_.run_orphan_timeout_ms() > 0 &&
                now - run.last_announced > milliseconds(config_.run_orphan_timeout_ms())) {
                end_orphan(it->first, run);
            }
            if (run.end) {
                const pb::FrameCounts& sent = run.end->frames_sent();
                const bool complete =
                    run.p.frame_count() >= sent.data_p() && run.n.frame_count() >= sent.data_n();
                if (complete || now >= run.drain_deadline) {
                    finish_run(it->first, run);
                    finished_.push_back(it->first);
                    if (finished_.size() > kFinishedRunsKept) {
                        finished_.pop_front();
                    }
                    it = runs_.erase(it);
                    continue;
                }
            }
            if (run.changed && analysable(run) && now - run.last_result >= interval) {
                (void)publish(it->first, run, false);  // a failure is counted inside
            }
            ++it;
        }
    }

    void send_heartbeat() {
        pb::Heartbeat heartbeat;
        heartbeat.set_service("analyze");
        heartbeat.set_instance(config_.instance());
        heartbeat.set_sent_unix_ns(unix_now_ns());
        heartbeat.set_state(runs_.empty() ? pb::SERVICE_STATE_IDLE : pb::SERVICE_STATE_RUNNING);
        if (!runs_.empty()) {
            heartbeat.set_run_id(runs_.begin()->first);
        }
        if (auto parts = transport::encode_control(heartbeat)) {
            const std::uint64_t bytes = transport::size_of(*parts);
            if (auto sent = transport::try_send(results_, *parts); sent && *sent) {
                metrics_.bytes_sent.increment(static_cast<double>(bytes));
            }
        }
    }

    const cfg::AnalyzeConfig& config_;
    runtime::ServiceContext& context_;
    AnalyzeMetrics metrics_;
    zmq::context_t zmq_;
    transport::SocketSecurity security_;  // after the context it serves, before the sockets
    zmq::socket_t reduced_;
    zmq::socket_t control_;
    zmq::socket_t results_;
    zmq::socket_t archive_;
    zmq::socket_t receipts_;  // archive's receipts, when endpoints.receipts_in is set
    // What archive has not receipted yet, kept to send again (engaged with receipts_).
    std::optional<transport::UnreceiptedMessages> unreceipted_;
    Clock::time_point unreceipted_full_since_{};  // when max_unreceipted_messages was reached
    std::map<std::string, RunState, std::less<>> runs_;
    std::deque<std::string> finished_;
    std::map<std::string, Clock::time_point, std::less<>> last_logged_;
    std::deque<transport::Multipart> archive_backlog_;  // for archive, in order (forward())
    Clock::time_point archive_blocked_since_{};         // when the feed last refused, or zero
    transport::RejectionLog rejections_{"analyze"};
};

}  // namespace

Result<physics::AnalysisSettings> analysis_settings(const pb::ExperimentConfig& config) {
    physics::AnalysisSettings settings;
    switch (config.mode()) {
        case pb::EXTRACTION_MODE_PN:
            settings.mode = physics::ExtractionMode::kPn;
            break;
        case pb::EXTRACTION_MODE_SINGLE:
            settings.mode = physics::ExtractionMode::kSingle;
            break;
        default:
            return fail(ErrorCode::kInvalidArgument, "ExperimentConfig.mode is not set");
    }
    switch (config.normalisation()) {
        case pb::NORMALISATION_HIGH_Q:
            settings.normalisation = physics::Normalisation::kHighQ;
            break;
        case pb::NORMALISATION_ADHOC:
            settings.normalisation = physics::Normalisation::kAdhoc;
            break;
        default:
            return fail(ErrorCode::kInvalidArgument, "ExperimentConfig.normalisation is not set");
    }
    settings.composition = config.composition();
    settings.density_per_cubic_angstrom = config.density_per_cubic_angstrom();
    settings.nu = config.nu();
    settings.loading_axis_chi_deg = config.loading_axis_chi_deg();
    settings.wavelength_angstrom = config.geometry().wavelength_m() / kMetresPerAngstrom;
    if (config.has_q_norm_min_inv_angstrom()) {
        settings.q_norm_min_inv_angstrom = config.q_norm_min_inv_angstrom();
    }
    settings.r_poly_angstrom = config.r_poly_angstrom();
    settings.r_max_angstrom = config.r_max_angstrom();
    settings.n_r = config.n_r();
    settings.r_fit_min_angstrom = config.r_fit_min_angstrom();
    settings.r_fit_max_angstrom = config.r_fit_max_angstrom();
    settings.lorch = config.lorch();
    if (auto valid = settings.validate(); !valid) {
        return tl::unexpected(valid.error());
    }
    return settings;
}

Result<reduce::CakeAccumulator> sums_of(const transport::ReducedMessage& message) {
    const pb::ReducedFrame& h = message.header;
    std::vector<double> signal;
    std::vector<double> variance;
    std::vector<double> norm;
    std::vector<double> count;
    for (int i = 0; i < h.parts_size(); ++i) {
        const auto& part = message.parts[static_cast<std::size_t>(i)];
        switch (h.parts(i).quantity()) {
            case pb::CAKE_QUANTITY_SIGNAL_SUM:
                signal = transport::copy_values<double>(part);
                break;
            case pb::CAKE_QUANTITY_VARIANCE_SUM:
                variance = transport::copy_values<double>(part);
                break;
            case pb::CAKE_QUANTITY_NORM_SUM:
                norm = transport::copy_values<double>(part);
                break;
            case pb::CAKE_QUANTITY_COUNT_SUM:
                count = transport::copy_values<double>(part);
                break;
            default:
                break;  // means (intensity, variance, count) cannot be merged exactly
        }
    }
    if (signal.empty() || variance.empty() || norm.empty() || count.empty()) {
        return fail(ErrorCode::kInvalidArgument,
                    "the ReducedFrame lacks one of the SIGNAL/VARIANCE/NORM/COUNT_SUM parts");
    }
    reduce::CakeAxes axes;
    axes.n_q = h.n_q();
    axes.n_chi = h.n_chi();
    axes.q_min_inv_angstrom = h.q_axis().lower();
    axes.q_max_inv_angstrom = h.q_axis().upper();
    return reduce::CakeAccumulator::from_sums(axes, std::move(signal), std::move(variance),
                                              std::move(norm), std::move(count),
                                              std::max<std::uint64_t>(1, h.frames_accumulated()));
}

ResultMessageParts make_result(const std::string& run_id, const physics::AnalysisSettings& settings,
                               const physics::AnisotropyResult& result, std::uint64_t n_frames_p,
                               std::uint64_t n_frames_n) {
    ResultMessageParts out;
    pb::AnalysisResult& h = out.header;
    const physics::AffineAnalysis& a = result.affine;
    h.set_run_id(run_id);
    h.set_alpha(a.alpha);
    h.set_alpha_stderr(a.alpha_stderr);
    h.set_alpha_reduced_chi2(a.alpha_reduced_chi2);
    h.set_alpha_full_range(a.alpha_full_range);
    h.set_alpha_full_range_stderr(a.alpha_full_range_stderr);
    h.set_alpha_full_range_reduced_chi2(a.alpha_full_range_reduced_chi2);
    h.set_eps_aff(a.eps_aff);
    h.set_eps_aff_stderr(a.eps_aff_stderr);
    h.set_nu(settings.nu);
    if (a.r_c_angstrom) {
        h.set_r_c_angstrom(*a.r_c_angstrom);
    }
    h.set_mechanism(to_proto(a.mechanism));
    h.set_corr_stretching(a.corr_stretching);
    h.set_corr_rotation(a.corr_rotation);
    h.set_first_peak_shift_angstrom(a.first_peak_shift_angstrom);
    h.set_s2_chi2(result.s2_chi2);
    h.set_s2_dof(result.s2_dof);
    h.set_n_frames_p(n_frames_p);
    h.set_n_frames_n(n_frames_n);
    h.set_mode(settings.mode == physics::ExtractionMode::kPn ? pb::EXTRACTION_MODE_PN
                                                             : pb::EXTRACTION_MODE_SINGLE);
    h.set_normalisation(settings.normalisation == physics::Normalisation::kHighQ
                            ? pb::NORMALISATION_HIGH_Q
                            : pb::NORMALISATION_ADHOC);
    h.set_version(std::string(metrics::build_version()));
    h.mutable_frames()->set_data_p(n_frames_p);
    h.mutable_frames()->set_data_n(n_frames_n);
    const auto& s = result.structure;
    add_curve(out, pb::CURVE_KIND_S0, s.s0.q_inv_angstrom, s.s0.value, s.s0.variance);
    add_curve(out, pb::CURVE_KIND_S2, s.s2.q_inv_angstrom, s.s2.value, s.s2.variance);
    add_curve(out, pb::CURVE_KIND_G0, result.g0.r_angstrom, result.g0.value, result.g0.variance);
    add_curve(out, pb::CURVE_KIND_G2, result.g2.r_angstrom, result.g2.value, result.g2.variance);
    add_curve(out, pb::CURVE_KIND_AFFINE_G2, a.affine_g2.r_angstrom, a.affine_g2.value,
              a.affine_g2.variance);
    add_curve(out, pb::CURVE_KIND_EPS_R, a.eps_r.r_angstrom, a.eps_r.value, a.eps_r.variance);
    add_curve(out, pb::CURVE_KIND_REDUCED_G, result.reduced_g.r_angstrom, result.reduced_g.value,
              result.reduced_g.variance);
    return out;
}

Result<void> run(const cfg::AnalyzeConfig& config, runtime::ServiceContext& context) {
    auto metrics = register_metrics(context.metrics);
    if (!metrics) {
        return tl::unexpected(metrics.error());
    }
    AnalyzeService service(config, context, std::move(*metrics));
    return service.run();
}

}  // namespace anisoflow::analyzer
