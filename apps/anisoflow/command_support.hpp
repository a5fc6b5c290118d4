#pragma once
// Pieces every anisoflow subcommand shares: progress on stderr, frame averaging for darks and
// flats, the saturation level of a pixel type, output path checks.

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "anisoflow/core/frame.hpp"
#include "anisoflow/core/result.hpp"
#include "anisoflow/reduce/corrections.hpp"

namespace anisoflow::app {

/// Progress on stderr: a live line on a terminal, a log line every 10 % otherwise.
class Progress {
  public:
    Progress(std::string what, std::size_t total);
    void update(std::size_t done, double ms_per_frame);

  private:
    std::string what_;
    std::size_t total_;
    bool live_;
};

/// Mean of every frame of the given specs (darks, flats), checked against the detector shape;
/// returns the mean and the number of frames.
Result<std::pair<std::vector<float>, std::size_t>> average_frames(
    const std::vector<std::string>& specs, FrameShape detector, const char* what);

/// Dark (mean of the dark frames, with their count), flat (mean) and mask from the files given
/// on the command line, each checked against the detector shape; empty lists leave them unset.
Result<reduce::DetectorCorrections> load_detector_corrections(const std::vector<std::string>& darks,
                                                              const std::vector<std::string>& flats,
                                                              const std::string& mask,
                                                              FrameShape detector);

/// The whole text of a small file ("" when unreadable: callers have opened it already).
std::string read_text(const std::string& path);

/// An error naming the option when the file's directory does not exist or the path is a
/// directory: checked before any long work, so a typo costs nothing.
Result<void> check_output_path(const std::string& path, const char* option);

/// `--config FILE.toml` for a subcommand (SPEC 8): every key must name one of the
/// subcommand's long options (dashes or underscores), or the error names the key and the file;
/// values fill only the options the command line does not give, so flags override the file.
/// Returns the arguments to parse, the TOML keys turned into flags after the given ones.
Result<std::vector<std::string>> arguments_with_config(const std::vector<std::string>& arguments,
                                                       const CLI::App& subcommand);

}  // namespace anisoflow::app
