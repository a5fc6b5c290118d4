#pragma once
// The run open at ingest's source, kept in config.state_dir so that an ingest restarted after a
// crash resumes it (docs/faults.md, "A killed ingest"). One small file, replaced whole on each
// save (write + rename), so a reader never sees half of one. No fsync: this outlives a killed
// process (the page cache keeps it), not a lost machine, which loses the run anyway.

#include <filesystem>
#include <optional>
#include <string>

#include "anisoflow/state/v1/state.pb.h"

#include "anisoflow/core/result.hpp"

namespace anisoflow::ingest {

class OpenRunStore {
  public:
    static constexpr const char* kFileName = "open_run.binpb";

    /// Creates `directory` if missing; an error names the directory and why.
    static Result<OpenRunStore> open(const std::filesystem::path& directory);

    /// The run a previous ingest left open, if any. A file that does not parse is moved aside
    /// (`open_run.binpb.unreadable`) and reported: a restart must never fail on it.
    Result<std::optional<state::v1::IngestOpenRun>> load() const;

    /// Replaces the file with `run`.
    Result<void> save(const state::v1::IngestOpenRun& run) const;

    /// Removes the file if it holds run `run_id` (a later run's file stays).
    Result<void> clear(const std::string& run_id) const;

    [[nodiscard]] const std::filesystem::path& path() const { return path_; }

  private:
    explicit OpenRunStore(std::filesystem::path path) : path_(std::move(path)) {}

    std::filesystem::path path_;
};

}  // namespace anisoflow::ingest
