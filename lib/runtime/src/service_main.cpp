#include "anisoflow/runtime/service_main.hpp"

#include <climits>
#include <csignal>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "anisoflow/runtime/logging.hpp"

namespace anisoflow::runtime::detail {

namespace {

std::string_view signal_name(int signal_number) {
    switch (signal_number) {
        case SIGINT:
            return "SIGINT";
        case SIGTERM:
            return "SIGTERM";
        default:
            return "none";
    }
}

// Frame-sized buffers (a 1024 x 1024 frame is 2 MB, its cake's parts 0.5 MB each) are taken by
// one thread (ZeroMQ's I/O thread, a worker stage) and freed by another, at up to hundreds a
// second. glibc serves blocks from 128 KiB up with mmap, which goes back to the system at free(),
// but it raises that threshold to the size of every mmapped block freed (up to 32 MiB): after the
// first frame, frames come from the threads' heaps, where the most ever in flight stays resident
// and free holes split them: resident memory crept up for a whole run (docs/performance.md,
// "Soak"). Setting the threshold pins it at glibc's initial value: such blocks are mmapped and
// unmapped every time, at the cost of an mmap, a munmap and a page fault per 4 KiB touched.
constexpr int kMmapThresholdBytes = 128 * 1024;

void pin_mmap_threshold() {
    // Once, at start, before the service's own threads.
    if (::mallopt(M_MMAP_THRESHOLD, kMmapThresholdBytes) == 0) {  // NOLINT(concurrency-mt-unsafe)
        spdlog::warn("mallopt(M_MMAP_THRESHOLD) failed: resident memory may creep up in long runs");
    }
}

}  // namespace

std::string default_instance_name(std::string_view service) {
    std::string host(HOST_NAME_MAX + 1, '\0');
    if (::gethostname(host.data(), host.size()) != 0) {
        host = "localhost";
    }
    host.resize(host.find('\0'));
    return fmt::format("{}-{}-{}", service, host, ::getpid());
}

void print_error(std::string_view service, std::string_view text) {
    // One prefixed line per problem: a file with three mistakes gives three lines.
    while (!text.empty()) {
        const auto end = text.find('\n');
        const std::string_view line = text.substr(0, end);
        std::fprintf(stderr, "anisoflow-%.*s: %.*s\n", static_cast<int>(service.size()),
                     service.data(), static_cast<int>(line.size()), line.data());
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    }
}

int run_service(std::string_view service, const google::protobuf::Message& config,
                const cfg::Logging& logging, const cfg::Metrics& metrics_config,
                const std::function<Result<void>(ServiceContext&)>& loop) {
    if (auto configured = configure_service_logging(service, log_level_name(logging.level()));
        !configured) {
        print_error(service, configured.error().message);
        return 1;
    }
    pin_mmap_threshold();
    auto stop = StopSource::create();
    if (!stop) {
        spdlog::error("cannot start error=\"{}\"", stop.error().message);
        return 1;
    }
    auto signals = StopSignals::install(*stop);
    if (!signals) {
        spdlog::error("cannot start error=\"{}\"", signals.error().message);
        return 1;
    }
    metrics::Registry registry;
    std::optional<metrics::MetricsServer> server;
    if (metrics_config.enabled()) {
        auto started = metrics::MetricsServer::start(metrics_config.bind_address(), registry);
        if (!started) {
            spdlog::error("cannot start error=\"{}\"", started.error().message);
            return 1;
        }
        server.emplace(std::move(*started));
    }
    spdlog::info("starting version={} git_sha={} metrics_port={}", metrics::build_version(),
                 metrics::build_git_sha(), server ? server->port() : 0);
    spdlog::debug("effective configuration:\n{}", to_toml(config));

    ServiceContext context{std::string(service), *stop, registry,
                           server ? server->port() : std::uint16_t{0}};
    Result<void> result;
    try {
        result = loop(context);
    } catch (const std::exception& error) {
        // Last resort: library code reports expected failures as Result values.
        result = fail(ErrorCode::kIo, "unexpected exception: {}", error.what());
    }
    if (!result) {
        spdlog::error("stopped error=\"{}\"", result.error().message);
        return 1;
    }
    spdlog::info("stopped signal={}", signal_name(StopSignals::received_signal()));
    return 0;
}

}  // namespace anisoflow::runtime::detail
