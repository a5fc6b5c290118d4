#pragma once
// Logging of a service: anisoflow::configure_logging (lib/core) plus the service name in every
// line, so interleaved logs of several services stay readable.

#include <string_view>

#include "anisoflow/core/result.hpp"

namespace anisoflow::runtime {

/// Level from "trace|debug|info|warn|error|off"; lines read
/// `2025-01-31T12:00:00.000 info ingest: frames_sent=12 run=r1`.
[[nodiscard]] Result<void> configure_service_logging(std::string_view service,
                                                     std::string_view level);

}  // namespace anisoflow::runtime
