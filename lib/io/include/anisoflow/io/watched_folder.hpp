#pragma once
// A folder a detector writes frame files into (TIFF, HDF5, GE), read as a stream: files are
// taken once each, only after they stop changing, frame by frame (docs/watched-folder.md).
// Plain directory polling with std::filesystem, so it works on NFS and GPFS where inotify does
// not; no sockets, no threads: the caller (ingest's source thread) calls poll() every ~50 ms.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "anisoflow/core/frame.hpp"
#include "anisoflow/core/result.hpp"
#include "anisoflow/io/frame_source.hpp"

namespace anisoflow::io {

/// What to do with matching files already in the folder when the watch starts.
enum class ExistingFiles {
    /// Skip them (default): a restarted ingest does not replay earlier files. A file that changes
    /// within the first settle time is being written now and is taken once it settles.
    kSkip,
    /// Take them, in name order, like files that appear later (reprocess a finished folder).
    kTake,
    /// Take those modified after `WatchedFolderOptions::existing_modified_after` (e.g. the start
    /// of the run: resume it after a restart), skip the others as kSkip does.
    kTakeModifiedAfter,
};

struct WatchedFolderOptions {
    std::filesystem::path directory;
    /// Shell pattern (fnmatch(3): `*`, `?`, `[...]`) on the file name, case-sensitive, e.g.
    /// "*.tif" or "scan_*.h5"; a leading `.` must be matched explicitly (hidden and temporary
    /// files are ignored). Empty: every extension open_frame_source reads, any case.
    std::string pattern;
    /// A file is taken only once its size, mtime and inode have not changed for this long.
    std::chrono::milliseconds settle_time{1000};
    /// A settled file that cannot be opened (an HDF5 file its writer still holds, a TIFF whose
    /// directory is not written yet) is retried at each scan; it is reported as an error only
    /// after staying unchanged and unreadable this long. A change sends it back to settling. An
    /// HDF5 file locked by its writer (still open there) is retried for as long as it is locked.
    std::chrono::milliseconds open_retry_time{30000};
    /// The directory is listed at most this often (poll() in between only reads frames).
    std::chrono::milliseconds scan_interval{250};
    ExistingFiles existing = ExistingFiles::kSkip;
    /// Used by ExistingFiles::kTakeModifiedAfter only, which requires it to be set.
    std::filesystem::file_time_type existing_modified_after{};
    /// At most this many results (frames or errors) per poll(): the memory and time one poll
    /// costs. Frames are read one at a time; no file is read whole.
    std::size_t max_frames_per_poll = 8;
    /// Dataset read from HDF5 files.
    std::string hdf5_dataset{kDefaultFrameDataset};
    /// Shape and pixel type every file must have; none: those of the first file opened.
    std::optional<FrameShape> expected_shape;
    std::optional<PixelType> expected_pixel_type;
    /// Time source for settling and retries; empty: std::chrono::steady_clock::now (tests inject
    /// a manual clock so that they never depend on the machine's load).
    std::function<std::chrono::steady_clock::time_point()> clock;
};

/// One result of WatchedFolder::poll(): a frame of a file, or why a file was skipped.
struct WatchedFrame {
    std::filesystem::path file;      ///< directory / file name
    std::size_t index_in_file = 0;   ///< 0-based frame index in the file (= frame->index_in_source)
    std::size_t frames_in_file = 0;  ///< frames the file holds; 0 when it could not be opened
    /// The pixels (with exposure_s when the file has it), or the error: it names the file and the
    /// problem, and the rest of that file is skipped.
    Result<Frame> frame;
};

/// Counters for metrics and logs.
struct WatchedFolderStats {
    std::uint64_t files_read = 0;              ///< files whose frames were all returned
    std::uint64_t frames_read = 0;             ///< frames returned
    std::uint64_t files_failed = 0;            ///< files reported by an error and skipped
    std::uint64_t files_skipped_at_start = 0;  ///< files left alone by the ExistingFiles policy
    std::uint64_t open_retries = 0;            ///< failed opens of settled files, tried again
    std::size_t files_pending = 0;             ///< seen, not taken yet: settling or retrying
};

/// Reads the frames of files as they appear in one directory (not its subdirectories). Each file
/// name is taken once; files are read to the end one at a time, the next being the ready file
/// first in byte-wise name order. Not thread-safe: one thread polls.
class WatchedFolder {
  public:
    /// Checks the options and that the directory can be listed ("...: watched folder does not
    /// exist"), then records the files already there (ExistingFiles).
    static Result<WatchedFolder> open(WatchedFolderOptions options);

    /// Non-blocking: lists the directory when scan_interval has passed, then returns up to
    /// max_frames_per_poll results in order. Empty when nothing is ready. An error means the
    /// directory could not be listed (it names it); nothing is lost and the next poll tries again.
    Result<std::vector<WatchedFrame>> poll();

    [[nodiscard]] const std::filesystem::path& directory() const { return options_.directory; }
    [[nodiscard]] WatchedFolderStats stats() const;
    /// The shape and pixel type every file must have, once known (expected or first file's).
    [[nodiscard]] std::optional<FrameShape> shape() const { return shape_; }
    [[nodiscard]] std::optional<PixelType> pixel_type() const { return pixel_type_; }

  private:
    using Clock = std::chrono::steady_clock;

    /// What identifies one version of a file: it settles when this stops changing.
    struct Stamp {
        std::uintmax_t size_bytes = 0;
        std::int64_t mtime_ns = 0;
        std::uint64_t inode = 0;
        friend bool operator==(const Stamp&, const Stamp&) = default;
    };
    struct Pending {
        Stamp stamp;
        Clock::time_point stable_since;
        std::optional<Clock::time_point> failing_since;  ///< first failed open of this stamp
    };
    struct Current {
        std::string name;
        std::unique_ptr<FrameSource> source;
        std::size_t next_frame = 0;
    };

    explicit WatchedFolder(WatchedFolderOptions options);
    [[nodiscard]] Clock::time_point now() const;
    [[nodiscard]] bool matches(std::string_view name) const;
    Result<void> scan(bool at_start);
    /// Opens the first ready file; false when none is ready. An error result goes to `out`.
    bool open_next(std::vector<WatchedFrame>& out);
    void read_next(std::vector<WatchedFrame>& out);

    WatchedFolderOptions options_;
    std::optional<FrameShape> shape_;
    std::optional<PixelType> pixel_type_;
    std::string reference_file_;  ///< the first file opened (named in mismatch errors)
    /// Names taken (read, failed or skipped): never read again while they stay in the folder.
    std::set<std::string> taken_;
    /// Files present at start under kSkip, watched for a change during the first settle time.
    std::map<std::string, Stamp> existing_;
    Clock::time_point started_;
    std::map<std::string, Pending> pending_;
    std::set<std::string> ready_;  ///< settled pending names, taken in this (byte-wise) order
    std::optional<Current> current_;
    std::optional<Clock::time_point> last_scan_;
    WatchedFolderStats stats_;
};

}  // namespace anisoflow::io
