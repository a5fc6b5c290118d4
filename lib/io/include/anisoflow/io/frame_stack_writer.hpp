#pragma once
// Frames written as an HDF5 stack that the frame readers (and h5py, silx, pyFAI) open:
// /entry/data/data [n, rows, cols], one frame per chunk, appended one at a time so a long series
// never sits in memory. Used by `anisoflow simulate`.

#include <filesystem>
#include <memory>
#include <optional>

#include "anisoflow/core/frame.hpp"
#include "anisoflow/core/result.hpp"

namespace anisoflow::io {

struct FrameStackOptions {
    int gzip_level = 1;                  ///< 0 = uncompressed; 1 is fast and halves counting data
    std::optional<double> count_time_s;  ///< written to /entry/instrument/detector/count_time
};

class FrameStackWriter {
  public:
    static Result<FrameStackWriter> create(const std::filesystem::path& path, FrameShape shape,
                                           PixelType type, const FrameStackOptions& options = {});
    FrameStackWriter(FrameStackWriter&&) noexcept;
    FrameStackWriter& operator=(FrameStackWriter&&) noexcept;
    FrameStackWriter(const FrameStackWriter&) = delete;
    FrameStackWriter& operator=(const FrameStackWriter&) = delete;
    ~FrameStackWriter();

    /// Appends one frame; its shape and pixel type must be the stack's.
    Result<void> append(const FrameView& frame);
    /// Flushes and closes; later appends are errors. The destructor closes too.
    Result<void> close();
    [[nodiscard]] std::size_t frames_written() const;

  private:
    struct State;
    explicit FrameStackWriter(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

}  // namespace anisoflow::io
