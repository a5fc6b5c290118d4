#pragma once
// Streaming readers of detector frames from files (SPEC 8): HDF5 2D images and 3D stacks, TIFF
// (single or multi-page), GE raw, and globs of these. Frames are read one at a time, so a stack of
// any size never has to fit in memory.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "anisoflow/core/frame.hpp"
#include "anisoflow/core/result.hpp"

namespace anisoflow::io {

/// Dataset read from an HDF5 frame file when the spec names none (NeXus NXdetector data).
inline constexpr std::string_view kDefaultFrameDataset = "/entry/data/data";
/// Per-frame or scalar counting time read into Frame::exposure_s when an HDF5 file has it.
inline constexpr std::string_view kCountTimeDataset = "/entry/instrument/detector/count_time";

/// GE raw files (.ge .ge2 .ge3 .ge5): a fixed header, then little-endian uint16 frames.
inline constexpr std::size_t kGeHeaderBytes = 8192;
inline constexpr FrameShape kGeFrameShape{2048, 2048};
/// Largest frame a reader allocates, bytes: 1 GiB, 16x a 4k x 4k float32 frame (the bound of
/// transport::kMaxFrameBytes). A file that declares a larger frame is refused when it is opened.
inline constexpr std::uint64_t kMaxFrameBytes = std::uint64_t{1} << 30;

/// A sequence of frames of one shape and one pixel type, read on demand. A source is not
/// thread-safe (HDF5 and libtiff handles are not): give each reading thread its own.
class FrameSource {
  public:
    virtual ~FrameSource() = default;
    [[nodiscard]] virtual FrameShape shape() const = 0;
    [[nodiscard]] virtual PixelType pixel_type() const = 0;
    [[nodiscard]] virtual std::size_t frame_count() const = 0;
    /// Reads frame `index` (0-based) with Frame::index_in_source = index.
    /// Out-of-range indices are an error naming the source.
    Result<Frame> read_frame(std::size_t index);
    /// Where the frames come from, for messages: "frames.h5::/entry/data/data".
    [[nodiscard]] virtual std::string describe() const = 0;

  protected:
    /// Reads frame `index`, already checked to be < frame_count().
    virtual Result<Frame> read_frame_at(std::size_t index) = 0;
};

/// Opens one frame spec: `file.h5[::/dataset]` (.h5 .hdf5 .nxs .hdf; 2D = one frame, 3D =
/// [n, rows, cols]), `file.tif[f]`, `file.ge[2|3|5]`, or a glob (`*`, `?`, `[...]`) of such files,
/// concatenated in byte-wise sorted order (`::/dataset` then applies to every match). Errors name
/// the file (and dataset) and the problem: missing, unreadable, truncated, unsupported layout.
Result<std::unique_ptr<FrameSource>> open_frame_source(std::string_view spec);

/// Concatenates several specs (each possibly a glob) into one source, frames in the order given.
/// Every part must have the same frame shape and pixel type; the error names the odd one out.
/// Only one file is held open at a time, so thousands of files do not exhaust file handles.
Result<std::unique_ptr<FrameSource>> open_frame_sources(const std::vector<std::string>& specs);

/// Checks that a source's frames have the shape the detector (PONI) expects:
/// "frames.h5::/entry/data/data: frame shape 1024x1024 does not match the detector's 2048x2048".
Result<void> check_shape(const FrameSource& source, FrameShape expected);

/// "rows x cols" as written in messages, e.g. "2048x2048".
std::string format_shape(FrameShape shape);

}  // namespace anisoflow::io
