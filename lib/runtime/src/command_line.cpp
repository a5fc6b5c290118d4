#include "anisoflow/runtime/command_line.hpp"

#include <algorithm>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "anisoflow/metrics/metrics.hpp"
#include "anisoflow/runtime/config_loader.hpp"

namespace anisoflow::runtime {

std::string version_text(std::string_view service) {
    return fmt::format("anisoflow-{} {} (git {})", service, metrics::build_version(),
                       metrics::build_git_sha());
}

Result<CommandLine> parse_command_line(std::string_view service,
                                       const std::vector<std::string>& arguments) {
    CommandLine result;
    CLI::App app{fmt::format("anisoflow-{}: a service of the anisoflow stream (docs/"
                             "configuration.md lists every key)",
                             service),
                 fmt::format("anisoflow-{}", service)};
    app.set_version_flag("--version", version_text(service));
    app.add_option("--config", result.config_path,
                   "TOML file read over the built-in defaults (deploy/config/" +
                       std::string(service) + ".toml)");
    app.add_flag("--check-config", result.check_config,
                 "load and validate the configuration, print it, exit 0 (valid) or 1");
    app.add_option("--log-level", result.log_level,
                   "trace, debug, info, warn, error or off (overrides logging.level)");
    app.add_option("--set", result.overrides,
                   "KEY.PATH=VALUE: set any configuration key, e.g. --set threads=8 (repeatable)")
        ->take_all()
        ->allow_extra_args(false);
    std::vector<std::string> reversed(arguments.rbegin(), arguments.rend());  // CLI11 pops back
    try {
        app.parse(reversed);
    } catch (const CLI::CallForHelp& help) {
        std::ostringstream out;
        std::ostringstream err;
        result.early_exit = app.exit(help, out, err);
        result.early_exit_text = out.str();
        return result;
    } catch (const CLI::CallForVersion& version) {
        std::ostringstream out;
        std::ostringstream err;
        result.early_exit = app.exit(version, out, err);
        result.early_exit_text = out.str();
        return result;
    } catch (const CLI::ParseError& error) {
        return fail(ErrorCode::kInvalidArgument, "{} (see --help)", error.what());
    }
    return result;
}

Result<void> load_effective_config(google::protobuf::Message& config,
                                   const CommandLine& command_line) {
    if (auto defaults = merge_defaults(config); !defaults) {
        return defaults;
    }
    if (!command_line.config_path.empty()) {
        if (auto file = merge_toml_file(config, command_line.config_path); !file) {
            return file;
        }
    }
    if (!command_line.log_level.empty()) {
        if (auto level = apply_override(config, "logging.level=" + command_line.log_level);
            !level) {
            return fail(ErrorCode::kInvalidArgument,
                        "--log-level {}: not one of trace, debug, "
                        "info, warn, error, off",
                        command_line.log_level);
        }
    }
    for (const std::string& assignment : command_line.overrides) {
        if (auto applied = apply_override(config, assignment); !applied) {
            return applied;
        }
    }
    return {};
}

}  // namespace anisoflow::runtime
