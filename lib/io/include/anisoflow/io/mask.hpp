#pragma once
// Pixel masks (SPEC 8): an HDF5 dataset or a TIFF image, non-zero = masked, as pyFAI reads them.

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "anisoflow/core/frame.hpp"
#include "anisoflow/core/result.hpp"

namespace anisoflow::io {

/// Datasets tried in order when an HDF5 mask spec names none.
inline constexpr std::array<std::string_view, 3> kDefaultMaskDatasets = {
    "/entry/instrument/detector/pixel_mask", "/mask", "/data"};

/// Reads a mask from `file.h5[::/dataset]` (2D, or 3D with one frame) or a single-page TIFF.
/// Returns one byte per pixel in C order, 1 = masked (any non-zero or NaN value), 0 = used.
/// A shape other than `expected` is an error naming the file and both shapes.
Result<std::vector<std::uint8_t>> read_mask(std::string_view spec, FrameShape expected);

}  // namespace anisoflow::io
