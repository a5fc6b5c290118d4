#pragma once
// Static per-pixel corrections of SPEC 2: dark, flat, mask, saturation and negative-after-dark
// masking, polarization and solid angle. Pure data and arithmetic; files are read by lib/io.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "anisoflow/core/frame.hpp"
#include "anisoflow/core/result.hpp"

namespace anisoflow::reduce {

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

  private:
    FrameShape shape_;
    std::vector<double> sum_;
    std::size_t frame_count_ = 0;
};

}  // namespace anisoflow::reduce
