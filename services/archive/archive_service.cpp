#include "archive_service.hpp"

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "anisoflow/archive/run_archive.hpp"
#include "anisoflow/metrics/metrics.hpp"
#include "anisoflow/reduce/cake_integrator.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/socket.hpp"

namespace anisoflow::archiver {

namespace {

namespace pb = ::anisoflow::stream::v1;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kPollInterval{50};

bool file_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

struct ArchiveMetrics {
    metrics::Counter runs_opened;
    metrics::Counter runs_closed;
    metrics::Counter reduced_written;
    metrics::Counter results_written;
    metrics::Counter raw_written;
    metrics::Counter bytes_received;
    metrics::Counter bytes_written;
    metrics::CounterFamily errors;
    metrics::CounterFamily rejected;
};

Result<ArchiveMetrics> register_metrics(metrics::Registry& registry) {
    auto opened = registry.counter("anisoflow_archive_runs_opened_total", "run files created");
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
    auto errors = registry.counter_family(
        "anisoflow_archive_errors_total", "messages that could not be archived, by reason",
        "reason",
        {"create", "no_open_run", "bad_cake", "write", "close", "raw_write", "raw_incomplete"});
    auto rejected = registry.counter_family("anisoflow_archive_messages_rejected_total",
                                            "messages dropped by decode(), by reason", "reason");
    if (!opened || !closed || !reduced || !results || !raw || !received || !written || !errors ||
        !rejected) {
        return fail(ErrorCode::kInvalidArgument, "cannot register the archive metrics");
    }
    return ArchiveMetrics{*opened,   *closed,  *reduced, *results, *raw,
                          *received, *written, *errors,  *rejected};
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
        spdlog::info("ready archive_dir={} raw_frames={}", config_.archive_dir(),
                     raw_enabled_ ? config_.raw_compression() : std::string("off"));
        const runtime::StopToken stop = context_.stop.token();
        while (!stop.stop_requested()) {
            std::array<zmq::pollitem_t, 2> items = {
                zmq::pollitem_t{socket_.handle(), 0, ZMQ_POLLIN, 0},
                zmq::pollitem_t{raw_enabled_ ? raw_.handle() : nullptr, 0, ZMQ_POLLIN, 0}};
            try {
                zmq::poll(items.data(), raw_enabled_ ? 2 : 1, kPollInterval);
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
            }
            if (auto drained = drain(socket_, "endpoints.archive_in", false); !drained) {
                return drained;
            }
            close_runs_due(Clock::now());
        }
        // Files still open are marked aborted by ~RunArchive.
        if (!runs_.empty()) {
            spdlog::warn("stopping with {} run files open; they are marked aborted", runs_.size());
        }
        return {};
    }

  private:
    // One run's file, closed once the feed's RunEnd came and (with raw frames on) the raw feed
    // ended the run too, or raw_drain_timeout_ms after the feed's RunEnd.
    struct OpenRun {
        archive::RunArchive file;
        std::optional<pb::RunEnd> end;  // the feed's RunEnd
        bool raw_ended = false;         // the raw feed's RunEnd came: every raw frame is in
        Clock::time_point raw_deadline;
        std::uint64_t raw_frames_sent = 0;  // frames the raw feed's RunEnd says it sent
    };

    Result<zmq::socket_t> open_pull(const cfg::Socket& socket, const char* key) {
        transport::SocketOptions options;
        options.send_hwm = static_cast<int>(socket.send_hwm_messages());
        options.receive_hwm = static_cast<int>(socket.receive_hwm_messages());
        auto opened =
            transport::open_socket(zmq_, zmq::socket_type::pull, socket.address(), options);
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

    // Everything queued on `socket` now, without waiting.
    Result<void> drain(zmq::socket_t& socket, const char* key, bool raw_feed) {
        while (true) {
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
                continue;
            }
            if (auto* start = std::get_if<transport::RunStartMessage>(&*decoded)) {
                on_run_start(start->start);
            } else if (auto* frame = std::get_if<transport::FrameMessage>(&*decoded);
                       frame != nullptr && raw_feed) {
                on_raw_frame(*frame);
            } else if (auto* cake = std::get_if<transport::ReducedMessage>(&*decoded)) {
                on_reduced(*cake);
            } else if (auto* result = std::get_if<transport::ResultMessage>(&*decoded)) {
                on_result(*result);
            } else if (auto* end = std::get_if<transport::RunEndMessage>(&*decoded)) {
                if (raw_feed) {
                    on_raw_end(end->end);
                } else {
                    on_run_end(end->end);
                }
            }
        }
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

    void count_error(std::string_view reason, const std::string& detail) {
        metrics_.errors.with(reason).increment();
        const auto now = Clock::now();
        auto& last = last_logged_[std::string(reason)];
        if (now - last >= std::chrono::seconds(1)) {
            last = now;
            spdlog::warn("not archived reason={} detail=\"{}\"", reason, detail);
        }
    }

    archive::RunArchive* find(const std::string& run_id, std::string_view what) {
        auto found = runs_.find(run_id);
        if (found == runs_.end()) {
            count_error("no_open_run",
                        fmt::format("{} of run {} without an open file", what, run_id));
            return nullptr;
        }
        return &found->second.file;
    }

    void on_run_start(const pb::RunStart& start) {
        if (runs_.contains(start.run_id())) {
            return;
        }
        const std::filesystem::path path =
            std::filesystem::path(config_.archive_dir()) / run_file_name(start.run_id());
        archive::ArchiveOptions options;
        options.store_raw = raw_enabled_;
        options.raw_compression = raw_compression_;
        auto created = archive::RunArchive::create(path, start, options);
        if (!created) {
            count_error("create", created.error().message);
            return;
        }
        metrics_.runs_opened.increment();
        spdlog::info("run file created run={} path={}", start.run_id(), path.string());
        runs_.emplace(start.run_id(), OpenRun{std::move(*created), std::nullopt, !raw_enabled_,
                                              Clock::time_point{}, 0});
    }

    void on_raw_frame(const transport::FrameMessage& frame) {
        const std::string& run_id = frame.header.run_id();
        archive::RunArchive* file = find(run_id, "a raw frame");
        if (file == nullptr) {
            return;
        }
        if (auto appended = file->append_raw(frame.header, transport::bytes_of(frame.payload));
            !appended) {
            count_error("raw_write", appended.error().message);
            return;
        }
        metrics_.raw_written.increment();
        count_bytes_written(run_id, *file);
    }

    void on_raw_end(const pb::RunEnd& end) {
        auto found = runs_.find(end.run_id());
        if (found == runs_.end()) {
            return;  // a repeated RunEnd of a closed run, or a run whose file failed
        }
        const pb::FrameCounts& sent = end.frames_sent();
        found->second.raw_ended = true;
        found->second.raw_frames_sent =
            sent.data_p() + sent.data_n() + sent.dark() + sent.flat() + sent.background();
    }

    void on_reduced(const transport::ReducedMessage& cake) {
        const pb::ReducedFrame& h = cake.header;
        archive::RunArchive* file = find(h.run_id(), "a cake");
        if (file == nullptr) {
            return;
        }
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
            return;
        }
        if (auto appended = file->append_reduced(h, means[0], means[1], means[2]); !appended) {
            count_error("write", appended.error().message);
            return;
        }
        metrics_.reduced_written.increment();
        count_bytes_written(h.run_id(), *file);
    }

    void on_result(const transport::ResultMessage& result) {
        archive::RunArchive* file = find(result.header.run_id(), "a result");
        if (file == nullptr) {
            return;
        }
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
        metrics_.results_written.increment();
        count_bytes_written(result.header.run_id(), *file);
    }

    void on_run_end(const pb::RunEnd& end) {
        auto found = runs_.find(end.run_id());
        if (found == runs_.end()) {
            count_error("no_open_run",
                        fmt::format("the end of run {} without an open file", end.run_id()));
            return;
        }
        if (!found->second.end) {
            found->second.end = end;
            found->second.raw_deadline =
                Clock::now() + milliseconds(config_.raw_drain_timeout_ms());
        }
    }

    void close_runs_due(Clock::time_point now) {
        for (auto it = runs_.begin(); it != runs_.end();) {
            OpenRun& run = it->second;
            if (!run.end || (!run.raw_ended && now < run.raw_deadline)) {
                ++it;
                continue;
            }
            pb::RunEnd end = *run.end;
            const std::uint64_t stored = run.file.raw_frames() + run.file.flat_fields();
            if (raw_enabled_ && (!run.raw_ended || stored < run.raw_frames_sent)) {
                const std::string missing =
                    fmt::format("raw frames incomplete: {} archived{}", stored,
                                run.raw_ended ? fmt::format(" of {} sent", run.raw_frames_sent)
                                              : std::string(", the raw feed never ended the run"));
                count_error("raw_incomplete", fmt::format("run {}: {}", it->first, missing));
                end.set_detail(end.detail().empty() ? missing : end.detail() + "; " + missing);
            }
            auto node = runs_.extract(it++);
            close(node.key(), node.mapped(), end);
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
        { [[maybe_unused]] OpenRun released = std::move(run); }
        metrics_.runs_closed.increment();
        spdlog::info("run file closed run={} raw_frames={} reduced_frames={} results={} reason={}",
                     run_id, raw, cakes, results, pb::RunEndReason_Name(end.reason()));
    }

    const cfg::ArchiveConfig& config_;
    runtime::ServiceContext& context_;
    ArchiveMetrics metrics_;
    zmq::context_t zmq_;
    zmq::socket_t socket_;  // analyze's archive feed
    zmq::socket_t raw_;     // ingest's raw frame feed, when raw_enabled_
    bool raw_enabled_ = false;
    archive::RawCompression raw_compression_ = archive::RawCompression::kBslz4;
    std::map<std::string, OpenRun, std::less<>> runs_;
    std::map<std::string, std::uintmax_t, std::less<>> file_sizes_;
    std::map<std::string, Clock::time_point, std::less<>> last_logged_;
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
