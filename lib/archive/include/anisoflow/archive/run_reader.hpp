#pragma once
// A run file read back (docs/archive.md): what the gateway shows of an archived run, in the
// messages the live chain uses, so one JSON view serves both (lib/live).

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/core/result.hpp"

namespace anisoflow::archive {

namespace pb = ::anisoflow::stream::v1;

struct ArchivedRun {
    pb::RunStart start;  ///< run id, start time and the configuration (/entry/process)
    std::string state;   ///< /entry/run_state: "running", "interrupted", "completed" or "aborted"
    std::string end_detail;
    /// One per row of /entry/results (the SUMMARY.json keys, frames, mechanism, is_final); no
    /// curves.
    std::vector<pb::AnalysisResult> results;
    /// The latest curves: kind and 3 x n values (x, value, variance), as a result carries them.
    std::vector<std::pair<pb::CurveKind, std::vector<double>>> curves;
    std::vector<pb::StateChange> run_log;  ///< /entry/run_log
};

/// Reads a run file, also one still being written (SWMR). Errors name the file and the dataset:
/// not a run file, unreadable, a dataset missing.
[[nodiscard]] Result<ArchivedRun> read_run(const std::filesystem::path& path);

}  // namespace anisoflow::archive
