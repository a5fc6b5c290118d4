#pragma once
// Private factories of the concrete frame sources, and pixel-buffer helpers they share.

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

#include "anisoflow/core/frame.hpp"
#include "anisoflow/core/result.hpp"
#include "anisoflow/io/frame_source.hpp"

namespace anisoflow::io::detail {

enum class FileFormat { kHdf5, kTiff, kGe };

/// The format a file's extension (case-insensitive) stands for; an unknown one is an error
/// listing the known extensions.
Result<FileFormat> format_of(const std::string& file);

Result<std::unique_ptr<FrameSource>> open_hdf5_source(const std::filesystem::path& file,
                                                      const std::string& dataset);
Result<std::unique_ptr<FrameSource>> open_tiff_source(const std::filesystem::path& file);
Result<std::unique_ptr<FrameSource>> open_ge_source(const std::filesystem::path& file);

/// Checks that a frame of `shape` and `type` fits kMaxFrameBytes before anything is allocated
/// (the product of a corrupt file's dimensions may also overflow); the error names `label`.
Result<void> check_frame_bytes(FrameShape shape, PixelType type, const std::string& label);

/// A zero-filled buffer of `count` pixels of `type`.
PixelBuffer allocate_pixels(PixelType type, std::size_t count);

/// The first byte of a buffer's storage.
void* pixel_data(PixelBuffer& buffer);

}  // namespace anisoflow::io::detail
