#pragma once
// Whole datasets of a file the tests read back (run files, cake files): small, so read at once.
// Header-only, since only the tests that link HDF5 include it.

#include <array>
#include <cstddef>
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

/// Writes frames `indices` (in that order) of the frame stack `dataset` ([n, rows, cols]) of
/// file `from` as the stack /entry/data/data of a new file `to`, in the same pixel type: an
/// offline reference over some of a run's frames. False when anything fails.
inline bool copy_frames(const std::string& from, const char* dataset, const std::string& to,
                        const std::vector<std::size_t>& indices) {
    const hid_t in = H5Fopen(from.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (in < 0) {
        return false;
    }
    const hid_t source = H5Dopen2(in, dataset, H5P_DEFAULT);
    const hid_t type = source < 0 ? -1 : H5Dget_type(source);
    const hid_t space = source < 0 ? -1 : H5Dget_space(source);
    std::array<hsize_t, 3> dims{};
    bool ok = space >= 0 && H5Sget_simple_extent_ndims(space) == 3 &&
              H5Sget_simple_extent_dims(space, dims.data(), nullptr) == 3;
    const hid_t out = ok ? H5Fcreate(to.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT) : -1;
    const hid_t groups = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(groups, 1);
    const std::array<hsize_t, 3> out_dims{indices.size(), dims[1], dims[2]};
    const hid_t out_space = H5Screate_simple(3, out_dims.data(), nullptr);
    const hid_t target = out < 0 ? -1
                                 : H5Dcreate2(out, "/entry/data/data", type, out_space, groups,
                                              H5P_DEFAULT, H5P_DEFAULT);
    ok = ok && target >= 0;
    std::vector<std::byte> frame(ok ? dims[1] * dims[2] * H5Tget_size(type) : 0);
    const std::array<hsize_t, 3> one{1, dims[1], dims[2]};
    const hid_t frame_space = H5Screate_simple(3, one.data(), nullptr);
    for (std::size_t i = 0; ok && i < indices.size(); ++i) {
        const std::array<hsize_t, 3> at_in{indices[i], 0, 0};
        const std::array<hsize_t, 3> at_out{i, 0, 0};
        ok = indices[i] < dims[0] &&
             H5Sselect_hyperslab(space, H5S_SELECT_SET, at_in.data(), nullptr, one.data(),
                                 nullptr) >= 0 &&
             H5Dread(source, type, frame_space, space, H5P_DEFAULT, frame.data()) >= 0 &&
             H5Sselect_hyperslab(out_space, H5S_SELECT_SET, at_out.data(), nullptr, one.data(),
                                 nullptr) >= 0 &&
             H5Dwrite(target, type, frame_space, out_space, H5P_DEFAULT, frame.data()) >= 0;
    }
    for (const hid_t space_id : {frame_space, out_space, space}) {
        if (space_id >= 0) {
            H5Sclose(space_id);
        }
    }
    if (target >= 0) {
        H5Dclose(target);
    }
    H5Pclose(groups);
    if (out >= 0) {
        ok = H5Fclose(out) >= 0 && ok;
    }
    if (type >= 0) {
        H5Tclose(type);
    }
    if (source >= 0) {
        H5Dclose(source);
    }
    H5Fclose(in);
    return ok;
}

}  // namespace anisoflow::testing
