#pragma once
// Whole datasets of a file the tests read back (run files, cake files): small, so read at once.
// Header-only, since only the tests that link HDF5 include it.

#include <cstdint>
#include <string>
#include <vector>

#include <hdf5.h>

namespace anisoflow::testing {

/// A fixed-length string dataset up to its first NUL; "<missing>" or "<unreadable>" otherwise.
inline std::string read_fixed_string(hid_t file, const char* path) {
    const hid_t dataset = H5Dopen2(file, path, H5P_DEFAULT);
    if (dataset < 0) {
        return "<missing>";
    }
    const hid_t type = H5Dget_type(dataset);
    std::string text(H5Tget_size(type), '\0');
    const herr_t read = H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, text.data());
    H5Tclose(type);
    H5Dclose(dataset);
    return read < 0 ? "<unreadable>" : text.substr(0, text.find('\0'));
}

/// Every value of a numeric dataset converted to `T` (`memory_type` its HDF5 type); empty when
/// the dataset is missing or unreadable.
template <typename T>
std::vector<T> read_values(hid_t file, const char* path, hid_t memory_type) {
    std::vector<T> values;
    const hid_t dataset = H5Dopen2(file, path, H5P_DEFAULT);
    if (dataset < 0) {
        return values;
    }
    const hid_t space = H5Dget_space(dataset);
    values.resize(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
    if (!values.empty() &&
        H5Dread(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0) {
        values.clear();
    }
    H5Sclose(space);
    H5Dclose(dataset);
    return values;
}

inline std::vector<std::uint64_t> read_u64(hid_t file, const char* path) {
    return read_values<std::uint64_t>(file, path, H5T_NATIVE_UINT64);
}

inline std::vector<double> read_doubles(hid_t file, const char* path) {
    return read_values<double>(file, path, H5T_NATIVE_DOUBLE);
}

}  // namespace anisoflow::testing
