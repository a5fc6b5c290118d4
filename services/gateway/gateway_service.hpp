#pragma once
// anisoflow-gateway: the runs on the web (docs/gateway.md). It subscribes to ingest's control
// PUB (runs, run log, heartbeats) and analyze's results PUB, folds them into a live::RunBoard,
// and serves over HTTP (Boost.Beast on one Asio thread) the dashboard's files, a read-only JSON
// API (/api/health, /api/runs, /api/runs/{id}, /api/runs/{id}/result) and, at /ws, a WebSocket
// that pushes every new result to the pages connected. Read-only: it accepts GET and HEAD only.

#include <cstdint>
#include <memory>

#include "anisoflow/core/result.hpp"
#include "anisoflow/metrics/metrics.hpp"
#include "anisoflow/runtime/service_config.hpp"
#include "anisoflow/runtime/service_main.hpp"
#include "anisoflow/runtime/stop.hpp"

namespace anisoflow::gateway {

namespace cfg = runtime::cfg;

class GatewayService {
  public:
    /// Binds the HTTP port and opens the subscriptions (so a bad address fails at once) and
    /// registers the metrics.
    [[nodiscard]] static Result<GatewayService> create(const cfg::GatewayConfig& config,
                                                       metrics::Registry& registry);
    ~GatewayService();
    GatewayService(GatewayService&&) noexcept;
    GatewayService& operator=(GatewayService&&) noexcept;
    GatewayService(const GatewayService&) = delete;
    GatewayService& operator=(const GatewayService&) = delete;

    /// The HTTP port bound (the one chosen for port 0).
    [[nodiscard]] std::uint16_t http_port() const;

    /// Serves until `stop` is requested.
    [[nodiscard]] Result<void> run(const runtime::StopSource& stop);

  private:
    struct State;
    explicit GatewayService(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

/// The service loop for runtime::service_main().
[[nodiscard]] Result<void> run(const cfg::GatewayConfig& config, runtime::ServiceContext& context);

}  // namespace anisoflow::gateway
