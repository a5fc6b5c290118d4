#pragma once
// anisoflow-archive: one NeXus/HDF5 file per run (lib/archive) in archive_dir, written from
// analyze's ordered archive feed (docs/protocol.md, "Archive feed"): RunStart creates the file,
// ReducedFrames and AnalysisResults are appended, RunEnd closes it; and, when configured, ingest's
// raw frame feed (docs/protocol.md, "Raw frame feed") puts every detector frame into the file.

#include <string>
#include <string_view>

#include "anisoflow/config/v1/services.pb.h"

#include "anisoflow/core/result.hpp"
#include "anisoflow/runtime/service_main.hpp"

namespace anisoflow::archiver {

namespace cfg = ::anisoflow::config::v1;

/// The file name of a run's archive: the run id with every character outside [A-Za-z0-9._-]
/// replaced by '_', no leading '.', plus "-<8 hex digits of the id's FNV-1a hash>" whenever
/// anything was replaced (so two ids never share a file), then ".nxs". Never a path: it cannot
/// leave archive_dir.
[[nodiscard]] std::string run_file_name(std::string_view run_id);

/// The service loop: runs until stop is requested on `context`.
[[nodiscard]] Result<void> run(const cfg::ArchiveConfig& config, runtime::ServiceContext& context);

}  // namespace anisoflow::archiver
