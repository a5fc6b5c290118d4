#include "archive_service.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <system_error>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "anisoflow/archive/run_archive.hpp"
#include "anisoflow/archive/run_reader.hpp"
#include "anisoflow/codec/bitshuffle.hpp"
#include "anisoflow/codec/lz4.hpp"
#include "anisoflow/metrics/metrics.hpp"
#include "anisoflow/reduce/cake_integrator.hpp"
#include "anisoflow/runtime/disk_room.hpp"
#include "anisoflow/transport/archive_receipts.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/rejection_log.hpp"
#include "anisoflow/transport/seen_sequences.hpp"
#include "anisoflow/transport/socket.hpp"
#include "anisoflow/transport/socket_security.hpp"

namespace anisoflow::archiver {

namespace {

namespace pb = ::anisoflow::stream::v1;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kPollInterval{50};
// Longest wait for the oldest raw frame's compression before the sockets are looked at again.
constexpr milliseconds kCompressionWait{5};
// Threads that compress RAW frames (LZ4 of a 2048 x 2048 uint16 frame is ~16 ms on one core).
constexpr unsigned kMaxCompressionThreads = 4;
// Missing raw frames (and data frames without their cake) named by sequence in a run's end
// detail (and log); the count is complete.
constexpr std::size_t kMissingListedMax = 32;
// Runs this process closed (or found closed), never reopened by a late message of theirs.
constexpr std::size_t kFinishedRemembered = 256;
// Shortest time between two ArchiveReceipts sent because something was stored: up to 200 a
// second, a few hundred bytes each.
constexpr milliseconds kReceiptMinGap{5};
// How long a finished run stays in the receipts after it closed or after the last message of it
// came: long enough for every sender to forget the run's messages (docs/protocol.md, "Archive
// receipts").
constexpr std::chrono::seconds kFinishedReceiptedFor{30};
// Longest receipt_interval_ms: a finished run must be receipted several times in the 30 s.
constexpr milliseconds kMaxReceiptInterval{10000};

// This process's ArchiveReceipts.session: random and never 0, so a restarted archive is told
// from the old one.
std::uint64_t new_session() {
    std::random_device device;
    std::uint64_t session = 0;
    while (session == 0) {
        session = (std::uint64_t{device()} << 32U) | device();
    }
    return session;
}

unsigned compression_threads() {
    return std::clamp(std::thread::hardware_concurrency(), 1U, kMaxCompressionThreads);
}

pb::Encoding encoding_of(archive::RawCompression compression) {
    return compression == archive::RawCompression::kLz4 ? pb::ENCODING_LZ4 : pb::ENCODING_BSLZ4;
}

// Bytes per pixel; 0 for an unknown type (never compressed here: append_raw reports it).
std::size_t element_size_bytes(pb::PixelDtype dtype) {
    const auto type = transport::to_pixel_type(dtype);
    return type ? pixel_size_bytes(*type) : 0;
}

// One raw frame taken off the raw feed: compressed by a CompressionPool thread when it came RAW
// and the archive compresses, then appended by the service's thread (the one HDF5 owner).
struct RawJob {
    transport::FrameMessage frame;
    bool compress = false;  // false: append_raw gets the payload as it came
    // Written by the pool thread, read by the service thread once `done` (under the mutex).
    std::vector<std::byte> compressed;
    bool compressed_ok = false;
    bool done = false;
};

// A few threads compressing RawJobs in the order they were submitted. Bounded by its user:
// ArchiveService submits at most max_in_flight() frames before the oldest is appended.
class CompressionPool {
  public:
    CompressionPool(archive::RawCompression compression, unsigned threads)
        : compression_(compression) {
        for (unsigned i = 0; i < threads; ++i) {
            threads_.emplace_back([this] { work(); });
        }
    }
    ~CompressionPool() {
        {
            const std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        work_ready_.notify_all();
        for (std::thread& thread : threads_) {
            thread.join();
        }
    }
    CompressionPool(const CompressionPool&) = delete;
    CompressionPool& operator=(const CompressionPool&) = delete;
    CompressionPool(CompressionPool&&) = delete;
    CompressionPool& operator=(CompressionPool&&) = delete;

    [[nodiscard]] std::size_t max_in_flight() const { return 2 * threads_.size(); }

    void submit(std::shared_ptr<RawJob> job) {
        {
            const std::lock_guard lock(mutex_);
            queue_.push_back(std::move(job));
        }
        work_ready_.notify_one();
    }

    /// Whether `job` is compressed; waits at most `timeout` for it.
    bool wait_done(const RawJob& job, milliseconds timeout) {
        std::unique_lock lock(mutex_);
        return job_done_.wait_for(lock, timeout, [&] { return job.done; });
    }

  private:
    void work() {
        while (true) {
            std::shared_ptr<RawJob> job;
            {
                std::unique_lock lock(mutex_);
                work_ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
                if (queue_.empty()) {
                    return;  // stopping, nothing left
                }
                job = std::move(queue_.front());
                queue_.pop_front();
            }
            const std::span<const std::byte> pixels = transport::bytes_of(job->frame.payload);
            auto compressed =
                compression_ == archive::RawCompression::kLz4
                    ? codec::lz4_hdf5_compress(pixels)
                    : codec::bslz4_compress(pixels, element_size_bytes(job->frame.header.dtype()));
            if (compressed) {
                job->frame.payload = zmq::message_t{};  // the pixels are not needed any more
            }
            {
                const std::lock_guard lock(mutex_);
                if (compressed) {
                    job->compressed = std::move(*compressed);
                    job->compressed_ok = true;
                }
                job->done = true;
            }
            job_done_.notify_all();
        }
    }

    archive::RawCompression compression_;
    std::mutex mutex_;
    std::condition_variable work_ready_;
    std::condition_variable job_done_;
    std::deque<std::shared_ptr<RawJob>> queue_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

bool file_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

struct ArchiveMetrics {
    metrics::Counter runs_opened;
    metrics::Counter runs_reopened;
    metrics::Counter runs_closed;
    metrics::Counter reduced_written;
    metrics::Counter results_written;
    metrics::Counter raw_written;
    metrics::Counter bytes_received;
    metrics::Counter bytes_written;
    metrics::CounterFamily errors;
    metrics::CounterFamily rejected;
    metrics::Gauge disk_full;
    metrics::Counter disk_full_holds;
    metrics::Counter cakes_missing;
    metrics::CounterFamily duplicates;
};

Result<ArchiveMetrics> register_metrics(metrics::Registry& registry) {
    auto opened = registry.counter("anisoflow_archive_runs_opened_total", "run files created");
    auto reopened = registry.counter("anisoflow_archive_runs_reopened_total",
                                     "run files a killed archive left open, reopened to go on");
    auto closed = registry.counter("anisoflow_archive_runs_closed_total", "run files closed");
    auto reduced = registry.counter("anisoflow_archive_reduced_frames_written_total",
                                    "cakes appended to run files");
    auto results = registry.counter("anisoflow_archive_results_written_total",
                                    "analysis results appended to run files");
    auto raw = registry.counter("anisoflow_archive_raw_frames_written_total",
                                "detector frames appended to run files (raw frame feed)");
    auto received = registry.counter("anisoflow_archive_bytes_received_total",
                                     "bytes of every message part read from the feeds");
    auto written = registry.counter("anisoflow_archive_bytes_written_total",
                                    "growth of the run files on disk, bytes");
    auto errors =
        registry.counter_family("anisoflow_archive_errors_total",
                                "messages that could not be archived, by reason", "reason",
                                {"create", "reopen", "no_open_run", "bad_cake", "write", "close",
                                 "raw_write", "raw_incomplete", "no_analyze_end", "receipts"});
    auto rejected = registry.counter_family("anisoflow_archive_messages_rejected_total",
                                            "messages dropped by decode(), by reason", "reason");
    auto disk_full = registry.gauge("anisoflow_archive_disk_full",
                                    "1 while archive_dir has less than min_free_disk_bytes free "
                                    "and archive takes nothing from its feeds");
    auto holds = registry.counter("anisoflow_archive_disk_full_holds_total",
                                  "times archive held its feeds for a full disk");
    auto cakes_missing = registry.counter(
        "anisoflow_archive_cakes_missing_total",
        "data frames archived without their cake when the run file closed (missing_cakes)");
    auto duplicates = registry.counter_family(
        "anisoflow_archive_duplicates_skipped_total",
        "messages the run file already held, not stored twice (sent again after a restart of "
        "archive), by what they carried",
        "kind", {"raw_frame", "cake", "result"});
    if (!opened || !reopened || !closed || !reduced || !results || !raw || !received || !written ||
        !errors || !rejected || !disk_full || !holds || !cakes_missing || !duplicates) {
        return fail(ErrorCode::kInvalidArgument, "cannot register the archive metrics");
    }
    return ArchiveMetrics{*opened,    *reopened, *closed,        *reduced,   *results,
                          *raw,       *received, *written,       *errors,    *rejected,
                          *disk_full, *holds,    *cakes_missing, *duplicates};
}

class ArchiveService {
  public:
    ArchiveService(const cfg::ArchiveConfig& config, runtime::ServiceContext& context,
                   ArchiveMetrics metrics)
        : config_(config), context_(context), metrics_(std::move(metrics)) {}

    Result<void> run() {
        const cfg::Socket& in = config_.endpoints().archive_in();
        if (in.address().empty() || in.receive_hwm_messages() == 0) {
            return fail(ErrorCode::kInvalidArgument,
                        "endpoints.archive_in: address and receive_hwm_messages needed");
        }
        if (config_.archive_dir().empty()) {
            return fail(ErrorCode::kInvalidArgument, "archive_dir: empty");
        }
        auto compression = raw_compression(config_.raw_compression());
        if (!compression) {
            return tl::unexpected(compression.error());
        }
        raw_compression_ = *compression;
        std::error_code ec;
        std::filesystem::create_directories(config_.archive_dir(), ec);
        if (ec) {
            return fail(ErrorCode::kIo, "archive_dir {}: {}", config_.archive_dir(), ec.message());
        }
        auto security = transport::SocketSecurity::load(config_.security());
        if (!security) {
            return tl::unexpected(security.error());
        }
        security_ = std::move(*security);
        if (auto started = security_.start(zmq_); !started) {
            return tl::unexpected(started.error().with_context("security"));
        }
        auto feed = open_pull(in, "endpoints.archive_in");
        if (!feed) {
            return tl::unexpected(feed.error());
        }
        socket_ = std::move(*feed);
        const cfg::Socket& raw_in = config_.endpoints().raw_in();
        raw_enabled_ = !raw_in.address().empty();
        if (raw_enabled_) {
            auto raw = open_pull(raw_in, "endpoints.raw_in");
            if (!raw) {
                return tl::unexpected(raw.error());
            }
            raw_ = std::move(*raw);
        }
        if (const cfg::Socket& out = config_.endpoints().receipts_out(); !out.address().empty()) {
            if (config_.receipt_interval_ms() == 0 ||
                milliseconds(config_.receipt_interval_ms()) > kMaxReceiptInterval) {
                return fail(ErrorCode::kInvalidArgument,
                            "receipt_interval_ms: {}; 1 to {} ms with endpoints.receipts_out",
                            config_.receipt_interval_ms(), kMaxReceiptInterval.count());
            }
            transport::SocketOptions options;
            options.send_hwm = static_cast<int>(out.send_hwm_messages());
            options.receive_hwm = static_cast<int>(out.receive_hwm_messages());
            auto opened = security_.open(zmq_, zmq::socket_type::pub, out.address(), options);
            if (!opened) {
                return tl::unexpected(opened.error().with_context("endpoints.receipts_out"));
            }
            receipts_ = std::move(*opened);
        }
        if (raw_enabled_ && raw_compression_ != archive::RawCompression::kNone) {
            pool_ = std::make_unique<CompressionPool>(raw_compression_, compression_threads());
        }
        spdlog::info("ready archive_dir={} raw_frames={} compression_threads={} receipts={}",
                     config_.archive_dir(),
                     raw_enabled_ ? config_.raw_compression() : std::string("off"),
                     pool_ ? compression_threads() : 0U,
                     receipts_.handle() != nullptr ? fmt::format("session {:016x}", session_)
                                                   : std::string("off"));
        disk_room_ = runtime::DiskRoom(config_.archive_dir(), config_.min_free_disk_bytes());
        // However the loop ends (SIGTERM, or an error it cannot go on after), what was taken is
        // stored and the open runs are interrupted, never aborted: they are not over.
        Result<void> served = serve();
        stop_mid_run();
        return served;
    }

  private:
    Result<void> serve() {
        const runtime::StopToken stop = context_.stop.token();
        while (!stop.stop_requested()) {
            if (!disk_has_room()) {
                // Nothing is taken from the feeds and nothing written: their high-water marks
                // hold analyze and ingest back, and ingest its source (docs/faults.md).
                publish_receipts(Clock::now());  // still alive, still this session
                std::this_thread::sleep_for(kPollInterval);
                continue;
            }
            // Raw frames being compressed: look at the sockets without waiting, then wait (a
            // little) for the oldest frame instead.
            const bool compressing = !raw_order_.empty();
            // Frames at the in-flight bound: the raw feed waits (and holds ingest back).
            const bool raw_open = raw_enabled_ && !raw_full();
            std::array<zmq::pollitem_t, 2> items = {
                zmq::pollitem_t{socket_.handle(), 0, ZMQ_POLLIN, 0},
                zmq::pollitem_t{raw_open ? raw_.handle() : nullptr, 0, ZMQ_POLLIN, 0}};
            try {
                zmq::poll(items.data(), raw_open ? 2 : 1,
                          compressing ? milliseconds{0} : kPollInterval);
            } catch (const zmq::error_t& error) {
                if (error.num() != EINTR) {  // a signal (SIGTERM): the loop looks at `stop`
                    return fail(ErrorCode::kIo, "poll: {}", error.what());
                }
            }
            // Raw frames first: a run's file closes once both feeds have ended it.
            if (raw_enabled_) {
                if (auto drained = drain(raw_, "endpoints.raw_in", true); !drained) {
                    return drained;
                }
                append_compressed(compressing ? kCompressionWait : milliseconds{0});
            }
            if (auto drained = drain(socket_, "endpoints.archive_in", false); !drained) {
                return drained;
            }
            close_runs_due(Clock::now());
            publish_receipts(Clock::now());
        }
        return {};
    }

    // Frames taken off the raw feed are stored before the files are given up; a run those
    // completed is closed as usual. Runs still open are not over: each file is closed
    // "interrupted", and the archive that comes next goes on with it when a message of the run
    // arrives (with receipts, the senders send again what this one had not stored).
    // docs/archive.md, "Stopping mid-run".
    void stop_mid_run() {
        while (!raw_order_.empty()) {
            append_compressed(kPollInterval);
        }
        close_runs_due(Clock::now());
        for (auto& [run_id, run] : runs_) {
            const std::uint64_t raw_frames = run.file.raw_frames() + run.file.flat_fields();
            const std::uint64_t cakes = run.file.reduced_frames();
            if (auto interrupted = run.file.interrupt(); !interrupted) {
                count_error("close", interrupted.error().message);
                continue;
            }
            spdlog::warn(
                "run file interrupted run={} raw_frames={} reduced_frames={}: stopping mid-run; "
                "an archive started later goes on with it",
                run_id, raw_frames, cakes);
        }
        runs_.clear();
    }

    // One run's file, closed once the feed's RunEnd came and (with raw frames on) the raw feed
    // ended the run too, or raw_drain_timeout_ms after the feed's RunEnd, or
    // analyze_end_timeout_ms after the raw feed's RunEnd when the feed's never comes.
    struct OpenRun {
        archive::RunArchive file;
        std::optional<pb::RunEnd> end;  // the feed's RunEnd
        bool raw_ended = false;         // the raw feed's RunEnd came: every raw frame is in
        Clock::time_point raw_deadline;
        std::uint64_t raw_frames_sent = 0;  // frames the raw feed's RunEnd says it sent
        // Stored raw frames, DATA frames among them and cakes, to name what is missing at the
        // end: as ranges, since one entry per frame grew with every frame of a long run
        // (docs/performance.md, "Soak").
        transport::SeenSequences raw_sequences;
        // Stored raw frames of kind DATA and stored cakes, to name the data frames whose cake
        // never came (missing_cakes): one cake per data frame, of the frame's sequence.
        transport::SeenSequences data_sequences;
        transport::SeenSequences cake_sequences;
        // The raw feed's RunEnd.sequences_end: frames of the run at the source, counting those
        // a killed ingest took with it, which raw_frames_sent does not (docs/faults.md).
        std::uint64_t raw_sequences_end = 0;
        // The raw feed's RunEnd (ingest's), which ends the run when analyze's does not come.
        std::optional<pb::RunEnd> raw_end{};
        Clock::time_point analyze_deadline{};
        // The last result stored, which a result sent again is compared with (not stored twice).
        std::optional<archive::RunArchive::ResultMark> last_result{};
        // Raw frames and cakes refused for good (counted errors), receipted so that senders do
        // not keep them, and hold the chain back, for ever.
        transport::SeenSequences raw_refused{};
        transport::SeenSequences cakes_refused{};

        // Frames the run had at the source, as far as the raw feed's RunEnd tells.
        [[nodiscard]] std::uint64_t raw_frames_expected() const {
            return std::max(raw_frames_sent, raw_sequences_end);
        }
    };

    Result<zmq::socket_t> open_pull(const cfg::Socket& socket, const char* key) {
        transport::SocketOptions options;
        options.send_hwm = static_cast<int>(socket.send_hwm_messages());
        options.receive_hwm = static_cast<int>(socket.receive_hwm_messages());
        auto opened = security_.open(zmq_, zmq::socket_type::pull, socket.address(), options);
        if (!opened) {
            return tl::unexpected(opened.error().with_context(key));
        }
        return std::move(*opened);
    }

    static Result<archive::RawCompression> raw_compression(const std::string& name) {
        if (name == "bslz4") {
            return archive::RawCompression::kBslz4;
        }
        if (name == "lz4") {
            return archive::RawCompression::kLz4;
        }
        if (name == "none") {
            return archive::RawCompression::kNone;
        }
        return fail(ErrorCode::kInvalidArgument,
                    "raw_compression: \"{}\" is not bslz4, lz4 or none", name);
    }

    // Everything queued on `socket` now, without waiting (on the raw feed, up to the bound of
    // frames being compressed).
    Result<void> drain(zmq::socket_t& socket, const char* key, bool raw_feed) {
        while (!(raw_feed && raw_full()) && disk_has_room()) {
            auto received = transport::receive(socket, milliseconds{0});
            if (!received) {
                return tl::unexpected(received.error().with_context(key));
            }
            if (!*received) {
                return {};
            }
            std::size_t bytes = 0;
            for (const zmq::message_t& part : **received) {
                bytes += part.size();
            }
            metrics_.bytes_received.increment(static_cast<double>(bytes));
            auto decoded = transport::decode(std::move(**received));
            if (!decoded) {
                metrics_.rejected.with(transport::to_string(decoded.error().reason)).increment();
                rejections_.log(decoded.error());
                continue;
            }
            if (raw_feed && pool_ && enqueue_raw(*decoded)) {
                continue;
            }
            if (auto* start = std::get_if<transport::RunStartMessage>(&*decoded)) {
                on_run_start(start->start);
            } else if (auto* frame = std::get_if<transport::FrameMessage>(&*decoded);
                       frame != nullptr && raw_feed) {
                on_raw_frame(frame->header, transport::bytes_of(frame->payload));
            } else if (auto* cake = std::get_if<transport::ReducedMessage>(&*decoded)) {
                on_reduced(*cake);
            } else if (auto* result = std::get_if<transport::ResultMessage>(&*decoded)) {
                on_result(*result);
            } else if (auto* event = std::get_if<transport::RunEventMessage>(&*decoded)) {
                on_run_event(event->event);
            } else if (auto* end = std::get_if<transport::RunEndMessage>(&*decoded)) {
                if (raw_feed) {
                    on_raw_end(end->end);
                } else {
                    on_run_end(end->end);
                }
            } else if (!std::holds_alternative<transport::HeartbeatMessage>(*decoded)) {
                metrics_.rejected.with("unexpected_body").increment();
                rejections_.log(
                    "unexpected_body",
                    fmt::format("a {} on {}", transport::message_type_name(*decoded), key));
            }
        }
        return {};  // the rest waits until frames being compressed are stored
    }

    // The run file's growth since it was last looked at: what the archive wrote to disk.
    void count_bytes_written(const std::string& run_id, const archive::RunArchive& file) {
        std::error_code ec;
        const auto size = std::filesystem::file_size(file.path(), ec);
        if (ec) {
            return;
        }
        std::uintmax_t& last = file_sizes_[run_id];
        if (size > last) {
            metrics_.bytes_written.increment(static_cast<double>(size - last));
        }
        last = size;
    }

    // Whether the run directory's disk has room for what comes next: at least
    // min_free_disk_bytes free (docs/faults.md, "What each fault costs"). Says when a hold
    // starts and ends.
    bool disk_has_room() {
        const runtime::DiskRoom::Check check = disk_room_.check();
        if (check.error && !disk_room_error_logged_) {
            disk_room_error_logged_ = true;  // a write failing then says the rest
            spdlog::warn("cannot look at the free disk space, not holding: {}",
                         check.error->message);
        }
        if (check.changed) {
            metrics_.disk_full.set(check.has_room ? 0.0 : 1.0);
            if (check.has_room) {
                spdlog::info("disk has room again, taking the feeds archive_dir={} free_bytes={}",
                             config_.archive_dir(), check.free_bytes);
            } else {
                metrics_.disk_full_holds.increment();
                spdlog::warn(
                    "disk full, holding the feeds archive_dir={} free_bytes={} "
                    "min_free_disk_bytes={}",
                    config_.archive_dir(), check.free_bytes, disk_room_.reserve_bytes());
            }
        }
        return check.has_room;
    }

    void count_error(std::string_view reason, const std::string& detail) {
        metrics_.errors.with(reason).increment();
        const auto now = Clock::now();
        auto& last = last_logged_[std::string(reason)];
        if (now - last >= std::chrono::seconds(1)) {
            last = now;
            spdlog::warn("not archived reason={} detail=\"{}\"", reason, detail);
        }
    }

    OpenRun* find_run(const std::string& run_id, std::string_view what) {
        OpenRun* run = open_run(run_id);
        if (run == nullptr) {
            count_error("no_open_run",
                        fmt::format("{} of run {} without an open file", what, run_id));
        }
        return run;
    }

    [[nodiscard]] archive::ArchiveOptions archive_options() const {
        archive::ArchiveOptions options;
        options.store_raw = raw_enabled_;
        options.raw_compression = raw_compression_;
        return options;
    }

    [[nodiscard]] std::filesystem::path run_path(const std::string& run_id) const {
        return std::filesystem::path(config_.archive_dir()) / run_file_name(run_id);
    }

    // The open file of a run; a file a killed archive left "running", or a stopped one left
    // "interrupted", is reopened
    // (docs/faults.md): a restarted archive hears no RunStart of a run already under way, so
    // any message of the run reopens it. Null when there is no file to go on with.
    OpenRun* open_run(const std::string& run_id) {
        if (auto found = runs_.find(run_id); found != runs_.end()) {
            return &found->second;
        }
        std::error_code ec;
        const std::filesystem::path path = run_path(run_id);
        if (finished_.contains(run_id)) {
            // A sender still has messages of the run: say again that it is finished.
            receipt_finished(run_id);
            return nullptr;
        }
        if (!std::filesystem::exists(path, ec)) {
            return nullptr;
        }
        auto reopened = archive::RunArchive::reopen(path, run_id, archive_options());
        if (!reopened) {
            // A file an earlier archive process closed: a sender that never had its receipt
            // sends again, and is told the run is finished. Anything else is an error.
            if (auto earlier = archive::read_run(path);
                earlier && earlier->state != archive::kRunStateRunning &&
                earlier->state != archive::kRunStateInterrupted) {
                spdlog::info("run file already closed run={} state={}", run_id, earlier->state);
            } else {
                count_error("reopen", reopened.error().message);
            }
            remember_finished(run_id);
            return nullptr;
        }
        // What is already stored, so that what the killed archive lost (taken off its feeds or
        // queued in its sockets) is named at the end: raw frames (missing_raw), data frames and
        // cakes (missing_cakes).
        const auto read_back = [&](Result<std::vector<std::uint64_t>> sequences) {
            transport::SeenSequences held;
            if (!sequences) {
                count_error("reopen", sequences.error().message);
                return held;
            }
            for (const std::uint64_t s : *sequences) {
                held.insert(s);
            }
            return held;
        };
        transport::SeenSequences stored = read_back(reopened->stored_raw_sequences());
        transport::SeenSequences data = read_back(reopened->stored_data_sequences());
        transport::SeenSequences cakes = read_back(reopened->stored_cake_sequences());
        auto last_result = reopened->last_result();
        if (!last_result) {
            count_error("reopen", last_result.error().message);
        }
        metrics_.runs_reopened.increment();
        spdlog::info(
            "run file reopened run={} path={} raw_frames={} cakes={} results={} state_changes={}",
            run_id, path.string(), reopened->raw_frames() + reopened->flat_fields(),
            reopened->reduced_frames(), reopened->results(), reopened->state_changes());
        file_sizes_[run_id] = std::filesystem::file_size(path, ec);  // 0 when unknown
        OpenRun run{std::move(*reopened), std::nullopt,    !raw_enabled_,   Clock::time_point{}, 0,
                    std::move(stored),    std::move(data), std::move(cakes)};
        if (last_result) {
            run.last_result = *last_result;
        }
        auto [it, added] = runs_.emplace(run_id, std::move(run));
        receipts_changed_ = true;
        return &it->second;
    }

    // The run is finished here (closed, or refused): receipted as such for a while, so that
    // every sender forgets its messages.
    void remember_finished(const std::string& run_id) {
        receipt_finished(run_id);
        if (finished_.insert(run_id).second) {
            finished_order_.push_back(run_id);
        }
        if (finished_order_.size() > kFinishedRemembered) {
            finished_.erase(finished_order_.front());
            finished_order_.pop_front();
        }
    }

    void on_run_start(const pb::RunStart& start) {
        const std::string& run_id = start.run_id();
        if (runs_.contains(run_id)) {
            return;
        }
        if (finished_.contains(run_id)) {
            receipt_finished(run_id);  // sent again by a sender that missed it: it stays closed
            return;
        }
        std::error_code ec;
        const std::filesystem::path path = run_path(run_id);
        if (!finished_.contains(run_id) && std::filesystem::exists(path, ec)) {
            (void)open_run(run_id);  // a killed archive's file: reopened (or refused, counted)
            return;
        }
        auto created = archive::RunArchive::create(path, start, archive_options());
        if (!created) {
            count_error("create", created.error().message);
            remember_finished(run_id);  // refused: its senders are told to let it go
            return;
        }
        metrics_.runs_opened.increment();
        receipts_changed_ = true;
        spdlog::info("run file created run={} path={}", run_id, path.string());
        runs_.emplace(run_id, OpenRun{std::move(*created),
                                      std::nullopt,
                                      !raw_enabled_,
                                      Clock::time_point{},
                                      0,
                                      {},
                                      {},
                                      {}});
    }

    // Run control's state change (docs/run-control.md) into /entry/run_log as it happens. One
    // that comes before its run's file is open is not lost: every RunEnd carries the whole log.
    void on_run_event(const pb::RunEvent& event) {
        OpenRun* run = open_run(event.run_id());
        if (run == nullptr) {
            return;
        }
        if (auto ok = run->file.append_state_change(event.run_id(), event.change()); !ok) {
            count_error("write", ok.error().message);
        }
    }

    [[nodiscard]] bool raw_full() const {
        return pool_ && raw_order_.size() >= pool_->max_in_flight();
    }

    // A message of the raw feed while frames are compressed: kept in feed order, so that frames
    // are appended in the order they came and a run's raw RunEnd after its last frame.
    // False for the messages that are not the raw feed's (handled as before).
    bool enqueue_raw(transport::Message& message) {
        if (auto* frame = std::get_if<transport::FrameMessage>(&message)) {
            auto job = std::make_shared<RawJob>();
            job->frame = std::move(*frame);
            job->compress = compressible(job->frame);
            job->done = !job->compress;
            if (job->compress) {
                pool_->submit(job);
            }
            raw_order_.emplace_back(std::move(job));
        } else if (auto* start = std::get_if<transport::RunStartMessage>(&message)) {
            raw_order_.emplace_back(std::move(start->start));
        } else if (auto* end = std::get_if<transport::RunEndMessage>(&message)) {
            raw_order_.emplace_back(std::move(end->end));
        } else if (auto* event = std::get_if<transport::RunEventMessage>(&message)) {
            raw_order_.emplace_back(std::move(event->event));  // after its run's RunStart
        } else {
            return false;
        }
        return true;
    }

    // A RAW frame whose sizes agree with its header; anything else goes to append_raw as it
    // came, which stores it or reports what is wrong with it exactly as before.
    [[nodiscard]] static bool compressible(const transport::FrameMessage& frame) {
        const pb::FrameHeader& h = frame.header;
        const std::size_t element_size = element_size_bytes(h.dtype());
        const std::uint64_t size_bytes = std::uint64_t{h.rows()} * h.cols() * element_size;
        const bool float_flat =
            h.kind() == pb::FRAME_KIND_FLAT && h.dtype() == pb::PIXEL_DTYPE_FLOAT32;
        return h.encoding() == pb::ENCODING_RAW && !float_flat && element_size > 0 &&
               size_bytes > 0 && h.uncompressed_size_bytes() == size_bytes &&
               h.payload_size_bytes() == size_bytes && frame.payload.size() == size_bytes;
    }

    // Appends the raw feed's messages in feed order while they are ready; waits at most `wait`
    // for the oldest frame's compression.
    void append_compressed(milliseconds wait) {
        while (!raw_order_.empty()) {
            RawItem& item = raw_order_.front();
            if (auto* job = std::get_if<std::shared_ptr<RawJob>>(&item)) {
                if (!pool_->wait_done(**job, wait)) {
                    return;
                }
                wait = milliseconds{0};
                RawJob& done = **job;
                if (done.compress && done.compressed_ok) {
                    pb::FrameHeader header = done.frame.header;
                    header.set_encoding(encoding_of(raw_compression_));
                    header.set_payload_size_bytes(done.compressed.size());
                    on_raw_frame(header, done.compressed);
                } else {
                    on_raw_frame(done.frame.header, transport::bytes_of(done.frame.payload));
                }
            } else if (auto* start = std::get_if<pb::RunStart>(&item)) {
                on_run_start(*start);
            } else if (auto* end = std::get_if<pb::RunEnd>(&item)) {
                on_raw_end(*end);
            } else if (auto* event = std::get_if<pb::RunEvent>(&item)) {
                on_run_event(*event);
            }
            raw_order_.pop_front();
        }
    }

    void on_raw_frame(const pb::FrameHeader& header, std::span<const std::byte> payload) {
        const std::string& run_id = header.run_id();
        OpenRun* run = find_run(run_id, "a raw frame");
        if (run == nullptr) {
            return;
        }
        if (run->raw_sequences.contains(header.sequence())) {
            metrics_.duplicates.with("raw_frame").increment();  // sent again: stored already
            return;
        }
        archive::RunArchive* file = &run->file;
        if (auto appended = file->append_raw(header, payload); !appended) {
            count_error("raw_write", appended.error().message);
            run->raw_refused.insert(header.sequence());
            receipts_changed_ = true;
            return;
        }
        run->raw_sequences.insert(header.sequence());
        if (header.kind() == pb::FRAME_KIND_DATA) {
            run->data_sequences.insert(header.sequence());
        }
        receipts_changed_ = true;
        metrics_.raw_written.increment();
        count_bytes_written(run_id, *file);
    }

    void on_raw_end(const pb::RunEnd& end) {
        OpenRun* run = open_run(end.run_id());
        if (run == nullptr) {
            return;  // a repeated RunEnd of a closed run, or a run whose file failed
        }
        run->raw_ended = true;
        run->raw_frames_sent = transport::total_frames(end.frames_sent());
        run->raw_sequences_end = end.sequences_end();
        if (!run->raw_end) {
            run->raw_end = end;
            run->analyze_deadline = Clock::now() + milliseconds(config_.analyze_end_timeout_ms());
        }
    }

    void on_reduced(const transport::ReducedMessage& cake) {
        const pb::ReducedFrame& h = cake.header;
        OpenRun* run = find_run(h.run_id(), "a cake");
        if (run == nullptr) {
            return;
        }
        if (run->cake_sequences.contains(h.sequence())) {
            metrics_.duplicates.with("cake").increment();  // sent again: stored already
            return;
        }
        archive::RunArchive* file = &run->file;
        std::vector<double> sums[4];
        std::vector<double> means[3];
        for (int i = 0; i < h.parts_size(); ++i) {
            auto values = transport::copy_values<double>(cake.parts[static_cast<std::size_t>(i)]);
            const int q = h.parts(i).quantity();
            if (q >= pb::CAKE_QUANTITY_SIGNAL_SUM && q <= pb::CAKE_QUANTITY_COUNT_SUM) {
                sums[q - pb::CAKE_QUANTITY_SIGNAL_SUM] = std::move(values);
            } else if (q >= pb::CAKE_QUANTITY_INTENSITY && q <= pb::CAKE_QUANTITY_COUNT) {
                means[q - pb::CAKE_QUANTITY_INTENSITY] = std::move(values);
            }
        }
        if (means[0].empty() && !sums[0].empty()) {
            // The means of the frame, exactly as CakeAccumulator::finish() forms them.
            reduce::CakeAxes axes;
            axes.n_q = h.n_q();
            axes.n_chi = h.n_chi();
            axes.q_min_inv_angstrom = h.q_axis().lower();
            axes.q_max_inv_angstrom = h.q_axis().upper();
            auto accumulated = reduce::CakeAccumulator::from_sums(
                axes, std::move(sums[0]), std::move(sums[1]), std::move(sums[2]),
                std::move(sums[3]), std::max<std::uint64_t>(1, h.frames_accumulated()));
            if (!accumulated) {
                count_error("bad_cake", accumulated.error().message);
                refuse_cake(*run, h.sequence());
                return;
            }
            reduce::Cake mean = accumulated->finish();
            means[0] = std::move(mean.intensity);
            means[1] = std::move(mean.variance);
            means[2] = std::move(mean.count);
        }
        if (means[0].empty()) {
            count_error("bad_cake", fmt::format("run {} frame {}: no intensity or sums", h.run_id(),
                                                h.sequence()));
            refuse_cake(*run, h.sequence());
            return;
        }
        if (auto appended = file->append_reduced(h, means[0], means[1], means[2]); !appended) {
            count_error("write", appended.error().message);
            refuse_cake(*run, h.sequence());
            return;
        }
        run->cake_sequences.insert(h.sequence());
        receipts_changed_ = true;
        metrics_.reduced_written.increment();
        count_bytes_written(h.run_id(), *file);
    }

    void on_result(const transport::ResultMessage& result) {
        const pb::AnalysisResult& h = result.header;
        OpenRun* run = find_run(h.run_id(), "a result");
        if (run == nullptr) {
            return;
        }
        const archive::RunArchive::ResultMark mark{h.n_frames_p(), h.n_frames_n(), h.is_final()};
        if (run->last_result && run->last_result->frames_p == mark.frames_p &&
            run->last_result->frames_n == mark.frames_n &&
            run->last_result->is_final == mark.is_final) {
            metrics_.duplicates.with("result").increment();  // sent again: stored already
            return;
        }
        archive::RunArchive* file = &run->file;
        std::vector<std::vector<double>> values;
        values.reserve(result.curves.size());
        for (const auto& curve : result.curves) {
            values.push_back(transport::copy_values<double>(curve));
        }
        std::vector<std::span<const double>> spans(values.begin(), values.end());
        if (auto appended = file->append_result(result.header, spans); !appended) {
            count_error("write", appended.error().message);
            return;
        }
        run->last_result = mark;
        receipts_changed_ = true;
        metrics_.results_written.increment();
        count_bytes_written(h.run_id(), *file);
    }

    void on_run_end(const pb::RunEnd& end) {
        OpenRun* run = open_run(end.run_id());
        if (run == nullptr) {
            count_error("no_open_run",
                        fmt::format("the end of run {} without an open file", end.run_id()));
            return;
        }
        if (!run->end) {
            run->end = end;
            run->raw_deadline = Clock::now() + milliseconds(config_.raw_drain_timeout_ms());
        }
    }

    void close_runs_due(Clock::time_point now) {
        for (auto it = runs_.begin(); it != runs_.end();) {
            OpenRun& run = it->second;
            if (!run.end && run.raw_end && now >= run.analyze_deadline) {
                // An analyze restarted after the run's end never heard of it: without this the
                // file stays open until archive stops. Its cakes that never came are named below.
                run.end = *run.raw_end;
                const std::string why =
                    fmt::format("analyze never ended the run: closed {} ms after ingest's RunEnd",
                                config_.analyze_end_timeout_ms());
                count_error("no_analyze_end", fmt::format("run {}: {}", it->first, why));
                run.end->set_detail(run.end->detail().empty() ? why
                                                              : run.end->detail() + "; " + why);
            }
            if (!run.end || (!run.raw_ended && now < run.raw_deadline)) {
                ++it;
                continue;
            }
            pb::RunEnd end = *run.end;
            const std::uint64_t stored = run.file.raw_frames() + run.file.flat_fields();
            if (raw_enabled_ && (!run.raw_ended || stored < run.raw_frames_expected())) {
                const std::string missing = fmt::format(
                    "raw frames incomplete: {} archived{} missing_sequences=[{}]", stored,
                    run.raw_ended ? fmt::format(" of {} sent", run.raw_frames_expected())
                                  : std::string(", the raw feed never ended the run"),
                    fmt::join(missing_raw(run), ","));
                count_error("raw_incomplete", fmt::format("run {}: {}", it->first, missing));
                end.set_detail(end.detail().empty() ? missing : end.detail() + "; " + missing);
            }
            if (const std::string cakes = missing_cakes(it->first, run); !cakes.empty()) {
                end.set_detail(end.detail().empty() ? cakes : end.detail() + "; " + cakes);
            }
            auto node = runs_.extract(it++);
            close(node.key(), node.mapped(), end);
        }
    }

    // Raw frames not stored, by sequence (the first kMissingListedMax): every sequence below the
    // count the raw feed's RunEnd gives (its sequences_end where a killed ingest lost frames
    // before sending them), or (no RunEnd: its ingest died) below the highest one stored, since
    // sequences count every frame of a run from 0 (docs/protocol.md).
    static std::vector<std::uint64_t> missing_raw(const OpenRun& run) {
        std::uint64_t upper = run.raw_ended ? run.raw_frames_expected() : 0;
        if (!run.raw_ended && !run.raw_sequences.empty()) {
            upper = *run.raw_sequences.highest();
        }
        std::vector<std::uint64_t> missing;
        for (std::uint64_t s = 0; s < upper && missing.size() < kMissingListedMax; ++s) {
            if (!run.raw_sequences.contains(s)) {
                missing.push_back(s);
            }
        }
        return missing;
    }

    // The data frames stored without their cake, named by sequence (the first
    // kMissingListedMax, then "and N more") and counted; empty when every one has its cake. A
    // cake of a frame whose raw frame is missing too is named by missing_sequences already: its
    // kind is not known here. Cakes analyze had sent to a killed archive die with it
    // (docs/faults.md); this is where they are named.
    std::string missing_cakes(const std::string& run_id, const OpenRun& run) {
        std::vector<std::uint64_t> listed;
        std::size_t missing = 0;
        run.data_sequences.for_each([&](std::uint64_t s) {
            if (!run.cake_sequences.contains(s)) {
                ++missing;
                if (listed.size() < kMissingListedMax) {
                    listed.push_back(s);
                }
            }
        });
        if (missing == 0) {
            return {};
        }
        metrics_.cakes_missing.increment(static_cast<double>(missing));
        const std::string more = missing > listed.size()
                                     ? fmt::format(" and {} more", missing - listed.size())
                                     : std::string();
        std::string text = fmt::format(
            "cakes incomplete: {} of {} data frames archived without their cake "
            "missing_cakes=[{}]{}",
            missing, run.data_sequences.size(), fmt::join(listed, ","), more);
        spdlog::warn("data frames without their cake run={} detail=\"{}\"", run_id, text);
        return text;
    }

    void receipt_finished(const std::string& run_id) {
        if (receipts_.handle() != nullptr) {
            finished_receipts_[run_id] = Clock::now() + kFinishedReceiptedFor;
            receipts_changed_ = true;
        }
    }

    void refuse_cake(OpenRun& run, std::uint64_t sequence) {
        run.cakes_refused.insert(sequence);
        receipts_changed_ = true;
    }

    // ArchiveReceipts (docs/protocol.md, "Archive receipts"): what every open run's file holds,
    // all of it flushed (each append flushes before it returns), and the runs finished lately.
    // Sent as soon as something was stored (at most every kReceiptMinGap: the senders' bounds
    // divided by this gap cap the chain's rate), and every receipt_interval_ms also when nothing
    // changed: it says which archive process is alive, and a sender that missed one (PUB drops
    // for a slow subscriber) gets the next.
    void publish_receipts(Clock::time_point now) {
        if (receipts_.handle() == nullptr) {
            return;
        }
        const bool prompt = receipts_changed_ && now >= last_receipts_ + kReceiptMinGap;
        if (!prompt && now < last_receipts_ + milliseconds(config_.receipt_interval_ms())) {
            return;
        }
        last_receipts_ = now;
        receipts_changed_ = false;
        pb::ArchiveReceipts receipts;
        receipts.set_session(session_);
        for (const auto& [run_id, run] : runs_) {
            pb::RunReceipt& receipt = *receipts.add_runs();
            receipt.set_run_id(run_id);
            transport::append_ranges(run.raw_sequences, *receipt.mutable_raw());
            transport::append_ranges(run.cake_sequences, *receipt.mutable_cakes());
            transport::append_ranges(run.raw_refused, *receipt.mutable_raw_refused());
            transport::append_ranges(run.cakes_refused, *receipt.mutable_cakes_refused());
            if (run.last_result) {
                receipt.set_has_result(true);
                receipt.set_result_frames_p(run.last_result->frames_p);
                receipt.set_result_frames_n(run.last_result->frames_n);
                receipt.set_result_final(run.last_result->is_final);
            }
        }
        for (auto it = finished_receipts_.begin(); it != finished_receipts_.end();) {
            if (now >= it->second) {
                it = finished_receipts_.erase(it);
                continue;
            }
            pb::RunReceipt& receipt = *receipts.add_runs();
            receipt.set_run_id(it->first);
            receipt.set_finished(true);
            ++it;
        }
        auto message = transport::encode_control(receipts);
        if (!message) {
            count_error("receipts", message.error().message);
            return;
        }
        // A PUB never blocks; a receipt a subscriber misses is repeated by the next.
        if (auto sent = transport::try_send(receipts_, *message); !sent) {
            count_error("receipts", sent.error().message);
        }
    }

    // Closes the file and lets go of every HDF5 handle of it before saying so: a reader that
    // waits for the log line (the demo, the tests) then opens a complete, released file.
    void close(const std::string& run_id, OpenRun& run, const pb::RunEnd& end) {
        const std::uint64_t cakes = run.file.reduced_frames();
        const std::uint64_t results = run.file.results();
        const std::uint64_t raw = run.file.raw_frames() + run.file.flat_fields();
        if (auto closed = run.file.close(end); !closed) {
            count_error("close", closed.error().message);
        }
        count_bytes_written(run_id, run.file);
        file_sizes_.erase(run_id);
        remember_finished(run_id);
        { [[maybe_unused]] OpenRun released = std::move(run); }
        metrics_.runs_closed.increment();
        spdlog::info("run file closed run={} raw_frames={} reduced_frames={} results={} reason={}",
                     run_id, raw, cakes, results, pb::RunEndReason_Name(end.reason()));
    }

    const cfg::ArchiveConfig& config_;
    runtime::ServiceContext& context_;
    ArchiveMetrics metrics_;
    zmq::context_t zmq_;
    transport::SocketSecurity security_;  // after the context it serves, before the sockets
    zmq::socket_t socket_;                // analyze's archive feed
    zmq::socket_t raw_;                   // ingest's raw frame feed, when raw_enabled_
    zmq::socket_t receipts_;              // ArchiveReceipts PUB, when configured
    const std::uint64_t session_ = new_session();
    Clock::time_point last_receipts_{};  // when the last ArchiveReceipts went out
    bool receipts_changed_ = false;      // something was stored, refused or finished since
    // Finished runs named in the receipts, until when (kFinishedReceiptedFor after the last
    // reason to).
    std::map<std::string, Clock::time_point, std::less<>> finished_receipts_;
    bool raw_enabled_ = false;
    archive::RawCompression raw_compression_ = archive::RawCompression::kBslz4;
    // RAW frames are compressed on these threads when raw_compression is lz4 or bslz4.
    std::unique_ptr<CompressionPool> pool_;
    runtime::DiskRoom disk_room_;
    bool disk_room_error_logged_ = false;
    using RawItem = std::variant<std::shared_ptr<RawJob>, pb::RunStart, pb::RunEnd, pb::RunEvent>;
    std::deque<RawItem> raw_order_;  // the raw feed's messages not yet applied, in feed order
    std::map<std::string, OpenRun, std::less<>> runs_;
    std::set<std::string, std::less<>> finished_;  // closed or refused: never reopened
    std::deque<std::string> finished_order_;       // oldest first, kFinishedRemembered at most
    std::map<std::string, std::uintmax_t, std::less<>> file_sizes_;
    std::map<std::string, Clock::time_point, std::less<>> last_logged_;
    transport::RejectionLog rejections_{"archive"};
};

}  // namespace

std::string run_file_name(std::string_view run_id) {
    std::string name;
    bool replaced = run_id.empty();
    for (const char c : run_id) {
        const bool keep = file_name_char(c) && !(name.empty() && c == '.');
        name.push_back(keep ? c : '_');
        replaced = replaced || !keep;
    }
    if (replaced) {
        std::uint32_t hash = 2166136261U;  // FNV-1a, 32 bits: stable across builds
        for (const char c : run_id) {
            hash = (hash ^ static_cast<unsigned char>(c)) * 16777619U;
        }
        name += fmt::format("{}{:08x}", name.empty() ? "run-" : "-", hash);
    }
    return name + ".nxs";
}

Result<void> run(const cfg::ArchiveConfig& config, runtime::ServiceContext& context) {
    auto metrics = register_metrics(context.metrics);
    if (!metrics) {
        return tl::unexpected(metrics.error());
    }
    ArchiveService service(config, context, std::move(*metrics));
    return service.run();
}

}  // namespace anisoflow::archiver
