#pragma once
// The command line every service shares: --config FILE, --check-config, --log-level LEVEL,
// --set key.path=value (repeatable), --version, --help.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/message.h>

#include "anisoflow/core/result.hpp"

namespace anisoflow::runtime {

struct CommandLine {
    std::string config_path;             ///< --config; "" = the built-in defaults only
    bool check_config = false;           ///< --check-config: validate, print, exit 0 or 1
    std::string log_level;               ///< --log-level; "" = logging.level of the configuration
    std::vector<std::string> overrides;  ///< --set, in the order given
    /// Set for --help and --version: print `early_exit_text` and exit with this code.
    std::optional<int> early_exit;
    std::string early_exit_text;
};

/// Parses the arguments after the program name for `anisoflow-<service>`. Errors say what is
/// wrong with the command line (unknown option, missing value).
[[nodiscard]] Result<CommandLine> parse_command_line(std::string_view service,
                                                     const std::vector<std::string>& arguments);

/// The effective configuration: the built-in defaults, then --config FILE, then --log-level, then
/// each --set in order, all through the same reflection code (config_loader.hpp).
[[nodiscard]] Result<void> load_effective_config(google::protobuf::Message& config,
                                                 const CommandLine& command_line);

/// "anisoflow-ingest 0.1.0 (git 0123456789ab)"
[[nodiscard]] std::string version_text(std::string_view service);

}  // namespace anisoflow::runtime
