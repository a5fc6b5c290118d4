#include "anisoflow/runtime/service_config.hpp"

#include <charconv>
#include <cstdint>
#include <string_view>

#include <fmt/format.h>

namespace anisoflow::runtime {

namespace {

using Problems = std::vector<std::string>;

bool is_port(std::string_view text) {
    unsigned value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    return !text.empty() && ec == std::errc{} && ptr == end && value <= 65535;
}

void check_positive(Problems& problems, std::string_view key, std::uint64_t value,
                    std::string_view why) {
    if (value == 0) {
        problems.push_back(fmt::format("{}: 0; {}", key, why));
    }
}

void check_instance(Problems& problems, const std::string& instance) {
    if (instance.empty()) {
        problems.emplace_back("instance: empty; name this instance (e.g. \"reduce-0\")");
    }
}

void check_logging(Problems& problems, const cfg::Logging& logging) {
    if (logging.level() == cfg::LOG_LEVEL_UNSPECIFIED) {
        problems.emplace_back(
            "logging.level: unset; one of trace, debug, info, warn, error, off is needed");
    }
}

void check_metrics(Problems& problems, const cfg::Metrics& metrics) {
    if (!metrics.enabled()) {
        return;
    }
    const std::string& address = metrics.bind_address();
    const auto colon = address.rfind(':');
    if (address.empty()) {
        problems.emplace_back(
            "metrics.bind_address: empty; write host:port (e.g. \"127.0.0.1:9101\") or set "
            "metrics.enabled = false");
    } else if (colon == std::string::npos || colon == 0 ||
               !is_port(std::string_view(address).substr(colon + 1))) {
        problems.push_back(fmt::format(
            "metrics.bind_address: '{}' is not host:port with a port in 0..65535", address));
    }
}

// "@tcp://127.0.0.1:5555" / ">tcp://host:5555", "@ipc:///path", "@inproc://name"
// (docs/protocol.md).
void check_socket(Problems& problems, std::string_view key, const cfg::Socket& socket) {
    const std::string& address = socket.address();
    if (address.empty()) {
        problems.push_back(
            fmt::format("{}.address: empty; write @tcp://127.0.0.1:PORT to bind (or a wider host "
                        "the peers reach) or >tcp://HOST:PORT to connect",
                        key));
    } else if (address.front() != '@' && address.front() != '>') {
        problems.push_back(fmt::format(
            "{}.address: '{}' starts with neither @ (bind) nor > (connect)", key, address));
    } else {
        const std::string_view endpoint = std::string_view(address).substr(1);
        const auto scheme_end = endpoint.find("://");
        const std::string_view scheme = endpoint.substr(0, scheme_end);
        const std::string_view rest =
            scheme_end == std::string_view::npos ? "" : endpoint.substr(scheme_end + 3);
        if (scheme != "tcp" && scheme != "ipc" && scheme != "inproc") {
            problems.push_back(fmt::format(
                "{}.address: '{}' has no tcp://, ipc:// or inproc:// transport", key, address));
        } else if (rest.empty()) {
            problems.push_back(fmt::format("{}.address: '{}' names no endpoint", key, address));
        } else if (scheme == "tcp") {
            const auto colon = rest.rfind(':');
            const std::string_view port =
                colon == std::string_view::npos ? "" : rest.substr(colon + 1);
            if (colon == std::string_view::npos || colon == 0 || (port != "*" && !is_port(port))) {
                problems.push_back(fmt::format(
                    "{}.address: '{}' needs HOST:PORT after tcp:// (PORT a number or *)", key,
                    address));
            }
        }
    }
    check_positive(problems, fmt::format("{}.send_hwm_messages", key), socket.send_hwm_messages(),
                   "ZeroMQ would read it as no limit; queue at least 1 message");
    check_positive(problems, fmt::format("{}.receive_hwm_messages", key),
                   socket.receive_hwm_messages(),
                   "ZeroMQ would read it as no limit; queue at least 1 message");
}

template <class Config>
void check_common(Problems& problems, const Config& config) {
    check_instance(problems, config.instance());
    check_logging(problems, config.logging());
    check_metrics(problems, config.metrics());
    check_positive(problems, "heartbeat_interval_ms", config.heartbeat_interval_ms(),
                   "heartbeats need an interval of at least 1 ms");
}

}  // namespace

std::vector<std::string> validate(const cfg::IngestConfig& config) {
    Problems problems;
    check_common(problems, config);
    check_socket(problems, "endpoints.frames_out", config.endpoints().frames_out());
    check_socket(problems, "endpoints.control_out", config.endpoints().control_out());
    if (!config.endpoints().raw_out().address().empty()) {
        check_socket(problems, "endpoints.raw_out", config.endpoints().raw_out());
    }
    const bool run_control = !config.endpoints().run_control().address().empty();
    if (run_control) {
        check_socket(problems, "endpoints.run_control", config.endpoints().run_control());
        if (config.source().kind() == cfg::SOURCE_KIND_ANISOFLOW_STREAM) {
            problems.emplace_back(
                "endpoints.run_control: set, but an anisoflow stream announces its own runs; "
                "run control drives a dectris_stream or watched_folder source");
        }
    }
    check_positive(problems, "run_start_republish_interval_ms",
                   config.run_start_republish_interval_ms(),
                   "late subscribers need RunStart re-sent at a finite interval");
    check_positive(problems, "queue_capacity_frames", config.queue_capacity_frames(),
                   "the queue must hold at least 1 frame");
    check_positive(problems, "send_timeout_ms", config.send_timeout_ms(),
                   "a frame needs at least 1 ms to be accepted");
    check_positive(problems, "worker_timeout_ms", config.worker_timeout_ms(),
                   "a reduce worker needs at least 1 ms to answer");
    check_positive(problems, "drain_timeout_ms", config.drain_timeout_ms(),
                   "frames in flight at a run's end need at least 1 ms to be acknowledged");
    check_positive(problems, "max_unconfirmed_frames", config.max_unconfirmed_frames(),
                   "at 0 no frame could ever be dispatched");
    if (!config.endpoints().receipts_in().address().empty()) {
        if (config.endpoints().raw_out().address().empty()) {
            problems.emplace_back(
                "endpoints.receipts_in: set, but endpoints.raw_out is not: receipts are for the "
                "raw frame feed");
        }
        check_socket(problems, "endpoints.receipts_in", config.endpoints().receipts_in());
        check_positive(problems, "max_unreceipted_raw_frames", config.max_unreceipted_raw_frames(),
                       "with receipts, at 0 no frame could ever go to archive");
    }
    const cfg::IngestSource& source = config.source();
    check_positive(problems, "source.receive_hwm_messages", source.receive_hwm_messages(),
                   "ZeroMQ would read it as no limit; queue at least 1 message");
    switch (source.kind()) {
        case cfg::SOURCE_KIND_DECTRIS_STREAM:
            if (source.dectris_address().empty() || (source.dectris_address().front() != '>' &&
                                                     source.dectris_address().front() != '@')) {
                problems.push_back(fmt::format(
                    "source.dectris_address: '{}'; write >tcp://DETECTOR:PORT to connect",
                    source.dectris_address()));
            }
            if (source.dectris_protocol() == cfg::DECTRIS_PROTOCOL_UNSPECIFIED) {
                problems.emplace_back(
                    "source.dectris_protocol: unset; stream_v1 or stream_v2 is needed");
            }
            break;
        case cfg::SOURCE_KIND_ANISOFLOW_STREAM:
            if (source.stream_address().size() < 2 || (source.stream_address().front() != '@' &&
                                                       source.stream_address().front() != '>')) {
                problems.push_back(fmt::format(
                    "source.stream_address: '{}'; write @tcp://127.0.0.1:PORT to bind (the sender "
                    "connects)",
                    source.stream_address()));
            }
            break;
        case cfg::SOURCE_KIND_FRAME_FILES:
            if (source.frame_files().empty()) {
                problems.emplace_back(
                    "source.frame_files: empty; list at least one frame file for kind "
                    "frame_files");
            }
            break;
        case cfg::SOURCE_KIND_WATCHED_FOLDER:
            if (source.watch_directory().empty()) {
                problems.emplace_back(
                    "source.watch_directory: empty; name the folder the detector writes into");
            }
            if (!run_control) {
                problems.emplace_back(
                    "endpoints.run_control: empty; a watched folder needs run control to say "
                    "what its frames are (docs/run-control.md)");
            }
            check_positive(problems, "source.watch_settle_ms", source.watch_settle_ms(),
                           "a file must stay unchanged for some time before it is read");
            break;
        default:
            problems.emplace_back(
                "source.kind: unset; dectris_stream, anisoflow_stream, watched_folder or "
                "frame_files is needed");
            break;
    }
    return problems;
}

std::vector<std::string> validate(const cfg::ReduceConfig& config) {
    Problems problems;
    check_common(problems, config);
    check_socket(problems, "endpoints.frames_in", config.endpoints().frames_in());
    check_socket(problems, "endpoints.control_in", config.endpoints().control_in());
    check_socket(problems, "endpoints.reduced_out", config.endpoints().reduced_out());
    check_positive(problems, "threads", config.threads(), "at least 1 thread is needed");
    check_positive(problems, "queue_capacity_frames", config.queue_capacity_frames(),
                   "the queue must hold at least 1 frame");
    check_positive(problems, "pending_frames_max", config.pending_frames_max(),
                   "frames arriving before their RunStart need room for at least 1");
    check_positive(problems, "send_timeout_ms", config.send_timeout_ms(),
                   "a cake needs at least 1 ms to be accepted");
    return problems;
}

std::vector<std::string> validate(const cfg::AnalyzeConfig& config) {
    Problems problems;
    check_common(problems, config);
    check_socket(problems, "endpoints.reduced_in", config.endpoints().reduced_in());
    check_socket(problems, "endpoints.control_in", config.endpoints().control_in());
    check_socket(problems, "endpoints.results_out", config.endpoints().results_out());
    check_positive(problems, "threads", config.threads(), "at least 1 thread is needed");
    check_positive(problems, "recompute_interval_ms", config.recompute_interval_ms(),
                   "partial results need an interval of at least 1 ms");
    check_positive(problems, "drain_timeout_ms", config.drain_timeout_ms(),
                   "frames in flight after RunEnd need at least 1 ms to arrive");
    // Archive receipts are optional: an empty address sends each message once.
    if (!config.endpoints().receipts_in().address().empty()) {
        check_socket(problems, "endpoints.receipts_in", config.endpoints().receipts_in());
        check_positive(problems, "max_unreceipted_messages", config.max_unreceipted_messages(),
                       "with receipts, at 0 no message could ever go to archive");
    }
    return problems;
}

std::vector<std::string> validate(const cfg::ArchiveConfig& config) {
    Problems problems;
    check_common(problems, config);
    check_socket(problems, "endpoints.results_in", config.endpoints().results_in());
    check_socket(problems, "endpoints.control_in", config.endpoints().control_in());
    if (config.archive_dir().empty()) {
        problems.emplace_back("archive_dir: empty; name the directory of the run files");
    }
    check_positive(problems, "flush_interval_ms", config.flush_interval_ms(),
                   "run files need a flush interval of at least 1 ms");
    check_socket(problems, "endpoints.archive_in", config.endpoints().archive_in());
    // Raw frames are optional: an empty address switches them off.
    if (!config.endpoints().raw_in().address().empty()) {
        check_socket(problems, "endpoints.raw_in", config.endpoints().raw_in());
    }
    const std::string& compression = config.raw_compression();
    if (compression != "bslz4" && compression != "lz4" && compression != "none") {
        problems.push_back(
            fmt::format("raw_compression: \"{}\" is not one of bslz4, lz4, none", compression));
    }
    check_positive(problems, "raw_drain_timeout_ms", config.raw_drain_timeout_ms(),
                   "a run's last raw frames need at least 1 ms to arrive");
    check_positive(problems, "analyze_end_timeout_ms", config.analyze_end_timeout_ms(),
                   "analyze needs time to end a run after ingest did");
    if (!config.endpoints().receipts_out().address().empty()) {
        check_socket(problems, "endpoints.receipts_out", config.endpoints().receipts_out());
        check_positive(problems, "receipt_interval_ms", config.receipt_interval_ms(),
                       "receipts need an interval of at least 1 ms");
        if (config.receipt_interval_ms() > 10000) {
            problems.push_back(fmt::format(
                "receipt_interval_ms: {}; at most 10000, so that a finished run is receipted "
                "several times in the 30 s it is listed",
                config.receipt_interval_ms()));
        }
    }
    return problems;
}

std::vector<std::string> validate(const cfg::GatewayConfig& config) {
    Problems problems;
    check_instance(problems, config.instance());
    check_logging(problems, config.logging());
    check_metrics(problems, config.metrics());
    check_socket(problems, "endpoints.results_in", config.endpoints().results_in());
    check_socket(problems, "endpoints.control_in", config.endpoints().control_in());
    const std::string& address = config.http().bind_address();
    const auto colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0 ||
        !is_port(std::string_view(address).substr(colon + 1))) {
        problems.push_back(fmt::format(
            "http.bind_address: '{}' is not host:port with a port in 0..65535", address));
    }
    check_positive(problems, "http.max_websocket_clients", config.http().max_websocket_clients(),
                   "at least one page must be able to connect");
    check_positive(problems, "http.websocket_queue_messages",
                   config.http().websocket_queue_messages(),
                   "a page must be able to hold at least one push");
    check_positive(problems, "runs_kept", config.runs_kept(), "at least one run is remembered");
    check_positive(problems, "scrape_interval_ms", config.scrape_interval_ms(),
                   "the services' metrics need an interval of at least 1 ms");
    return problems;
}

std::string log_level_name(cfg::LogLevel level) {
    switch (level) {
        case cfg::LOG_LEVEL_TRACE:
            return "trace";
        case cfg::LOG_LEVEL_DEBUG:
            return "debug";
        case cfg::LOG_LEVEL_INFO:
            return "info";
        case cfg::LOG_LEVEL_WARN:
            return "warn";
        case cfg::LOG_LEVEL_ERROR:
            return "error";
        case cfg::LOG_LEVEL_OFF:
            return "off";
        default:
            return "";
    }
}

}  // namespace anisoflow::runtime
