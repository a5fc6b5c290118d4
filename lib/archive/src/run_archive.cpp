// Appends to the archive of one run (docs/archive.md). Each append checks everything first, then
// writes the big dataset, then its companions (so a row of `sequence` always has its data), and
// flushes them in that order so SWMR readers see whole records.

#include "anisoflow/archive/run_archive.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>  // sync_file_range, posix_fadvise (Linux)
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "anisoflow/codec/bitshuffle.hpp"
#include "anisoflow/codec/lz4.hpp"

#include "archive_layout.hpp"
#include "hdf5_handles.hpp"

namespace anisoflow::archive {

using detail::Hid;
using detail::Layout;
using detail::Series;

namespace {

/// Cake axes in a ReducedFrame must match the run's to this relative tolerance: both come from
/// the same ExperimentConfig doubles, so only rounding in a re-encoding can differ.
constexpr double kAxisRelativeTolerance = 1e-9;
constexpr double kChiLowerDeg = -180.0;
constexpr double kChiUpperDeg = 180.0;

enum class StoredEncoding : std::uint8_t { kNone = 0, kLz4 = 1, kBslz4 = 2 };  // encoding enum

Result<void> hdf5_failure(const Layout& layout, std::string_view what, std::string_view path) {
    return fail(ErrorCode::kIo, "{}: {} {}: {}", layout.file_name, what, path,
                detail::hdf5_error_detail());
}

/// Grows `series` to hold row `index` if needed.
Result<void> ensure_rows(const Layout& layout, Series& series, hsize_t rows) {
    if (rows <= series.rows) {
        return {};
    }
    std::vector<hsize_t> extent{rows};
    extent.insert(extent.end(), series.row_dims.begin(), series.row_dims.end());
    if (H5Dset_extent(series.dataset.get(), extent.data()) < 0) {
        return hdf5_failure(layout, "cannot extend", series.path);
    }
    series.rows = rows;
    return {};
}

/// Writes one row at `index` (growing the dataset first) from memory of `memory_type`.
Result<void> write_row(const Layout& layout, Series& series, hsize_t index, hid_t memory_type,
                       const void* data) {
    if (auto ok = ensure_rows(layout, series, index + 1); !ok) {
        return ok;
    }
    std::vector<hsize_t> start(series.row_dims.size() + 1, 0);
    std::vector<hsize_t> count{1};
    start[0] = index;
    count.insert(count.end(), series.row_dims.begin(), series.row_dims.end());
    Hid file_space = detail::space_handle(H5Dget_space(series.dataset.get()));
    Hid memory_space = detail::space_handle(
        H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr));
    const bool ok = file_space && memory_space &&
                    H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr,
                                        count.data(), nullptr) >= 0 &&
                    H5Dwrite(series.dataset.get(), memory_type, memory_space.get(),
                             file_space.get(), H5P_DEFAULT, data) >= 0;
    if (!ok) {
        return hdf5_failure(layout, fmt::format("cannot write row {} of", index), series.path);
    }
    return {};
}

/// Resizes a 1-D series to `values.size()` and writes them all.
Result<void> rewrite(const Layout& layout, Series& series, std::span<const double> values) {
    const hsize_t size = values.size();
    if (H5Dset_extent(series.dataset.get(), &size) < 0) {
        return hdf5_failure(layout, "cannot resize", series.path);
    }
    series.rows = size;
    if (size > 0 && H5Dwrite(series.dataset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                             values.data()) < 0) {
        return hdf5_failure(layout, "cannot write", series.path);
    }
    return {};
}

Result<void> flush(const Layout& layout, std::initializer_list<const Series*> series) {
    for (const Series* one : series) {
        if (one->dataset && H5Dflush(one->dataset.get()) < 0) {
            return hdf5_failure(layout, "cannot flush", one->path);
        }
    }
    return {};
}

/// Column of the frame count datasets for a frame (kFrameCountColumns).
std::size_t count_column(pb::FrameKind kind, pb::Orientation orientation) {
    switch (kind) {
        case pb::FRAME_KIND_DATA:
            return orientation == pb::ORIENTATION_N ? 1 : 0;
        case pb::FRAME_KIND_DARK:
            return 2;
        case pb::FRAME_KIND_FLAT:
            return 3;
        default:
            return 4;
    }
}

std::array<std::uint64_t, 5> counts_of(const pb::FrameCounts& counts) {
    return {counts.data_p(), counts.data_n(), counts.dark(), counts.flat(), counts.background()};
}

void write_be(std::span<std::byte> out, std::uint64_t value) {
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[out.size() - 1 - i] = static_cast<std::byte>(value >> (8 * i));
    }
}

std::uint64_t read_be(std::span<const std::byte> in) {
    std::uint64_t value = 0;
    for (const std::byte byte : in) {
        value = (value << 8) | static_cast<std::uint64_t>(byte);
    }
    return value;
}

/// Whether `payload` is already in the HDF5 LZ4 filter framing for `size_bytes` of pixels: its
/// header says so and its blocks cover the payload exactly. A plain LZ4 block never starts with
/// a zero byte (a first sequence cannot be a match), and this header always does below 2^56.
bool is_hdf5_lz4_framing(std::span<const std::byte> payload, std::uint64_t size_bytes) {
    auto header = codec::read_filter_header(payload);
    if (!header || header->uncompressed_size_bytes != size_bytes || header->block_size_bytes == 0) {
        return false;
    }
    std::size_t position = codec::kFilterHeaderSizeBytes;
    std::uint64_t remaining = size_bytes;
    while (remaining > 0) {
        if (payload.size() - position < 4) {
            return false;
        }
        const std::uint64_t block = std::min<std::uint64_t>(remaining, header->block_size_bytes);
        const std::uint64_t stored = read_be(payload.subspan(position, 4));
        position += 4;
        if (stored > block || stored > payload.size() - position) {
            return false;
        }
        position += stored;
        remaining -= block;
    }
    return position == payload.size();
}

/// The HDF5 LZ4 framing of one plain LZ4 block holding `size_bytes` of pixels: a 16-byte prefix
/// in front of the block's bytes, which are not decoded. The filter reads a block whose stored
/// size equals its size as uncompressed, so that rare block is stored decoded.
Result<std::vector<std::byte>> frame_lz4_block(std::span<const std::byte> block,
                                               std::uint64_t size_bytes) {
    constexpr std::size_t kPrefixBytes = codec::kFilterHeaderSizeBytes + 4;
    if (size_bytes > static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max())) {
        return fail(ErrorCode::kUnsupported,
                    "an lz4 frame of {} bytes exceeds the HDF5 LZ4 filter's 2 GiB block",
                    size_bytes);
    }
    std::vector<std::byte> decoded;
    if (block.size() == size_bytes) {
        auto raw = codec::lz4_decompress_block(block, size_bytes);
        if (!raw) {
            return tl::unexpected(raw.error());
        }
        decoded = std::move(*raw);
        block = decoded;
    }
    std::vector<std::byte> framed(kPrefixBytes + block.size());
    const std::span<std::byte> out(framed);
    write_be(out.subspan(0, 8), size_bytes);
    write_be(out.subspan(8, 4), size_bytes);  // one block holds the whole frame
    write_be(out.subspan(12, 4), block.size());
    std::memcpy(framed.data() + kPrefixBytes, block.data(), block.size());
    return framed;
}

}  // namespace

// Streams a growing file's written bytes to disk and out of the page cache, a fixed lag behind
// the end of the file (docs/archive.md, "Page cache"). Advisory: a failed call loses nothing
// (the pages stay cached and are written back as usual), so errors are ignored.
class PageCacheRelease {
  public:
    // `written_bytes`: where the file ended when it was opened (a reopened file's old bytes are
    // left to the kernel).
    PageCacheRelease(int fd, std::uint64_t step_bytes, std::uint64_t written_bytes = 0)
        : fd_(fd), step_bytes_(step_bytes), started_(written_bytes) {}

    // The file now ends at `end_bytes`: start writing back what came since the last step, and
    // drop the steps older than kLagSteps once their writeback is done.
    void advance(std::uint64_t end_bytes) {
        if (fd_ < 0 || end_bytes < started_ + step_bytes_) {
            return;
        }
        (void)::sync_file_range(fd_, static_cast<off_t>(started_),
                                static_cast<off_t>(end_bytes - started_), SYNC_FILE_RANGE_WRITE);
        steps_.emplace_back(started_, end_bytes);
        started_ = end_bytes;
        while (steps_.size() > kLagSteps) {
            const auto [begin, end] = steps_.front();
            steps_.pop_front();
            // Waits for the step's writeback, which bounds the dirty data this run holds (a disk
            // slower than the detector shows as archive backpressure, not as host memory).
            (void)::sync_file_range(
                fd_, static_cast<off_t>(begin), static_cast<off_t>(end - begin),
                SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
            (void)::posix_fadvise(fd_, static_cast<off_t>(begin), static_cast<off_t>(end - begin),
                                  POSIX_FADV_DONTNEED);
        }
    }

  private:
    // Two steps behind (32 MB each by default): the kernel has time to write a step back before
    // it is waited for, and what HDF5 rewrites near the end of the file stays cached.
    static constexpr std::size_t kLagSteps = 2;
    int fd_ = -1;
    std::uint64_t step_bytes_ = 0;
    std::uint64_t started_ = 0;
    std::deque<std::pair<std::uint64_t, std::uint64_t>> steps_;
};

struct RunArchive::State {
    Layout layout;
    PageCacheRelease page_release{-1, 0};
    pb::RunStart start;
    ArchiveOptions options;
    std::filesystem::path path;
    bool open = true;
    std::uint64_t raw_frames = 0;
    std::uint64_t flatfields = 0;  ///< rows of /entry/instrument/detector/flatfield
    std::uint64_t reduced_frames = 0;
    std::uint64_t results = 0;
    std::uint64_t state_changes = 0;          // rows of /entry/run_log
    std::array<std::uint64_t, 5> archived{};  ///< raw frames per kFrameCountColumns column

    // A float32 FLAT frame into /entry/instrument/detector/flatfield (docs/archive.md).
    Result<void> append_flatfield(const pb::FrameHeader& header,
                                  std::span<const std::byte> payload) {
        const std::string& file = layout.file_name;
        const std::uint64_t size_bytes =
            std::uint64_t{header.rows()} * header.cols() * sizeof(float);
        if (header.encoding() != pb::ENCODING_RAW || payload.size() != size_bytes) {
            return fail(ErrorCode::kCorrupt,
                        "{}: float flat frame {} must be RAW with {} bytes, got encoding {} and "
                        "{} bytes",
                        file, header.sequence(), size_bytes, static_cast<int>(header.encoding()),
                        payload.size());
        }
        const hsize_t index = flatfields;
        const std::uint64_t sequence = header.sequence();
        Result<void> ok =
            write_row(layout, layout.flatfield, index, H5T_NATIVE_FLOAT, payload.data());
        ok = ok ? write_row(layout, layout.flatfield_sequence, index, H5T_NATIVE_UINT64, &sequence)
                : ok;
        if (!ok) {
            return ok;
        }
        flatfields = index + 1;
        ++archived[count_column(header.kind(), header.orientation())];
        return flush(layout, {&layout.flatfield, &layout.flatfield_sequence});
    }

    Result<void> check_open(std::string_view what) const {
        if (!open) {
            return fail(ErrorCode::kInvalidArgument, "{}: cannot {}: the archive is closed",
                        path.string(), what);
        }
        return {};
    }

    Result<void> check_run(std::string_view message, const std::string& run_id) const {
        if (run_id != start.run_id()) {
            return fail(ErrorCode::kInvalidArgument,
                        "{}: {} of run '{}' sent to the archive of '{}'", path.string(), message,
                        run_id, start.run_id());
        }
        return {};
    }

    /// Writes the final state, counts and end time, then closes the file.
    Result<void> finish(std::string_view state, const pb::RunEnd* end) {
        open = false;
        Result<void> status =
            detail::write_fixed_text(layout, layout.run_state.get(), "/entry/run_state", state);
        const auto write_counts = [&](const Hid& dataset, std::string_view name,
                                      const std::array<std::uint64_t, 5>& counts) -> Result<void> {
            if (H5Dwrite(dataset.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                         counts.data()) < 0) {
                return hdf5_failure(layout, "cannot write", name);
            }
            return {};
        };
        if (status) {
            status = write_counts(layout.frames_archived, "/entry/frames_archived", archived);
        }
        if (status && end != nullptr) {
            status = write_counts(layout.frames_sent, "/entry/frames_sent",
                                  counts_of(end->frames_sent()));
        }
        if (status && end != nullptr) {
            status = detail::write_fixed_text(layout, layout.end_time.get(), "/entry/end_time",
                                              iso8601_utc(end->ended_unix_ns()));
        }
        if (status && end != nullptr) {
            status = detail::write_fixed_text(layout, layout.end_detail.get(),
                                              "/entry/run_end_detail", end->detail());
        }
        // Close every dataset before the file, so the file's close is the final flush.
        Hid file = std::move(layout.file);
        std::string file_name = std::move(layout.file_name);
        layout = Layout{};
        layout.file_name = std::move(file_name);
        if (!file.close() && status) {
            status = fail(ErrorCode::kIo, "{}: closing the archive failed: {}", path.string(),
                          detail::hdf5_error_detail());
        }
        return status;
    }
};

RunArchive::RunArchive(std::unique_ptr<State> state) : state_(std::move(state)) {}
RunArchive::RunArchive(RunArchive&& other) noexcept = default;
RunArchive& RunArchive::operator=(RunArchive&& other) noexcept {
    if (this != &other) {
        if (state_ && state_->open) {
            (void)state_->finish(kRunStateAborted, nullptr);
        }
        state_ = std::move(other.state_);
    }
    return *this;
}

Result<void> RunArchive::interrupt() {
    assert(state_ && "use of a moved-from RunArchive");
    if (auto ok = state_->check_open("interrupt the run"); !ok) {
        return ok;
    }
    return state_->finish(kRunStateInterrupted, nullptr);
}

RunArchive::~RunArchive() {
    if (state_ && state_->open) {
        if (auto status = state_->finish(kRunStateAborted, nullptr); !status) {
            spdlog::warn("archive closed without run end could not be marked aborted: {}",
                         status.error().message);
        }
    }
}

namespace {

// Raw frames leave the page cache as the file grows (ArchiveOptions::release_written_pages);
// a reopened file's bytes before `written_bytes` are left to the kernel.
PageCacheRelease page_release_for(const Layout& layout, const ArchiveOptions& options,
                                  std::uint64_t written_bytes) {
    // The sec2 driver's descriptor (the default driver, which create_layout uses).
    void* handle = nullptr;
    if (!options.release_written_pages || !options.store_raw ||
        H5Fget_vfd_handle(layout.file.get(), H5P_DEFAULT, &handle) < 0 || handle == nullptr) {
        return {-1, 0};
    }
    return {*static_cast<int*>(handle),
            std::max<std::uint64_t>(options.page_release_step_bytes, 4096), written_bytes};
}

/// The series an append writes together, and the one it writes last (run_archive.cpp's appends,
/// docs/archive.md): its length is the number of whole records.
struct RecordGroup {
    std::string_view name;
    Series* last;
    std::vector<Series*> members;  ///< `last` included
};

std::vector<RecordGroup> record_groups(Layout& l, bool store_raw) {
    std::vector<RecordGroup> groups;
    if (store_raw) {
        groups.push_back({"/entry/data",
                          &l.raw_sequence,
                          {&l.raw_data, &l.raw_orientation, &l.raw_kind, &l.raw_encoding,
                           &l.raw_acquired, &l.raw_sent, &l.raw_exposure, &l.raw_sequence}});
        groups.push_back({"/entry/instrument/detector/flatfield",
                          &l.flatfield_sequence,
                          {&l.flatfield, &l.flatfield_sequence}});
    }
    groups.push_back({"/entry/reduced",
                      &l.cake_sequence,
                      {&l.cake_intensity, &l.cake_variance, &l.cake_count, &l.cake_orientation,
                       &l.cake_kind, &l.cake_frames, &l.cake_sequence}});
    RecordGroup results{
        "/entry/results",
        &l.result_written,
        {&l.result_frames_p, &l.result_frames_n, &l.result_s2_dof, &l.result_mechanism,
         &l.result_is_final, &l.result_frames_received, &l.result_written}};
    for (Series& column : l.result_doubles) {
        results.members.push_back(&column);
    }
    groups.push_back(std::move(results));
    groups.push_back({"/entry/run_log",
                      &l.log_type,
                      {&l.log_changed, &l.log_kind, &l.log_orientation, &l.log_next_sequence,
                       &l.log_note, &l.log_type}});
    return groups;
}

/// Cuts every series of each group to the group's whole records: a killed writer may have grown
/// some of them for a record it never finished. Returns the rows cut.
Result<std::uint64_t> trim_torn_records(Layout& layout, bool store_raw) {
    std::uint64_t cut = 0;
    for (RecordGroup& group : record_groups(layout, store_raw)) {
        // `last` is never longer than the others; the minimum also covers a file damaged
        // otherwise.
        hsize_t rows = group.last->rows;
        for (const Series* member : group.members) {
            rows = std::min(rows, member->rows);
        }
        for (Series* member : group.members) {
            if (member->rows == rows) {
                continue;
            }
            std::vector<hsize_t> extent{rows};
            extent.insert(extent.end(), member->row_dims.begin(), member->row_dims.end());
            if (H5Dset_extent(member->dataset.get(), extent.data()) < 0) {
                return tl::unexpected(
                    hdf5_failure(layout, fmt::format("cannot trim to {} rows", rows), member->path)
                        .error());
            }
            spdlog::warn("{}: {} had {} rows of which {} are whole records of {}; trimmed",
                         layout.file_name, member->path, member->rows, rows, group.name);
            cut += member->rows - rows;
            member->rows = rows;
        }
    }
    return cut;
}

/// Every row of a 1-D series, read as `memory_type`.
template <class T>
Result<std::vector<T>> read_series(const Layout& layout, const Series& series, hid_t memory_type) {
    std::vector<T> values(series.rows);
    if (!values.empty() && H5Dread(series.dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                   values.data()) < 0) {
        return tl::unexpected(hdf5_failure(layout, "cannot read", series.path).error());
    }
    return values;
}

}  // namespace

Result<RunArchive> RunArchive::create(const std::filesystem::path& path, const pb::RunStart& start,
                                      const ArchiveOptions& options) {
    auto layout = detail::create_layout(path, start, options);
    if (!layout) {
        return tl::unexpected(layout.error());
    }
    auto state = std::make_unique<State>();
    state->layout = std::move(*layout);
    state->start = start;
    state->options = options;
    state->path = path;
    state->page_release = page_release_for(state->layout, options, 0);
    return RunArchive(std::move(state));
}

Result<RunArchive> RunArchive::reopen(const std::filesystem::path& path, const std::string& run_id,
                                      const ArchiveOptions& options) {
    auto opened = detail::open_layout(path, run_id, options);
    if (!opened) {
        return tl::unexpected(opened.error());
    }
    Layout& layout = opened->layout;
    if (auto cut = trim_torn_records(layout, options.store_raw); !cut) {
        return tl::unexpected(cut.error());
    }
    if (auto swmr = detail::start_swmr_write(layout); !swmr) {
        return tl::unexpected(swmr.error());
    }
    std::array<std::uint64_t, 5> archived{};
    if (options.store_raw) {
        auto kinds = read_series<std::uint8_t>(layout, layout.raw_kind, layout.kind_type.get());
        auto orientations = read_series<std::uint8_t>(layout, layout.raw_orientation,
                                                      layout.orientation_type.get());
        if (!kinds || !orientations) {
            return tl::unexpected((kinds ? orientations.error() : kinds.error()));
        }
        for (std::size_t i = 0; i < kinds->size(); ++i) {
            ++archived[count_column(static_cast<pb::FrameKind>((*kinds)[i]),
                                    static_cast<pb::Orientation>((*orientations)[i]))];
        }
        archived[count_column(pb::FRAME_KIND_FLAT, pb::ORIENTATION_UNSPECIFIED)] +=
            layout.flatfield_sequence.rows;
    }
    auto state = std::make_unique<State>();
    state->layout = std::move(layout);
    state->start = opened->start;
    state->options = options;
    state->path = path;
    hsize_t written_bytes = 0;
    (void)H5Fget_filesize(state->layout.file.get(), &written_bytes);  // 0: all of it, as advice
    state->page_release = page_release_for(state->layout, options, written_bytes);
    const Layout& l = state->layout;
    state->raw_frames = options.store_raw ? l.raw_sequence.rows : 0;
    state->flatfields = options.store_raw ? l.flatfield_sequence.rows : 0;
    state->reduced_frames = l.cake_sequence.rows;
    state->results = l.result_written.rows;
    state->state_changes = l.log_type.rows;
    state->archived = archived;
    // Going on, last so that a refusal above leaves the state as it was: an interrupted file is
    // running again, so that a reader (and a later crash) sees the truth.
    if (auto running =
            detail::write_fixed_text(l, l.run_state.get(), "/entry/run_state", kRunStateRunning);
        !running) {
        return tl::unexpected(running.error());
    }
    return RunArchive(std::move(state));
}

Result<std::vector<std::uint64_t>> RunArchive::stored_raw_sequences() const {
    assert(state_ && "use of a moved-from RunArchive");
    const State& s = *state_;
    if (auto ok = s.check_open("read the stored sequences"); !ok) {
        return tl::unexpected(ok.error());
    }
    if (!s.options.store_raw) {
        return std::vector<std::uint64_t>{};
    }
    auto raw = read_series<std::uint64_t>(s.layout, s.layout.raw_sequence, H5T_NATIVE_UINT64);
    auto flats =
        read_series<std::uint64_t>(s.layout, s.layout.flatfield_sequence, H5T_NATIVE_UINT64);
    if (!raw || !flats) {
        return tl::unexpected((raw ? flats.error() : raw.error()));
    }
    raw->insert(raw->end(), flats->begin(), flats->end());
    return raw;
}

Result<std::vector<std::uint64_t>> RunArchive::stored_data_sequences() const {
    assert(state_ && "use of a moved-from RunArchive");
    const State& s = *state_;
    if (auto ok = s.check_open("read the stored sequences"); !ok) {
        return tl::unexpected(ok.error());
    }
    if (!s.options.store_raw) {
        return std::vector<std::uint64_t>{};
    }
    auto sequences = read_series<std::uint64_t>(s.layout, s.layout.raw_sequence, H5T_NATIVE_UINT64);
    auto kinds = read_series<std::uint8_t>(s.layout, s.layout.raw_kind, s.layout.kind_type.get());
    if (!sequences || !kinds) {
        return tl::unexpected((sequences ? kinds.error() : sequences.error()));
    }
    std::vector<std::uint64_t> data;
    for (std::size_t i = 0; i < sequences->size() && i < kinds->size(); ++i) {
        if ((*kinds)[i] == static_cast<std::uint8_t>(pb::FRAME_KIND_DATA)) {
            data.push_back((*sequences)[i]);
        }
    }
    return data;
}

Result<std::vector<std::uint64_t>> RunArchive::stored_cake_sequences() const {
    assert(state_ && "use of a moved-from RunArchive");
    const State& s = *state_;
    if (auto ok = s.check_open("read the stored sequences"); !ok) {
        return tl::unexpected(ok.error());
    }
    return read_series<std::uint64_t>(s.layout, s.layout.cake_sequence, H5T_NATIVE_UINT64);
}

Result<std::optional<RunArchive::ResultMark>> RunArchive::last_result() const {
    assert(state_ && "use of a moved-from RunArchive");
    const State& s = *state_;
    if (auto ok = s.check_open("read the last result"); !ok) {
        return tl::unexpected(ok.error());
    }
    if (s.results == 0) {
        return std::optional<ResultMark>{};
    }
    const Layout& l = s.layout;
    auto frames_p = read_series<std::uint64_t>(l, l.result_frames_p, H5T_NATIVE_UINT64);
    auto frames_n = read_series<std::uint64_t>(l, l.result_frames_n, H5T_NATIVE_UINT64);
    auto is_final = read_series<std::uint8_t>(l, l.result_is_final, H5T_NATIVE_UINT8);
    if (!frames_p || !frames_n || !is_final) {
        return tl::unexpected(!frames_p ? frames_p.error()
                                        : (!frames_n ? frames_n.error() : is_final.error()));
    }
    const std::size_t last = static_cast<std::size_t>(s.results) - 1;
    if (frames_p->size() <= last || frames_n->size() <= last || is_final->size() <= last) {
        return fail(ErrorCode::kCorrupt, "{}: /entry/results holds fewer rows than counted ({})",
                    l.file_name, s.results);
    }
    return std::optional<ResultMark>{
        ResultMark{(*frames_p)[last], (*frames_n)[last], (*is_final)[last] != 0}};
}

Result<void> RunArchive::append_raw(const pb::FrameHeader& header,
                                    std::span<const std::byte> payload) {
    assert(state_ && "use of a moved-from RunArchive");
    State& s = *state_;
    if (auto ok = s.check_open("append a frame"); !ok) {
        return ok;
    }
    if (auto ok = s.check_run("frame", header.run_id()); !ok) {
        return ok;
    }
    const std::string& file = s.layout.file_name;
    const std::string_view data_path = "/entry/data/data";
    if (!s.options.store_raw) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: raw frames are not stored in this archive (ArchiveOptions::store_raw)",
                    file);
    }
    const pb::PoniGeometry& geometry = s.start.config().geometry();
    if (header.rows() != geometry.detector_rows() || header.cols() != geometry.detector_cols()) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: frame {} is {} x {} pixels but {} holds the run's {} x {} detector", file,
                    header.sequence(), header.rows(), header.cols(), data_path,
                    geometry.detector_rows(), geometry.detector_cols());
    }
    if (header.kind() == pb::FRAME_KIND_FLAT && header.dtype() == pb::PIXEL_DTYPE_FLOAT32 &&
        s.options.raw_dtype != pb::PIXEL_DTYPE_FLOAT32) {
        return s.append_flatfield(header, payload);
    }
    if (header.dtype() != s.options.raw_dtype) {
        return fail(ErrorCode::kInvalidArgument, "{}: frame {} has dtype {} but {} holds {}", file,
                    header.sequence(), pb::PixelDtype_Name(header.dtype()), data_path,
                    pb::PixelDtype_Name(s.options.raw_dtype));
    }
    if (header.kind() == pb::FRAME_KIND_UNSPECIFIED || !pb::FrameKind_IsValid(header.kind()) ||
        !pb::Orientation_IsValid(header.orientation()) ||
        (header.kind() == pb::FRAME_KIND_DATA &&
         header.orientation() == pb::ORIENTATION_UNSPECIFIED)) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: frame {} has kind {} and orientation {}; a frame needs a kind and a DATA "
                    "frame an orientation",
                    file, header.sequence(), static_cast<int>(header.kind()),
                    static_cast<int>(header.orientation()));
    }
    const std::size_t element_size = detail::dtype_size_bytes(header.dtype());
    const std::uint64_t size_bytes = std::uint64_t{header.rows()} * header.cols() * element_size;
    if (header.uncompressed_size_bytes() != size_bytes) {
        return fail(ErrorCode::kCorrupt,
                    "{}: frame {} declares {} bytes uncompressed but {} x {} x {} bytes is {}",
                    file, header.sequence(), header.uncompressed_size_bytes(), header.rows(),
                    header.cols(), element_size, size_bytes);
    }
    if (header.payload_size_bytes() != payload.size()) {
        return fail(ErrorCode::kCorrupt,
                    "{}: frame {} declares a payload of {} bytes but {} bytes arrived", file,
                    header.sequence(), header.payload_size_bytes(), payload.size());
    }

    // The chunk as stored, and which filter (if any) decodes it.
    std::vector<std::byte> owned;
    std::span<const std::byte> chunk = payload;
    StoredEncoding stored = StoredEncoding::kNone;
    switch (header.encoding()) {
        case pb::ENCODING_RAW: {
            if (payload.size() != size_bytes) {
                return fail(ErrorCode::kCorrupt,
                            "{}: RAW frame {} holds {} bytes, expected {} x {} x {} = {}", file,
                            header.sequence(), payload.size(), header.rows(), header.cols(),
                            element_size, size_bytes);
            }
            Result<std::vector<std::byte>> compressed;
            if (s.options.raw_compression == RawCompression::kLz4) {
                compressed = codec::lz4_hdf5_compress(payload);
                stored = StoredEncoding::kLz4;
            } else if (s.options.raw_compression == RawCompression::kBslz4) {
                compressed = codec::bslz4_compress(payload, element_size);
                stored = StoredEncoding::kBslz4;
            }
            if (!compressed) {
                return tl::unexpected(compressed.error().with_context(
                    fmt::format("{}: frame {}", file, header.sequence())));
            }
            if (stored != StoredEncoding::kNone) {
                owned = std::move(*compressed);
                chunk = owned;
            }
            break;
        }
        case pb::ENCODING_LZ4: {
            stored = StoredEncoding::kLz4;
            if (!is_hdf5_lz4_framing(payload, size_bytes)) {
                auto framed = frame_lz4_block(payload, size_bytes);
                if (!framed) {
                    return tl::unexpected(framed.error().with_context(
                        fmt::format("{}: frame {}", file, header.sequence())));
                }
                owned = std::move(*framed);
                chunk = owned;
            }
            break;
        }
        case pb::ENCODING_BSLZ4: {
            stored = StoredEncoding::kBslz4;
            auto filter_header = codec::read_filter_header(payload);
            if (!filter_header || filter_header->uncompressed_size_bytes != size_bytes ||
                filter_header->block_size_bytes % element_size != 0) {
                return fail(ErrorCode::kCorrupt,
                            "{}: BSLZ4 frame {} does not start with a bslz4 header for {} bytes "
                            "of {}-byte pixels",
                            file, header.sequence(), size_bytes, element_size);
            }
            break;
        }
        default:
            return fail(ErrorCode::kInvalidArgument, "{}: frame {} has unknown encoding {}", file,
                        header.sequence(), static_cast<int>(header.encoding()));
    }
    const std::uint32_t mask = stored == StoredEncoding::kLz4     ? detail::kMaskLz4
                               : stored == StoredEncoding::kBslz4 ? detail::kMaskBslz4
                                                                  : detail::kMaskNone;

    Layout& layout = s.layout;
    const hsize_t index = s.raw_frames;
    if (auto ok = ensure_rows(layout, layout.raw_data, index + 1); !ok) {
        return ok;
    }
    const std::array<hsize_t, 3> offset{index, 0, 0};
    if (H5Dwrite_chunk(layout.raw_data.dataset.get(), H5P_DEFAULT, mask, offset.data(),
                       chunk.size(), chunk.data()) < 0) {
        auto failure = hdf5_failure(
            layout, fmt::format("cannot write frame {} as row {} of", header.sequence(), index),
            data_path);
        // HDF5 1.10 keeps stale state about a chunk whose write failed (a later write of that
        // chunk succeeds but is never indexed); a fresh dataset handle forgets it.
        layout.raw_data.dataset = detail::Hid{};
        layout.raw_data.dataset = detail::dataset_handle(
            H5Dopen2(layout.file.get(), std::string(data_path).c_str(), H5P_DEFAULT));
        return failure;
    }
    const std::uint64_t sequence = header.sequence();
    const auto orientation = static_cast<std::uint8_t>(header.orientation());
    const auto kind = static_cast<std::uint8_t>(header.kind());
    const auto encoding = static_cast<std::uint8_t>(stored);
    const std::int64_t acquired = header.acquired_unix_ns();
    const std::int64_t sent = header.sent_unix_ns();
    const double exposure = header.exposure_s();
    Result<void> ok = write_row(layout, layout.raw_orientation, index,
                                layout.orientation_type.get(), &orientation);
    ok = ok ? write_row(layout, layout.raw_kind, index, layout.kind_type.get(), &kind) : ok;
    ok = ok ? write_row(layout, layout.raw_encoding, index, layout.encoding_type.get(), &encoding)
            : ok;
    ok = ok ? write_row(layout, layout.raw_acquired, index, H5T_NATIVE_INT64, &acquired) : ok;
    ok = ok ? write_row(layout, layout.raw_sent, index, H5T_NATIVE_INT64, &sent) : ok;
    ok = ok ? write_row(layout, layout.raw_exposure, index, H5T_NATIVE_DOUBLE, &exposure) : ok;
    // `sequence` last: its length is the number of complete frames (docs/archive.md).
    ok = ok ? write_row(layout, layout.raw_sequence, index, H5T_NATIVE_UINT64, &sequence) : ok;
    if (!ok) {
        return ok;
    }
    s.raw_frames = index + 1;
    ++s.archived[count_column(header.kind(), header.orientation())];
    auto flushed = flush(layout, {&layout.raw_data, &layout.raw_orientation, &layout.raw_kind,
                                  &layout.raw_encoding, &layout.raw_acquired, &layout.raw_sent,
                                  &layout.raw_exposure, &layout.raw_sequence});
    if (flushed) {
        hsize_t end_bytes = 0;
        if (H5Fget_filesize(layout.file.get(), &end_bytes) >= 0) {
            s.page_release.advance(end_bytes);
        }
    }
    return flushed;
}

Result<void> RunArchive::append_reduced(const pb::ReducedFrame& frame,
                                        std::span<const double> intensity,
                                        std::span<const double> variance,
                                        std::span<const double> count) {
    assert(state_ && "use of a moved-from RunArchive");
    State& s = *state_;
    if (auto ok = s.check_open("append a cake"); !ok) {
        return ok;
    }
    if (auto ok = s.check_run("cake", frame.run_id()); !ok) {
        return ok;
    }
    const std::string& file = s.layout.file_name;
    const pb::ExperimentConfig& config = s.start.config();
    if (frame.n_q() != config.n_q() || frame.n_chi() != config.n_chi()) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: cake {} has {} chi x {} Q bins but /entry/reduced/intensity holds the "
                    "run's {} x {}",
                    file, frame.sequence(), frame.n_chi(), frame.n_q(), config.n_chi(),
                    config.n_q());
    }
    const auto close = [](double a, double b) {
        return std::abs(a - b) <= kAxisRelativeTolerance * std::max(std::abs(a), std::abs(b));
    };
    if (frame.has_q_axis() && (!close(frame.q_axis().lower(), config.q_min_inv_angstrom()) ||
                               !close(frame.q_axis().upper(), config.q_max_inv_angstrom()))) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: cake {} spans Q [{}, {}) 1/angstrom but /entry/reduced/q is the run's "
                    "[{}, {})",
                    file, frame.sequence(), frame.q_axis().lower(), frame.q_axis().upper(),
                    config.q_min_inv_angstrom(), config.q_max_inv_angstrom());
    }
    if (frame.has_chi_axis() && (!close(frame.chi_axis().lower(), kChiLowerDeg) ||
                                 !close(frame.chi_axis().upper(), kChiUpperDeg))) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: cake {} spans chi [{}, {}) deg but /entry/reduced/chi is [-180, 180)",
                    file, frame.sequence(), frame.chi_axis().lower(), frame.chi_axis().upper());
    }
    const std::size_t cells = std::size_t{config.n_chi()} * config.n_q();
    const std::array<std::pair<std::span<const double>, std::string_view>, 3> parts = {
        {{intensity, "intensity"}, {variance, "variance"}, {count, "count"}}};
    for (const auto& [values, name] : parts) {
        if (values.size() != cells && !(values.empty() && name != "intensity")) {
            return fail(ErrorCode::kInvalidArgument,
                        "{}: cake {} {} has {} values but /entry/reduced/{} rows hold {} x {} = {}",
                        file, frame.sequence(), name, values.size(), name, config.n_chi(),
                        config.n_q(), cells);
        }
    }

    Layout& layout = s.layout;
    const hsize_t index = s.reduced_frames;
    const std::vector<double> missing(variance.empty() || count.empty() ? cells : 0,
                                      std::numeric_limits<double>::quiet_NaN());
    const std::uint64_t sequence = frame.sequence();
    const auto orientation = static_cast<std::uint8_t>(frame.orientation());
    const auto kind = static_cast<std::uint8_t>(frame.kind());
    const std::uint64_t accumulated = frame.frames_accumulated();
    Result<void> ok =
        write_row(layout, layout.cake_intensity, index, H5T_NATIVE_DOUBLE, intensity.data());
    ok = ok ? write_row(layout, layout.cake_variance, index, H5T_NATIVE_DOUBLE,
                        variance.empty() ? missing.data() : variance.data())
            : ok;
    ok = ok ? write_row(layout, layout.cake_count, index, H5T_NATIVE_DOUBLE,
                        count.empty() ? missing.data() : count.data())
            : ok;
    ok = ok ? write_row(layout, layout.cake_orientation, index, layout.orientation_type.get(),
                        &orientation)
            : ok;
    ok = ok ? write_row(layout, layout.cake_kind, index, layout.kind_type.get(), &kind) : ok;
    ok = ok ? write_row(layout, layout.cake_frames, index, H5T_NATIVE_UINT64, &accumulated) : ok;
    ok = ok ? write_row(layout, layout.cake_sequence, index, H5T_NATIVE_UINT64, &sequence) : ok;
    if (!ok) {
        return ok;
    }
    s.reduced_frames = index + 1;
    return flush(layout, {&layout.cake_intensity, &layout.cake_variance, &layout.cake_count,
                          &layout.cake_orientation, &layout.cake_kind, &layout.cake_frames,
                          &layout.cake_sequence});
}

Result<void> RunArchive::append_result(const pb::AnalysisResult& result,
                                       std::span<const std::span<const double>> curves) {
    assert(state_ && "use of a moved-from RunArchive");
    State& s = *state_;
    if (auto ok = s.check_open("append a result"); !ok) {
        return ok;
    }
    if (auto ok = s.check_run("result", result.run_id()); !ok) {
        return ok;
    }
    const std::string& file = s.layout.file_name;
    if (curves.size() != static_cast<std::size_t>(result.curves_size())) {
        return fail(ErrorCode::kInvalidArgument, "{}: result declares {} curves but {} were given",
                    file, result.curves_size(), curves.size());
    }
    std::array<bool, detail::kCurveKinds> seen{};
    for (int i = 0; i < result.curves_size(); ++i) {
        const pb::CurveDescriptor& curve = result.curves(i);
        const int kind = curve.kind();
        if (kind < 1 || kind > static_cast<int>(detail::kCurveKinds)) {
            return fail(ErrorCode::kInvalidArgument, "{}: result curve {} has unknown kind {}",
                        file, i, kind);
        }
        if (std::exchange(seen[static_cast<std::size_t>(kind - 1)], true)) {
            return fail(ErrorCode::kInvalidArgument, "{}: result lists curve {} twice", file,
                        pb::CurveKind_Name(curve.kind()));
        }
        const std::size_t size = curves[static_cast<std::size_t>(i)].size();
        if (size != 3 * curve.n_points()) {
            return fail(ErrorCode::kInvalidArgument,
                        "{}: result curve {} declares {} points (3 x {} values) but holds {} "
                        "values",
                        file, pb::CurveKind_Name(curve.kind()), curve.n_points(), curve.n_points(),
                        size);
        }
    }

    Layout& layout = s.layout;
    const hsize_t index = s.results;
    Result<void> ok;
    const auto fields = detail::result_double_fields();
    for (std::size_t i = 0; i < fields.size() && ok; ++i) {
        const double value = fields[i].value(result);
        ok = write_row(layout, layout.result_doubles[i], index, H5T_NATIVE_DOUBLE, &value);
    }
    const std::uint64_t frames_p = result.n_frames_p();
    const std::uint64_t frames_n = result.n_frames_n();
    const std::uint64_t s2_dof = result.s2_dof();
    const auto mechanism = static_cast<std::uint8_t>(
        pb::Mechanism_IsValid(result.mechanism()) ? result.mechanism() : 0);
    const auto is_final = static_cast<std::uint8_t>(result.is_final() ? 1 : 0);
    const std::array<std::uint64_t, 5> received = counts_of(result.frames());
    const std::int64_t written = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count();
    ok = ok ? write_row(layout, layout.result_frames_p, index, H5T_NATIVE_UINT64, &frames_p) : ok;
    ok = ok ? write_row(layout, layout.result_frames_n, index, H5T_NATIVE_UINT64, &frames_n) : ok;
    ok = ok ? write_row(layout, layout.result_s2_dof, index, H5T_NATIVE_UINT64, &s2_dof) : ok;
    ok = ok ? write_row(layout, layout.result_mechanism, index, layout.mechanism_type.get(),
                        &mechanism)
            : ok;
    ok = ok ? write_row(layout, layout.result_is_final, index, H5T_NATIVE_UINT8, &is_final) : ok;
    ok = ok ? write_row(layout, layout.result_frames_received, index, H5T_NATIVE_UINT64,
                        received.data())
            : ok;
    ok = ok ? write_row(layout, layout.result_written, index, H5T_NATIVE_INT64, &written) : ok;
    if (!ok) {
        return ok;
    }
    std::vector<const Series*> touched;
    for (const Series& series : layout.result_doubles) {
        touched.push_back(&series);
    }
    for (const Series* series :
         {&layout.result_frames_p, &layout.result_frames_n, &layout.result_s2_dof,
          &layout.result_mechanism, &layout.result_is_final, &layout.result_frames_received,
          &layout.result_written}) {
        touched.push_back(series);
    }
    const auto row = static_cast<std::int64_t>(index);
    for (int i = 0; i < result.curves_size() && ok; ++i) {
        const std::span<const double> values = curves[static_cast<std::size_t>(i)];
        const std::size_t n = values.size() / 3;
        detail::CurveDatasets& curve =
            layout.curves[static_cast<std::size_t>(result.curves(i).kind() - 1)];
        ok = rewrite(layout, curve.x, values.first(n));
        ok = ok ? rewrite(layout, curve.value, values.subspan(n, n)) : ok;
        ok = ok ? rewrite(layout, curve.variance, values.subspan(2 * n, n)) : ok;
        if (ok && H5Dwrite(curve.result_row.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                           &row) < 0) {
            ok = hdf5_failure(layout, "cannot write the result row of", curve.x.path);
        }
        if (ok && H5Dflush(curve.result_row.get()) < 0) {
            ok = hdf5_failure(layout, "cannot flush the result row of", curve.x.path);
        }
        touched.insert(touched.end(), {&curve.x, &curve.value, &curve.variance});
    }
    if (!ok) {
        return ok;
    }
    s.results = index + 1;
    for (const Series* series : touched) {
        if (auto flushed = flush(layout, {series}); !flushed) {
            return flushed;
        }
    }
    return {};
}

Result<void> RunArchive::append_state_change(const std::string& run_id,
                                             const pb::StateChange& change) {
    assert(state_ && "use of a moved-from RunArchive");
    State& s = *state_;
    if (auto ok = s.check_open("append a state change"); !ok) {
        return ok;
    }
    if (auto ok = s.check_run("state change", run_id); !ok) {
        return ok;
    }
    Layout& layout = s.layout;
    const hsize_t index = change.index();
    if (index < layout.log_type.rows) {
        return {};  // already logged (the live event, then RunEnd's copy)
    }
    if (index > layout.log_type.rows) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: state change {} of run {} arrived with rows 0-{} of /entry/run_log "
                    "written: the log is written in order",
                    layout.file_name, index, run_id, layout.log_type.rows);
    }
    const std::int64_t changed = change.changed_unix_ns();
    const auto type = static_cast<std::uint8_t>(change.type());
    const auto kind = static_cast<std::uint8_t>(change.kind());
    const auto orientation = static_cast<std::uint8_t>(change.orientation());
    const std::uint64_t next_sequence = change.next_sequence();
    std::string note(detail::kNoteBytes, '\0');
    std::copy_n(change.note().begin(), std::min(change.note().size(), note.size()), note.begin());
    Result<void> ok = write_row(layout, layout.log_changed, index, H5T_NATIVE_INT64, &changed);
    ok = ok ? write_row(layout, layout.log_kind, index, layout.kind_type.get(), &kind) : ok;
    ok = ok ? write_row(layout, layout.log_orientation, index, layout.orientation_type.get(),
                        &orientation)
            : ok;
    ok = ok ? write_row(layout, layout.log_next_sequence, index, H5T_NATIVE_UINT64, &next_sequence)
            : ok;
    ok = ok ? write_row(layout, layout.log_note, index, layout.note_type.get(), note.data()) : ok;
    // The change column last: its length is the number of complete rows.
    ok = ok ? write_row(layout, layout.log_type, index, layout.change_type.get(), &type) : ok;
    if (!ok) {
        return ok;
    }
    s.state_changes = index + 1;
    return flush(layout, {&layout.log_changed, &layout.log_kind, &layout.log_orientation,
                          &layout.log_next_sequence, &layout.log_note, &layout.log_type});
}

std::uint64_t RunArchive::state_changes() const { return state_->state_changes; }

Result<void> RunArchive::close(const pb::RunEnd& end) {
    assert(state_ && "use of a moved-from RunArchive");
    State& s = *state_;
    if (auto ok = s.check_open("close"); !ok) {
        return ok;
    }
    if (auto ok = s.check_run("run end", end.run_id()); !ok) {
        return ok;
    }
    // RunEnd carries the whole log: rows the live events did not bring are written now.
    for (const pb::StateChange& change : end.state_changes()) {
        if (auto ok = append_state_change(end.run_id(), change); !ok) {
            spdlog::warn("{}", ok.error().message);
            break;
        }
    }
    const std::string_view state =
        end.reason() == pb::RUN_END_REASON_COMPLETED ? kRunStateCompleted : kRunStateAborted;
    return s.finish(state, &end);
}

bool RunArchive::is_open() const { return state_ && state_->open; }
const std::filesystem::path& RunArchive::path() const { return state_->path; }
std::uint64_t RunArchive::raw_frames() const { return state_->raw_frames; }

std::size_t RunArchive::metadata_cache_bytes() const {
    std::size_t max_bytes = 0;
    std::size_t min_clean_bytes = 0;
    std::size_t current_bytes = 0;
    int entries = 0;
    if (!state_->open || H5Fget_mdc_size(state_->layout.file.get(), &max_bytes, &min_clean_bytes,
                                         &current_bytes, &entries) < 0) {
        return 0;
    }
    return current_bytes;
}
std::uint64_t RunArchive::flat_fields() const { return state_->flatfields; }
std::uint64_t RunArchive::reduced_frames() const { return state_->reduced_frames; }
std::uint64_t RunArchive::results() const { return state_->results; }

}  // namespace anisoflow::archive
