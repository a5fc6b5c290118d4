#pragma once
// The body of every service's main(): command line, configuration, logging, signals, metrics,
// then the service's own loop until stop. A service's main.cpp is
//
//     int main(int argc, char** argv) {
//         return anisoflow::runtime::service_main<anisoflow::runtime::cfg::IngestConfig>(
//             "ingest", argc, argv, anisoflow::ingest::run);
//     }
//
// Exit codes: 0 done (or --help, --version, a valid --check-config), 1 invalid configuration or
// a failed service, 2 bad command line.

#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "anisoflow/metrics/metrics.hpp"
#include "anisoflow/runtime/command_line.hpp"
#include "anisoflow/runtime/config_loader.hpp"
#include "anisoflow/runtime/service_config.hpp"
#include "anisoflow/runtime/stop.hpp"

namespace anisoflow::runtime {

/// What a running service gets besides its configuration.
struct ServiceContext {
    std::string service;         ///< "ingest"
    StopSource stop;             ///< requested by SIGINT/SIGTERM or by a failing stage
    metrics::Registry& metrics;  ///< served at metrics.bind_address when enabled
    std::uint16_t metrics_port;  ///< the port listened on (0 when metrics are disabled)
};

template <class Config>
using ServiceLoop = std::function<Result<void>(const Config&, ServiceContext&)>;

namespace detail {

/// The part of service_main() after the configuration is known: logging, signals, metrics, the
/// loop, and the log lines of start and stop. Returns the exit code.
int run_service(std::string_view service, const google::protobuf::Message& config,
                const cfg::Logging& logging, const cfg::Metrics& metrics,
                const std::function<Result<void>(ServiceContext&)>& loop);

/// `<service>-<host name>-<process id>`: unique per process on a network, for an instance whose
/// configuration leaves `instance` empty.
std::string default_instance_name(std::string_view service);

/// Prints `text` on stderr prefixed with the program name.
void print_error(std::string_view service, std::string_view text);

}  // namespace detail

/// Parses the command line, loads and validates the configuration (printing every problem), and
/// runs `loop` until it returns. Also the last-resort catch of main(): an exception that escapes
/// is logged and the exit code is 1.
template <class Config>
int service_main(std::string_view service, int argc, char** argv, const ServiceLoop<Config>& loop) {
    try {
        const std::vector<std::string> arguments(argv + 1, argv + argc);
        auto command_line = parse_command_line(service, arguments);
        if (!command_line) {
            detail::print_error(service, command_line.error().message);
            return 2;
        }
        if (command_line->early_exit) {
            std::cout << command_line->early_exit_text << std::flush;
            return *command_line->early_exit;
        }
        Config config;
        if (auto loaded = load_effective_config(config, *command_line); !loaded) {
            detail::print_error(service, loaded.error().message);
            return 1;
        }
        if (config.instance().empty()) {
            // Replicas started from one configuration (docker compose --scale reduce=N) need
            // distinct names: a reduce worker's name is its routing id at ingest.
            config.set_instance(detail::default_instance_name(service));
        }
        if (const auto problems = validate(config); !problems.empty()) {
            for (const std::string& problem : problems) {
                detail::print_error(service, problem);
            }
            return 1;
        }
        if (command_line->check_config) {
            std::cout << to_toml(config) << std::flush;
            return 0;
        }
        return detail::run_service(service, config, config.logging(), config.metrics(),
                                   [&](ServiceContext& context) { return loop(config, context); });
    } catch (const std::exception& error) {
        detail::print_error(service, std::string("unexpected failure: ") + error.what());
    } catch (...) {
        detail::print_error(service, "unexpected failure");
    }
    return 1;
}

}  // namespace anisoflow::runtime
