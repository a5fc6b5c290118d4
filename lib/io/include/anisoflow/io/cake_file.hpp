#pragma once
// The NeXus/HDF5 output of `anisoflow integrate` (docs/io.md, "Cake file"): the mean cake and its
// I(q), optionally every frame's cake streamed in as it is integrated, plus provenance.

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "anisoflow/core/result.hpp"
#include "anisoflow/reduce/cake.hpp"

namespace anisoflow::io {

/// Provenance written to /entry/process.
struct CakeFileInfo {
    std::string program_version;
    std::string poni_text;             ///< the PONI file as read
    std::string settings_json;         ///< the integration settings as JSON text
    std::vector<std::string> sources;  ///< the frame specs given on the command line
};

/// Writes a cake file. create() writes the metadata; append_frame() streams per-frame cakes
/// (one HDF5 chunk each) when per_frame is set; finish() writes the mean and closes the file.
/// A writer destroyed before finish() closes the file, leaving it without /entry/cake.
/// Not thread-safe (HDF5 is built without thread safety here).
class CakeFileWriter {
  public:
    static Result<CakeFileWriter> create(const std::filesystem::path& path,
                                         const reduce::CakeAxes& axes, const CakeFileInfo& info,
                                         bool per_frame);

    CakeFileWriter(CakeFileWriter&&) noexcept;
    CakeFileWriter& operator=(CakeFileWriter&&) noexcept;
    CakeFileWriter(const CakeFileWriter&) = delete;
    CakeFileWriter& operator=(const CakeFileWriter&) = delete;
    ~CakeFileWriter();

    /// Appends one frame's cake to /entry/frames/{intensity,variance,count} [n, n_chi, n_q] and
    /// /entry/frames/intensity_1d [n, n_q]. Only for writers created with per_frame = true.
    Result<void> append_frame(const reduce::Cake& cake);

    /// Writes /entry/cake, /entry/i_q and /entry/process/frame_count, then closes the file.
    Result<void> finish(const reduce::Cake& mean);

    /// Frames appended so far.
    [[nodiscard]] std::size_t frames_written() const;

  private:
    struct State;
    explicit CakeFileWriter(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

/// Reads /entry/cake and /entry/i_q of a cake file back into a Cake (axes, arrays, frame count).
Result<reduce::Cake> read_cake_file(const std::filesystem::path& path);

}  // namespace anisoflow::io
