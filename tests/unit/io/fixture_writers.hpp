#pragma once
// Writers of small frame and mask files for the io tests, straight through the HDF5 C API,
// libtiff and std::ofstream, so the readers are checked against files they did not write.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <hdf5.h>

namespace anisoflow::io::fixtures {

struct Hdf5Layout {
    std::vector<hsize_t> chunk;  ///< empty = contiguous
    int gzip_level = -1;         ///< -1 = no compression (needs chunk)
};

/// Writes `values` as a dataset with `dims` (creating parent groups); the file is created when
/// missing and reused otherwise.
template <class T>
::testing::AssertionResult write_hdf5(const std::filesystem::path& file, const std::string& path,
                                      const std::vector<hsize_t>& dims,
                                      const std::vector<T>& values, const Hdf5Layout& layout = {});

/// A scalar float64 dataset or a fixed-length string dataset.
::testing::AssertionResult write_hdf5_scalar(const std::filesystem::path& file,
                                             const std::string& path, double value);
::testing::AssertionResult write_hdf5_string(const std::filesystem::path& file,
                                             const std::string& path, const std::string& value);

/// Reads a string attribute (fixed or variable length) or a string array attribute.
std::vector<std::string> read_string_attribute(const std::filesystem::path& file,
                                               const std::string& object, const std::string& name);
/// Dimensions of a dataset (empty when it is missing).
std::vector<hsize_t> read_dims(const std::filesystem::path& file, const std::string& path);

struct TiffLayout {
    std::uint32_t tile_size = 0;  ///< 0 = strips of rows_per_strip rows, else square tiles
    std::uint32_t rows_per_strip = 3;
    std::uint16_t photometric = 1;  ///< PHOTOMETRIC_MINISBLACK
    std::uint16_t samples_per_pixel = 1;
    bool append = false;  ///< add the pages to an existing file
};

/// One directory per page, pages[i] holding rows*cols values (times samples_per_pixel).
template <class T>
::testing::AssertionResult write_tiff(const std::filesystem::path& file, std::uint32_t rows,
                                      std::uint32_t cols, const std::vector<std::vector<T>>& pages,
                                      const TiffLayout& layout = {});

/// A one-strip uncompressed uint16 TIFF laid out header, directory, pixels (libtiff itself puts
/// the directory after the pixels), so a truncated copy still has its directory.
::testing::AssertionResult write_directory_first_tiff(const std::filesystem::path& file,
                                                      std::uint32_t rows, std::uint32_t cols,
                                                      const std::vector<std::uint16_t>& values);

/// A GE raw file: 8192-byte header then frames of 2048x2048 little-endian uint16, pixel value
/// value(frame, row, col).
::testing::AssertionResult write_ge(
    const std::filesystem::path& file, std::size_t frames,
    const std::function<std::uint16_t(std::size_t, std::size_t, std::size_t)>& value);

/// Values 0, 1, 2, ... (times `scale`, plus `offset`) converted to T.
template <class T>
std::vector<T> ramp(std::size_t n, double scale = 1.0, double offset = 0.0) {
    std::vector<T> values(n);
    for (std::size_t i = 0; i < n; ++i) {
        values[i] = static_cast<T>(offset + scale * static_cast<double>(i));
    }
    return values;
}

}  // namespace anisoflow::io::fixtures
