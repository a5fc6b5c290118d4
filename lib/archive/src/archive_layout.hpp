#pragma once
// The open objects of one archive file, created by create_layout() before the switch to SWMR
// (docs/archive.md lists every path). After the switch nothing is created: appends only grow or
// rewrite these datasets.

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <hdf5.h>

#include "anisoflow/archive/run_archive.hpp"
#include "anisoflow/core/clock.hpp"
#include "anisoflow/core/result.hpp"

#include "hdf5_handles.hpp"

namespace anisoflow::archive::detail {

/// Raw frame datasets declare two optional filters; a chunk's filter mask says which one was
/// applied (bit i set = filter i skipped).
inline constexpr unsigned kFilterIdBslz4 = 32008;  // bitshuffle plugin, index 0 in the pipeline
inline constexpr unsigned kFilterIdLz4 = 32004;    // HDF5 LZ4 plugin, index 1 in the pipeline
inline constexpr std::uint32_t kMaskBslz4 = 0b10;  // LZ4 skipped
inline constexpr std::uint32_t kMaskLz4 = 0b01;    // bitshuffle skipped
inline constexpr std::uint32_t kMaskNone = 0b11;   // both skipped: raw bytes

/// Columns of the frame count datasets (frames_sent, frames_archived, results/frames_received).
inline constexpr std::array<std::string_view, 5> kFrameCountColumns = {"data_p", "data_n", "dark",
                                                                       "flat", "background"};

/// A dataset that grows along dim 0, one row per record.
struct Series {
    Hid dataset;
    std::string path;
    std::vector<hsize_t> row_dims;  ///< shape of one row (empty for a 1-D series)
    hsize_t rows = 0;               ///< current extent along dim 0
};

/// One latest curve, rewritten in place: x, value and variance resized to the curve's points.
struct CurveDatasets {
    Series x;
    Series value;
    Series variance;
    Hid result_row;  ///< scalar int64: the results row the curve belongs to, -1 before any
};

/// A float64 column of the result time series and how to read it from an AnalysisResult.
struct ResultField {
    std::string_view name;   ///< dataset name under /entry/results (the SUMMARY.json key)
    std::string_view units;  ///< "" = dimensionless
    double (*value)(const pb::AnalysisResult&);
};

/// The float64 columns, in a fixed order (Layout::result_doubles has the same order).
std::span<const ResultField> result_double_fields();

/// Number of CurveKind values besides UNSPECIFIED (S0 .. REDUCED_G).
inline constexpr std::size_t kCurveKinds = 7;

/// The curve groups of /entry/results (docs/archive.md); written by the layout, read back by
/// read_run().
struct CurveName {
    std::string_view group;   // under /entry/results
    std::string_view x_name;  // "q" or "r"
    std::string_view x_units;
    std::string_view value_units;
};

/// Indexed by CurveKind - 1 (stream.proto).
inline constexpr std::array<CurveName, kCurveKinds> kCurveNames = {{
    {"s0", "q", "1/angstrom", ""},
    {"s2", "q", "1/angstrom", ""},
    {"g0", "r", "angstrom", ""},
    {"g2", "r", "angstrom", ""},
    {"affine_g2", "r", "angstrom", ""},
    {"eps_r", "r", "angstrom", ""},
    {"reduced_g", "r", "angstrom", "1/angstrom^2"},
}};

struct Layout {
    Hid file;
    std::string file_name;

    Hid orientation_type;  ///< enum u8: unspecified, P, N
    Hid kind_type;         ///< enum u8: unspecified, data, dark, flat, background
    Hid encoding_type;     ///< enum u8: none, lz4, bslz4 (as stored)
    Hid mechanism_type;    ///< enum u8: SPEC 7 labels
    Hid change_type;       ///< enum u8: StateChangeType labels (run_started ... run_ended)
    Hid note_type;         ///< fixed-length string of kNoteBytes

    // /entry
    Hid run_state;        ///< fixed-length string
    Hid end_time;         ///< fixed-length string, ISO 8601, empty until the end
    Hid end_detail;       ///< fixed-length string, RunEnd.detail (truncated)
    Hid frames_sent;      ///< [5] uint64, RunEnd.frames_sent
    Hid frames_archived;  ///< [5] uint64, rows of /entry/data/data per kind and orientation

    // /entry/data (only when raw frames are stored)
    Series raw_data;
    Series raw_sequence;
    Series raw_orientation;
    Series raw_kind;
    Series raw_encoding;
    Series raw_acquired;
    Series raw_sent;
    Series raw_exposure;
    // /entry/instrument/detector/flatfield: float32 flat fields (a computed flat is no detector
    // frame of the raw dtype), with the sequence of each (only when raw frames are stored)
    Series flatfield;
    Series flatfield_sequence;

    // /entry/reduced
    Series cake_intensity;
    Series cake_variance;
    Series cake_count;
    Series cake_sequence;
    Series cake_orientation;
    Series cake_kind;
    Series cake_frames;

    // /entry/results
    std::vector<Series> result_doubles;  ///< result_double_fields() order
    Series result_frames_p;
    Series result_frames_n;
    Series result_s2_dof;
    Series result_mechanism;
    Series result_is_final;
    Series result_frames_received;  ///< [n, 5]
    Series result_written;
    std::array<CurveDatasets, kCurveKinds> curves;  ///< index = CurveKind - 1

    // /entry/run_log: run control's state changes (docs/run-control.md), one row each
    Series log_changed;        ///< int64 ns since the Unix epoch
    Series log_type;           ///< change_type
    Series log_kind;           ///< kind_type: the kind in force after the change
    Series log_orientation;    ///< orientation_type
    Series log_next_sequence;  ///< uint64: sequence of the first frame the change applies to
    Series log_note;           ///< note_type
};

/// Bytes per pixel of a dtype, 0 for UNSPECIFIED or an unknown value.
std::size_t dtype_size_bytes(pb::PixelDtype dtype);

/// Fixed-length string sizes, bytes (longer text is truncated).
inline constexpr std::size_t kRunStateBytes = 16;
inline constexpr std::size_t kTimeBytes = 40;
// Room for an operator's reason and archive's two lists of missing frames (missing_sequences,
// missing_cakes: 32 sequences each at most) without cutting a list.
inline constexpr std::size_t kDetailBytes = 2048;
inline constexpr std::size_t kNoteBytes = 256;  // StateChange.note (ingest cuts it there too)

/// Creates the file, the whole tree and switches to SWMR write mode.
Result<Layout> create_layout(const std::filesystem::path& path, const pb::RunStart& start,
                             const ArchiveOptions& options);

/// A run file opened again, and the RunStart it was created from (run id and configuration).
struct OpenedLayout {
    Layout layout;
    pb::RunStart start;
};

/// Opens the file of run `run_id` that a killed writer left behind (its SWMR write flags
/// cleared) or a stopped one interrupted, and every object create_layout made; each Series has
/// the rows stored. Not in SWMR mode yet: the caller trims torn records first, then calls
/// start_swmr_write. Errors: not a run file, another run's, a run_state other than "running" or
/// "interrupted", a tree the options or the stored
/// configuration do not describe (raw frames on or off, pixel type, shapes).
Result<OpenedLayout> open_layout(const std::filesystem::path& path, std::string_view run_id,
                                 const ArchiveOptions& options);

Result<void> start_swmr_write(const Layout& layout);

/// Writes `value` into a scalar fixed-length string dataset.
Result<void> write_fixed_text(const Layout& layout, hid_t dataset, std::string_view path,
                              std::string_view value);

}  // namespace anisoflow::archive::detail
