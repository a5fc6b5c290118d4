#pragma once
// Pieces every anisoflow subcommand shares: progress on stderr, frame averaging for darks and
// flats, the saturation level of a pixel type, output path checks, CURVE options.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "anisoflow/core/frame.hpp"
#include "anisoflow/core/result.hpp"
#include "anisoflow/reduce/corrections.hpp"
#include "anisoflow/transport/socket_security.hpp"

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

/// The mean of a set of frames, their number, and (with 2 frames or more) the pooled
/// per-pixel variance across them over the unmasked pixels, counts^2.
struct FrameMean {
    std::vector<float> mean;
    std::size_t frame_count = 0;
    std::optional<double> pixel_variance_counts2;
};

/// Mean of every frame of the given specs (darks, flats), checked against the detector shape;
/// `mask` (empty: none) selects the pixels of the variance.
Result<FrameMean> average_frames(const std::vector<std::string>& specs, FrameShape detector,
                                 const char* what, std::span<const std::uint8_t> mask = {});

/// The detector noise model of a command (`--variance-model`, `--read-noise`,
/// `--counts-per-photon`; docs/reduction.md "Noise models").
struct NoiseModelOptions {
    std::string variance_model = "poisson";   ///< SPEC 2's default; or "integrating"
    std::optional<double> read_noise_counts;  ///< given; else estimated from >= 2 darks
    double counts_per_photon = 1.0;
};

/// Dark (mean of the dark frames, with their count), flat (mean) and mask from the files given
/// on the command line, each checked against the detector shape; empty lists leave them unset.
/// The noise model is set from `noise`: the integrating model's read noise is the given value,
/// else the dark frames' pooled per-pixel spread; an error names the options when neither
/// exists.
Result<reduce::DetectorCorrections> load_detector_corrections(const std::vector<std::string>& darks,
                                                              const std::vector<std::string>& flats,
                                                              const std::string& mask,
                                                              FrameShape detector,
                                                              const NoiseModelOptions& noise);

/// Declares `--variance-model`, `--read-noise` and `--counts-per-photon` on a subcommand.
void add_noise_model_options(CLI::App& command, NoiseModelOptions& noise);

/// The noise model as recorded in a command's configuration/provenance JSON (keys
/// variance_model, read_noise_counts, read_noise_from, counts_per_photon).
nlohmann::json noise_model_json(const reduce::DetectorCorrections& corrections,
                                const NoiseModelOptions& noise);

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

/// CURVE on a command's own tcp socket (docs/security.md, "CURVE between hosts"): the two
/// settings of a service's [security] section, as `--curve-certificate` and
/// `--curve-public-keys-dir`. Both empty: a plain socket.
struct CurveOptions {
    std::string certificate;      ///< this client's (or server's) secret certificate
    std::string public_keys_dir;  ///< trusted public certificates; the server's is <host>.key
};

/// Declares --curve-certificate and --curve-public-keys-dir on `command`.
void add_curve_options(CLI::App& command, CurveOptions& curve);

/// The certificates the options name, read and checked; errors name the option and the file.
Result<transport::SocketSecurity> load_curve(const CurveOptions& curve);

}  // namespace anisoflow::app
