#include "archive_service.hpp"

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
    auto errors = registry.counter_family(
        "anisoflow_archive_errors_total", "messages that could not be archived, by reason",
        "reason", {"create", "no_open_run", "bad_cake", "write", "close"});
    auto rejected = registry.counter_family("anisoflow_archive_messages_rejected_total",
                                            "messages dropped by decode(), by reason", "reason");
    if (!opened || !closed || !reduced || !results || !errors || !rejected) {
        return fail(ErrorCode::kInvalidArgument, "cannot register the archive metrics");
    }
    return ArchiveMetrics{*opened, *closed, *reduced, *results, *errors, *rejected};
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
        std::error_code ec;
        std::filesystem::create_directories(config_.archive_dir(), ec);
        if (ec) {
            return fail(ErrorCode::kIo, "archive_dir {}: {}", config_.archive_dir(), ec.message());
        }
        transport::SocketOptions options;
        options.send_hwm = static_cast<int>(in.send_hwm_messages());
        options.receive_hwm = static_cast<int>(in.receive_hwm_messages());
        auto socket = transport::open_socket(zmq_, zmq::socket_type::pull, in.address(), options);
        if (!socket) {
            return tl::unexpected(socket.error().with_context("endpoints.archive_in"));
        }
        socket_ = std::move(*socket);
        spdlog::info("ready archive_dir={}", config_.archive_dir());
        const runtime::StopToken stop = context_.stop.token();
        while (!stop.stop_requested()) {
            auto received = transport::receive(socket_, kPollInterval);
            if (!received) {
                return tl::unexpected(received.error().with_context("endpoints.archive_in"));
            }
            if (!*received) {
                continue;
            }
            auto decoded = transport::decode(std::move(**received));
            if (!decoded) {
                metrics_.rejected.with(transport::to_string(decoded.error().reason)).increment();
                continue;
            }
            if (auto* start = std::get_if<transport::RunStartMessage>(&*decoded)) {
                on_run_start(start->start);
            } else if (auto* cake = std::get_if<transport::ReducedMessage>(&*decoded)) {
                on_reduced(*cake);
            } else if (auto* result = std::get_if<transport::ResultMessage>(&*decoded)) {
                on_result(*result);
            } else if (auto* end = std::get_if<transport::RunEndMessage>(&*decoded)) {
                on_run_end(end->end);
            }
        }
        // Files still open are marked aborted by ~RunArchive.
        if (!runs_.empty()) {
            spdlog::warn("stopping with {} run files open; they are marked aborted", runs_.size());
        }
        return {};
    }

  private:
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
        return &found->second;
    }

    void on_run_start(const pb::RunStart& start) {
        if (runs_.contains(start.run_id())) {
            return;
        }
        const std::filesystem::path path =
            std::filesystem::path(config_.archive_dir()) / run_file_name(start.run_id());
        archive::ArchiveOptions options;
        options.store_raw = false;  // raw frames are not on the archive feed (README.md)
        auto created = archive::RunArchive::create(path, start, options);
        if (!created) {
            count_error("create", created.error().message);
            return;
        }
        metrics_.runs_opened.increment();
        spdlog::info("run file created run={} path={}", start.run_id(), path.string());
        runs_.emplace(start.run_id(), std::move(*created));
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
    }

    void on_run_end(const pb::RunEnd& end) {
        archive::RunArchive* file = find(end.run_id(), "the end");
        if (file == nullptr) {
            return;
        }
        const std::uint64_t cakes = file->reduced_frames();
        const std::uint64_t results = file->results();
        if (auto closed = file->close(end); !closed) {
            count_error("close", closed.error().message);
        }
        metrics_.runs_closed.increment();
        spdlog::info("run file closed run={} reduced_frames={} results={} reason={}", end.run_id(),
                     cakes, results, pb::RunEndReason_Name(end.reason()));
        runs_.erase(end.run_id());
    }

    const cfg::ArchiveConfig& config_;
    runtime::ServiceContext& context_;
    ArchiveMetrics metrics_;
    zmq::context_t zmq_;
    zmq::socket_t socket_;
    std::map<std::string, archive::RunArchive, std::less<>> runs_;
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
