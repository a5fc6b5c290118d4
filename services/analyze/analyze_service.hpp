#pragma once
// anisoflow-analyze: merges the reduce workers' cake sums per run and orientation (the first
// ReducedFrame per (run, sequence); duplicates counted), re-runs the anisotropy analysis of
// lib/physics at most every recompute_interval_ms and publishes AnalysisResult + curves; after
// RunEnd, once the frame counts match RunEnd.frames_sent or drain_timeout_ms passed, the final
// result (is_final). Everything kept is also fed, in order, to archive (docs/protocol.md).

#include <string>
#include <vector>

#include <zmq.hpp>

#include "anisoflow/config/v1/services.pb.h"

#include "anisoflow/core/result.hpp"
#include "anisoflow/physics/anisotropy_analysis.hpp"
#include "anisoflow/reduce/cake_integrator.hpp"
#include "anisoflow/runtime/service_main.hpp"
#include "anisoflow/transport/message.hpp"

namespace anisoflow::analyzer {

namespace cfg = ::anisoflow::config::v1;
namespace pb = ::anisoflow::stream::v1;

/// The analysis settings of a run, as `anisoflow analyze` fills them from its options.
[[nodiscard]] Result<physics::AnalysisSettings> analysis_settings(
    const pb::ExperimentConfig& config);

/// The CakeAccumulator a ReducedFrame carries (its CAKE_QUANTITY_*_SUM parts).
[[nodiscard]] Result<reduce::CakeAccumulator> sums_of(const transport::ReducedMessage& message);

/// An AnalysisResult header with every SUMMARY.json key, and its curve parts.
struct ResultMessageParts {
    pb::AnalysisResult header;
    std::vector<zmq::message_t> curves;
};
[[nodiscard]] ResultMessageParts make_result(const std::string& run_id,
                                             const physics::AnalysisSettings& settings,
                                             const physics::AnisotropyResult& result,
                                             std::uint64_t n_frames_p, std::uint64_t n_frames_n);

/// The service loop: runs until stop is requested on `context`.
[[nodiscard]] Result<void> run(const cfg::AnalyzeConfig& config, runtime::ServiceContext& context);

}  // namespace anisoflow::analyzer
