#pragma once
// The archive's names for lib/hdf5's owned identifiers and error text.

#include "anisoflow/hdf5/handle.hpp"

namespace anisoflow::archive::detail {

using hdf5::attribute_handle;
using hdf5::dataset_handle;
using hdf5::file_handle;
using hdf5::group_handle;
using hdf5::hdf5_error_detail;
using hdf5::Hid;
using hdf5::plist_handle;
using hdf5::silence_hdf5_errors;
using hdf5::space_handle;
using hdf5::type_handle;

}  // namespace anisoflow::archive::detail
