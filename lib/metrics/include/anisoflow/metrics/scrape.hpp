#pragma once
// The other side of GET /metrics: what a Prometheus server does, for the tools that must read a
// service's metrics themselves (`anisoflow demo` records them at the end of its run; tests check
// counters over real HTTP, docs/architecture.md "Metrics").

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "anisoflow/core/result.hpp"

namespace anisoflow::metrics {

/// The body of `GET http://<host>:<port><path>` (HTTP/1.1, one request per connection).
/// Errors (naming the URL): no connection, no answer within `timeout`, a status other than 200.
[[nodiscard]] Result<std::string> scrape(std::string_view host, std::uint16_t port,
                                         std::chrono::milliseconds timeout,
                                         std::string_view path = "/metrics");

/// One value per sample of a Prometheus text exposition (format 0.0.4), keyed by the sample as
/// written, labels included: `anisoflow_ingest_frames_rejected_total{reason="duplicate"}`.
/// Comment lines (# HELP, # TYPE) are skipped; a trailing timestamp is ignored.
/// Errors: a sample line with no value or one that is not a number (naming the line).
[[nodiscard]] Result<std::map<std::string, double>> parse_exposition(std::string_view text);

}  // namespace anisoflow::metrics
