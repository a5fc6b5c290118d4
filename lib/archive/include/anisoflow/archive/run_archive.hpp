#pragma once
// One NeXus/HDF5 file per run, written while the run streams in and readable while it grows
// (HDF5 SWMR). Layout, units and how to read it: docs/archive.md.
//
// The whole tree is created by create(), then the file switches to SWMR write mode: appends only
// grow or rewrite existing datasets, and each append is flushed before it returns. Not
// thread-safe: one archive stage owns a RunArchive (the serial HDF5 library is not either).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/core/result.hpp"

namespace anisoflow::archive {

namespace pb = ::anisoflow::stream::v1;

/// How RAW frame payloads are compressed before they are stored. LZ4 and BSLZ4 payloads are
/// always stored as they came, whatever this says.
enum class RawCompression {
    kNone,   ///< stored uncompressed
    kLz4,    ///< HDF5 LZ4 filter framing (filter 32004)
    kBslz4,  ///< bitshuffle + LZ4 (filter 32008), the DECTRIS format; best for integer pixels
};

struct ArchiveOptions {
    bool store_raw = true;  ///< keep the detector frames in /entry/data/data
    /// Pixel type of every raw frame (the detector's); the dataset's type is fixed at create().
    pb::PixelDtype raw_dtype = pb::PIXEL_DTYPE_UINT16;
    RawCompression raw_compression = RawCompression::kBslz4;
    bool overwrite = false;  ///< replace an existing file; by default an existing file is an error
    /// Write raw frames back to disk as they come and drop them from the page cache once on
    /// disk (docs/archive.md, "Page cache"): a run's frames are written once and not read back
    /// by this host, and growing the cache by gigabytes per run costs more CPU than the
    /// compression on hosts where new pages are slow to map (this VM: 17 ms per 8 MB frame).
    bool release_written_pages = true;
    /// Bytes written between two write-backs; each is dropped two steps later.
    std::uint64_t page_release_step_bytes = 32ULL << 20U;
};

/// Writer of one run's archive file. Movable, not copyable. Every append either stores its whole
/// record or returns an error and leaves what was written before intact.
class RunArchive {
  public:
    /// Creates `path` with the full NeXus tree for `start` and switches it to SWMR write mode.
    /// Errors: the file cannot be created (missing or unwritable directory, existing file without
    /// `overwrite`), a configuration the layout cannot hold (zero-sized detector or cake).
    [[nodiscard]] static Result<RunArchive> create(const std::filesystem::path& path,
                                                   const pb::RunStart& start,
                                                   const ArchiveOptions& options = {});

    /// Opens again the file of run `run_id` that a killed writer left behind ("running") or a
    /// stopped one interrupted ("interrupted"), to go on appending (docs/archive.md, "Reopening
    /// after a crash"): the run's configuration comes from the file, a record the writer had not
    /// finished is cut off every dataset of its group, the counts below are the file's, and
    /// run_state is "running" again. Errors name the file: not a run file, another run's, a
    /// run_state other than those two (a completed or aborted run is never reopened), a file
    /// whose raw frames or pixel type disagree with `options`, an HDF5 failure. Never run two
    /// writers on one file: nothing can tell a live writer's file from a dead one's.
    [[nodiscard]] static Result<RunArchive> reopen(const std::filesystem::path& path,
                                                   const std::string& run_id,
                                                   const ArchiveOptions& options = {});

    RunArchive(RunArchive&& other) noexcept;
    RunArchive& operator=(RunArchive&& other) noexcept;
    RunArchive(const RunArchive&) = delete;
    RunArchive& operator=(const RunArchive&) = delete;
    /// An archive never closed is marked "aborted" and closed.
    ~RunArchive();

    /// Closes the file with the run unfinished, because the writing process stops mid-run (an
    /// operator's SIGTERM, a rolling update): run_state "interrupted", the archived counts
    /// written, everything flushed. Unlike "aborted", the run is not over: reopen() goes on with
    /// the file, and a reader knows it is incomplete for now. Errors name the file.
    [[nodiscard]] Result<void> interrupt();

    /// Appends one detector frame (any kind) and its metadata. RAW payloads are compressed as
    /// the options say; LZ4 and BSLZ4 payloads are stored without being decompressed. Errors: a
    /// frame of another run, shape or dtype than the run's, a payload whose size disagrees with
    /// the header, raw storage switched off, an HDF5 write failure (e.g. disk full).
    [[nodiscard]] Result<void> append_raw(const pb::FrameHeader& header,
                                          std::span<const std::byte> payload);

    /// Appends one cake: each span holds n_chi x n_q values, row-major [chi][Q]; an empty span is
    /// a quantity the reducer did not send (stored as NaN). Intensity is required.
    [[nodiscard]] Result<void> append_reduced(const pb::ReducedFrame& frame,
                                              std::span<const double> intensity,
                                              std::span<const double> variance,
                                              std::span<const double> count);

    /// Appends one row to the result time series and rewrites the latest curves in place;
    /// `curves[i]` is the payload of `result.curves(i)`: 3 x n_points values (x, value, variance).
    [[nodiscard]] Result<void> append_result(const pb::AnalysisResult& result,
                                             std::span<const std::span<const double>> curves);

    /// Appends run control's state change number `change.index()` to /entry/run_log
    /// (docs/run-control.md). A change already there is skipped (it comes live and again in
    /// RunEnd); one that would leave a gap is refused.
    [[nodiscard]] Result<void> append_state_change(const std::string& run_id,
                                                   const pb::StateChange& change);

    /// Records the end of the run ("completed" or "aborted", end time, frames sent and archived,
    /// the state changes RunEnd carries that are not in the log yet) and closes the file. Later
    /// appends fail. A RunEnd of another run is refused and leaves the archive open; a write error
    /// here still closes the file.
    [[nodiscard]] Result<void> close(const pb::RunEnd& end);

    [[nodiscard]] bool is_open() const;
    [[nodiscard]] const std::filesystem::path& path() const;
    [[nodiscard]] std::uint64_t raw_frames() const;  ///< frames in /entry/data/data
    /// float32 FLAT frames in /entry/instrument/detector/flatfield (append_raw puts a float
    /// flat there when the raw frames are of an integer type)
    [[nodiscard]] std::uint64_t flat_fields() const;
    [[nodiscard]] std::uint64_t reduced_frames() const;  ///< cakes in /entry/reduced
    [[nodiscard]] std::uint64_t results() const;         ///< rows of /entry/results
    [[nodiscard]] std::uint64_t state_changes() const;   ///< rows of /entry/run_log
    /// Sequences of every stored raw frame (/entry/data/sequence, then the flat fields'), read
    /// from the file: what a reopened archive has of the run. Empty without raw frames.
    [[nodiscard]] Result<std::vector<std::uint64_t>> stored_raw_sequences() const;
    /// Sequences of the stored raw frames of kind DATA (/entry/data/sequence where
    /// /entry/data/kind is DATA): the frames that should each have a cake. Empty without raw
    /// frames.
    [[nodiscard]] Result<std::vector<std::uint64_t>> stored_data_sequences() const;
    /// Sequences of every stored cake (/entry/reduced/sequence), read from the file.
    [[nodiscard]] Result<std::vector<std::uint64_t>> stored_cake_sequences() const;
    /// What the last row of /entry/results says it analysed: a reopened archive compares a
    /// result sent again with it (docs/protocol.md, "Archive receipts"). nullopt while there is
    /// no result.
    struct ResultMark {
        std::uint64_t frames_p = 0;  ///< /entry/results/frames_p
        std::uint64_t frames_n = 0;  ///< /entry/results/frames_n
        bool is_final = false;       ///< /entry/results/is_final
    };
    [[nodiscard]] Result<std::optional<ResultMark>> last_result() const;
    /// Bytes HDF5's metadata cache holds for this file now: at most kMetadataCacheMaxBytes
    /// however long the run (0 once closed).
    [[nodiscard]] std::size_t metadata_cache_bytes() const;

  private:
    struct State;
    explicit RunArchive(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

/// The most memory HDF5's metadata cache of one run file may hold (layout.cpp, file_access()).
inline constexpr std::size_t kMetadataCacheMaxBytes = std::size_t{256} << 10U;

/// The text stored in /entry/run_state.
inline constexpr const char* kRunStateRunning = "running";
inline constexpr const char* kRunStateCompleted = "completed";
inline constexpr const char* kRunStateAborted = "aborted";
/// Closed mid-run by a writer that stopped (RunArchive::interrupt()); reopened to go on.
inline constexpr const char* kRunStateInterrupted = "interrupted";

}  // namespace anisoflow::archive
