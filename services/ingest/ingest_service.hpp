#pragma once
// anisoflow-ingest: frames from a detector stream (DECTRIS Stream v1/v2) or an anisoflow stream
// (`anisoflow simulate --stream`) to the reduce workers by acknowledged dispatch, and each run's
// RunStart, RunEnd and ingest's Heartbeat on the control PUB (docs/protocol.md).
//
// Two threads: the source thread reads and checks the input and numbers the frames of each run;
// a bounded queue holds them (when it is full the source is no longer read: backpressure reaches
// the sender); the dispatch thread feeds the transport::Dispatcher while workers have credit and
// publishes the control messages.

#include <memory>
#include <string>

#include "anisoflow/core/result.hpp"
#include "anisoflow/metrics/metrics.hpp"
#include "anisoflow/runtime/service_config.hpp"
#include "anisoflow/runtime/service_main.hpp"
#include "anisoflow/runtime/stop.hpp"

namespace anisoflow::ingest {

namespace cfg = runtime::cfg;

/// The endpoints actually bound or connected (for "@tcp://127.0.0.1:*" the ports chosen).
struct IngestEndpoints {
    std::string frames;       ///< the dispatcher's ROUTER
    std::string control;      ///< the control PUB
    std::string source;       ///< the source PULL
    std::string raw;          ///< the raw frame feed PUSH; empty when raw archiving is off
    std::string run_control;  ///< run control's REP; empty when off (docs/run-control.md)
};

class IngestService {
  public:
    /// Opens every socket (so that a bad address fails before anything runs) and registers the
    /// metrics. Kinds other than dectris_stream and anisoflow_stream are refused.
    [[nodiscard]] static Result<IngestService> create(const cfg::IngestConfig& config,
                                                      metrics::Registry& registry);
    ~IngestService();
    IngestService(IngestService&&) noexcept;
    IngestService& operator=(IngestService&&) noexcept;
    IngestService(const IngestService&) = delete;
    IngestService& operator=(const IngestService&) = delete;

    [[nodiscard]] const IngestEndpoints& endpoints() const;

    /// Runs until `stop` is requested (or a stage fails, which requests it). Runs still open
    /// then end with RunEnd ABORTED.
    [[nodiscard]] Result<void> run(const runtime::StopSource& stop);

  private:
    struct State;
    explicit IngestService(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

/// The service loop for runtime::service_main().
[[nodiscard]] Result<void> run(const cfg::IngestConfig& config, runtime::ServiceContext& context);

}  // namespace anisoflow::ingest
