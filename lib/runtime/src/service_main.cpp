#include "anisoflow/runtime/service_main.hpp"

#include <climits>
#include <csignal>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "anisoflow/runtime/logging.hpp"
#include "anisoflow/runtime/memory_trimmer.hpp"

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
    // Before the service's threads: freed frame buffers go back to the system every few
    // seconds (memory_trimmer.hpp), so a long run's resident memory stays flat.
    const MemoryTrimmer trimmer(kMemoryTrimInterval);
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
