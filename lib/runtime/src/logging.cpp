#include "anisoflow/runtime/logging.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "anisoflow/core/logging.hpp"

namespace anisoflow::runtime {

Result<void> configure_service_logging(std::string_view service, std::string_view level) {
    if (auto configured = configure_logging(level); !configured) {
        return configured;
    }
    // The service name is fixed text of the pattern: no per-line formatting cost.
    spdlog::default_logger()->set_pattern(
        fmt::format("%Y-%m-%dT%H:%M:%S.%e %^%l%$ {}: %v", service));
    return {};
}

}  // namespace anisoflow::runtime
