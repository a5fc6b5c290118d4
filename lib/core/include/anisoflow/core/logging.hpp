#pragma once
// The one place that configures spdlog; everything else calls spdlog::info(...) directly.

#include <string_view>

#include "anisoflow/core/result.hpp"

namespace anisoflow {

/// Sets the global level from "trace|debug|info|warn|error|off" and a compact pattern
/// (messages are lowercase `key=value` facts, docs/development.md). Logs go to stderr so that
/// stdout stays for results.
Result<void> configure_logging(std::string_view level);

}  // namespace anisoflow
