#pragma once
// Free space on the file system a service writes to, for the archive's full-disk hold
// (docs/faults.md, "What each fault costs"): archive takes nothing from its feeds while the run
// directory has less than a reserve free, so that the backpressure reaches ingest and the
// detector instead of an HDF5 write failing half-way with ENOSPC and the frame being lost.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <utility>

#include "anisoflow/core/result.hpp"

namespace anisoflow::runtime {

/// Bytes an unprivileged process may still write on the file system holding `path`
/// (statvfs: f_bavail * f_frsize). Errors name the path.
[[nodiscard]] Result<std::uint64_t> free_disk_bytes(const std::filesystem::path& path);

/// Whether a directory's file system has at least `reserve_bytes` free. Holds its last answer and
/// says when it changed, so that the caller logs the moment a hold starts and ends only.
class DiskRoom {
  public:
    DiskRoom() = default;
    DiskRoom(std::filesystem::path directory, std::uint64_t reserve_bytes)
        : directory_(std::move(directory)), reserve_bytes_(reserve_bytes) {}

    struct Check {
        bool has_room = true;
        bool changed = false;          ///< differs from the previous check's answer
        std::uint64_t free_bytes = 0;  ///< as statvfs said (0 when it failed)
        std::optional<Error> error;    ///< statvfs failed: counted as room, to fail on the write
    };

    /// Looks now. A reserve of 0 never holds (and does not look).
    [[nodiscard]] Check check();
    [[nodiscard]] bool has_room() const { return has_room_; }
    [[nodiscard]] std::uint64_t reserve_bytes() const { return reserve_bytes_; }

  private:
    std::filesystem::path directory_;
    std::uint64_t reserve_bytes_ = 0;
    bool has_room_ = true;
};

}  // namespace anisoflow::runtime
