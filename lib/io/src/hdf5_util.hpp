#pragma once
// Private helpers around the HDF5 C API: the checks every reader does before touching a dataset
// (the owning handle and error capture are lib/hdf5's).

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <hdf5.h>

#include "anisoflow/core/result.hpp"
#include "anisoflow/hdf5/handle.hpp"

namespace anisoflow::io::detail {

// The owned identifiers and the error text come from lib/hdf5 (shared with lib/archive).
using hdf5::attribute_handle;
using hdf5::dataset_handle;
using hdf5::file_handle;
using hdf5::group_handle;
using hdf5::hdf5_error_detail;
using hdf5::Hid;
using hdf5::object_handle;
using hdf5::plist_handle;
using hdf5::silence_hdf5_errors;
using hdf5::space_handle;
using hdf5::type_handle;

/// Opens an existing HDF5 file read-only; errors: missing file, not HDF5, corrupt or truncated.
Result<Hid> open_hdf5_file(const std::filesystem::path& path);

/// Normalises "entry/data" to "/entry/data".
std::string absolute_hdf5_path(std::string_view path);

/// Whether `path` names a dataset in the file (false for a missing link or another object kind).
bool dataset_exists(hid_t file, const std::string& path);

/// Opens a dataset; the error (without file prefix) says which path component is missing and
/// lists what the deepest existing group holds, or that the path names a group.
Result<Hid> open_dataset(hid_t file, const std::string& path);

/// Dimensions of a dataset's dataspace (empty for a scalar).
std::vector<hsize_t> dataset_dims(hid_t dataset);

/// "[3, 2048, 2048]"
std::string format_dims(const std::vector<hsize_t>& dims);

}  // namespace anisoflow::io::detail
