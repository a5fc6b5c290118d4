#include "anisoflow/core/logging.hpp"

#include <memory>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace anisoflow {

Result<void> configure_logging(std::string_view level) {
    const auto parsed = spdlog::level::from_str(std::string(level));
    // from_str maps anything unknown to "off"; only accept "off" when it was asked for.
    if (parsed == spdlog::level::off && level != "off") {
        return fail(ErrorCode::kInvalidArgument,
                    "log level '{}' is not one of trace, debug, info, warn, error, off", level);
    }
    spdlog::drop("anisoflow");  // configure_logging may run more than once (tests)
    auto logger = spdlog::stderr_color_mt("anisoflow");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    logger->set_level(parsed);
    spdlog::set_default_logger(std::move(logger));
    return {};
}

}  // namespace anisoflow
