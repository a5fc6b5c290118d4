#pragma once
// The four service configurations (proto/anisoflow/config/v1/services.proto) and the checks that
// a configuration that loaded is also usable: validate() names every problem at once.

#include <string>
#include <vector>

#include "anisoflow/config/v1/services.pb.h"

namespace anisoflow::runtime {

namespace cfg = ::anisoflow::config::v1;

/// Every problem of the configuration, one line each naming the key ("threads: 0; at least 1
/// thread is needed"); empty when it is usable.
[[nodiscard]] std::vector<std::string> validate(const cfg::IngestConfig& config);
[[nodiscard]] std::vector<std::string> validate(const cfg::ReduceConfig& config);
[[nodiscard]] std::vector<std::string> validate(const cfg::AnalyzeConfig& config);
[[nodiscard]] std::vector<std::string> validate(const cfg::ArchiveConfig& config);
[[nodiscard]] std::vector<std::string> validate(const cfg::GatewayConfig& config);

/// The spdlog level name of a LogLevel ("info"); "" for LOG_LEVEL_UNSPECIFIED.
[[nodiscard]] std::string log_level_name(cfg::LogLevel level);

}  // namespace anisoflow::runtime
