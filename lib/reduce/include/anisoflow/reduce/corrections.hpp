#pragma once
// Static per-pixel corrections of SPEC 2: dark, flat, mask, saturation and negative-after-dark
// masking, polarization and solid angle. Pure data and arithmetic; files are read by lib/io.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "anisoflow/core/frame.hpp"
#include "anisoflow/core/result.hpp"

namespace anisoflow::reduce {

/// How a pixel's variance follows from its counts (docs/reduction.md "Noise models").
enum class VarianceModel {
    /// SPEC 2 as written: every count is a photon, the dark included:
    /// var(raw - dark) = raw + dark / n_dark.
    kPoisson,
    /// An integrating detector (flat panel): the dark is an electronic offset with Gaussian read
    /// noise, and only the signal above it is photons (extends SPEC 2):
    /// var(raw - dark) = counts_per_photon * max(raw - dark, 0) + sigma_read^2 (1 + 1/n_dark).
    kIntegrating,
};

std::string_view to_string(VarianceModel model);
/// "poisson" or "integrating"; the error lists the accepted names.
Result<VarianceModel> parse_variance_model(std::string_view name);

/// Inputs of the reduction that do not change from frame to frame. Empty vectors mean "not used".
/// The dark is in counts at the data's exposure (darks are taken with the same counting time).
struct DetectorCorrections {
    std::vector<float> dark_counts;           ///< mean dark frame (see FrameAverager)
    std::size_t dark_frame_count = 0;         ///< frames in that mean; 0 treats the dark as exact
    std::vector<float> flat;                  ///< relative efficiency; <= 0 or non-finite = masked
    std::vector<std::uint8_t> mask;           ///< non-zero = excluded (beam stop, gaps, bad pixels)
    std::optional<double> saturation_counts;  ///< raw >= this is excluded in that frame
    bool mask_negative_after_dark = true;     ///< raw < dark is excluded in that frame
    std::optional<double>
        polarization_factor;  ///< pyFAI factor (0.99 typical); none = no correction
    bool correct_solid_angle = true;
    VarianceModel variance_model = VarianceModel::kPoisson;
    /// kIntegrating: read noise of one frame, counts rms (required by that model; the dark
    /// frames' FrameAverager::mean_pixel_variance() estimates its square).
    std::optional<double> read_noise_counts;
    /// kIntegrating: detector counts one photon makes (1 for the simulator's detector). A
    /// signal of S counts is S / g photons, so its variance is g^2 (S / g) = g S counts^2.
    double counts_per_photon = 1.0;

    /// Every array must be empty or match the detector shape; reports all problems at once.
    [[nodiscard]] Result<void> validate(FrameShape detector_shape) const;
};

/// Running mean of frames in double precision (darks, flats). Frames of one mean must share a
/// shape; each frame counts once whatever its exposure (darks are taken at the data's exposure).
class FrameAverager {
  public:
    [[nodiscard]] Result<void> add(const FrameView& frame);
    [[nodiscard]] std::size_t frame_count() const { return frame_count_; }
    [[nodiscard]] FrameShape shape() const { return shape_; }
    /// The mean as float32; an error if no frame was added.
    [[nodiscard]] Result<std::vector<float>> mean() const;
    /// Pooled per-pixel variance across the frames, counts^2: each pixel's sample variance
    /// (n - 1 denominator) averaged over the pixels whose mask value is 0 (all when the mask is
    /// empty). For darks of an integrating detector it is sigma_read^2, precise to ~1e-3 from
    /// two frames of a 2048^2 detector. An error with fewer than 2 frames or no unmasked pixel.
    [[nodiscard]] Result<double> mean_pixel_variance(std::span<const std::uint8_t> mask) const;

  private:
    FrameShape shape_;
    std::vector<double> sum_;
    std::vector<double> sum_squares_;
    std::size_t frame_count_ = 0;
};

}  // namespace anisoflow::reduce
