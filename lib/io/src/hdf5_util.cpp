#include "hdf5_util.hpp"

#include <algorithm>
#include <system_error>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace anisoflow::io::detail {
namespace {

constexpr std::size_t kMaxListedMembers = 20;  // group members listed in a "not found" error

herr_t collect_member(hid_t /*group*/, const char* name, const H5L_info_t* /*info*/, void* data) {
    auto* names = static_cast<std::vector<std::string>*>(data);
    names->emplace_back(name);
    return names->size() > kMaxListedMembers ? 1 : 0;  // a positive value stops the iteration
}

/// "/a/b/c" -> {"/a", "/a/b", "/a/b/c"}
std::vector<std::string> path_prefixes(const std::string& path) {
    std::vector<std::string> prefixes;
    for (std::size_t pos = 1; pos <= path.size(); ++pos) {
        if (pos == path.size() || path[pos] == '/') {
            if (path[pos - 1] != '/') {
                prefixes.push_back(path.substr(0, pos));
            }
        }
    }
    return prefixes;
}

std::string describe_group(hid_t file, const std::string& group_path) {
    Hid object = object_handle(H5Oopen(file, group_path.c_str(), H5P_DEFAULT));
    if (!object) {
        return {};
    }
    if (H5Iget_type(object.get()) != H5I_GROUP) {
        return fmt::format("{} is not a group", group_path);
    }
    std::vector<std::string> names;
    hsize_t index = 0;
    H5Literate(object.get(), H5_INDEX_NAME, H5_ITER_INC, &index, collect_member, &names);
    if (names.empty()) {
        return fmt::format("{} is empty", group_path);
    }
    std::string listing;
    for (std::size_t i = 0; i < names.size() && i < kMaxListedMembers; ++i) {
        listing += (i == 0 ? "" : ", ") + names[i];
    }
    if (names.size() > kMaxListedMembers) {
        listing += ", ...";
    }
    return fmt::format("{} holds: {}", group_path, listing);
}

}  // namespace

Result<Hid> open_hdf5_file(const std::filesystem::path& path) {
    silence_hdf5_errors();
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status)) {
        return fail(ErrorCode::kNotFound, "{}: file not found", path.string());
    }
    if (std::filesystem::is_directory(status)) {
        return fail(ErrorCode::kInvalidArgument, "{}: is a directory, not a file", path.string());
    }
    const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
    if (is_hdf5 == 0) {
        return fail(ErrorCode::kParse, "{}: not an HDF5 file (no HDF5 signature)", path.string());
    }
    if (is_hdf5 < 0) {
        return fail(ErrorCode::kIo, "{}: cannot read file: {}", path.string(), hdf5_error_detail());
    }
    Hid file = file_handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    if (!file) {
        return fail(ErrorCode::kCorrupt, "{}: cannot open HDF5 file (truncated or corrupt?): {}",
                    path.string(), hdf5_error_detail());
    }
    return file;
}

std::string absolute_hdf5_path(std::string_view path) {
    if (!path.empty() && path.front() == '/') {
        return std::string(path);
    }
    // Built with reserve/append: GCC 12 at -O3 warns falsely (-Wrestrict) on "/" + string.
    std::string absolute;
    absolute.reserve(path.size() + 1);
    absolute.push_back('/');
    absolute.append(path);
    return absolute;
}

bool dataset_exists(hid_t file, const std::string& path) {
    for (const auto& prefix : path_prefixes(path)) {
        if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) {
            return false;
        }
    }
    Hid object = object_handle(H5Oopen(file, path.c_str(), H5P_DEFAULT));
    return object && H5Iget_type(object.get()) == H5I_DATASET;
}

Result<Hid> open_dataset(hid_t file, const std::string& path) {
    std::string parent = "/";
    for (const auto& prefix : path_prefixes(path)) {
        if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) {
            const std::string listing = describe_group(file, parent);
            const std::string missing_group =
                prefix == path ? std::string() : fmt::format(": no group {}", prefix);
            return fail(ErrorCode::kNotFound, "dataset {} not found{}{}", path, missing_group,
                        listing.empty() ? "" : " (" + listing + ")");
        }
        parent = prefix;
    }
    Hid object = object_handle(H5Oopen(file, path.c_str(), H5P_DEFAULT));
    if (!object) {
        return fail(ErrorCode::kCorrupt, "cannot open {}: {}", path, hdf5_error_detail());
    }
    if (H5Iget_type(object.get()) != H5I_DATASET) {
        return fail(ErrorCode::kInvalidArgument, "{} is a group, not a dataset ({})", path,
                    describe_group(file, path));
    }
    Hid dataset = dataset_handle(H5Dopen2(file, path.c_str(), H5P_DEFAULT));
    if (!dataset) {
        return fail(ErrorCode::kCorrupt, "cannot open dataset {}: {}", path, hdf5_error_detail());
    }
    return dataset;
}

std::vector<hsize_t> dataset_dims(hid_t dataset) {
    Hid space = space_handle(H5Dget_space(dataset));
    const int rank = space ? H5Sget_simple_extent_ndims(space.get()) : -1;
    if (rank <= 0) {
        return {};
    }
    std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    return dims;
}

std::string format_dims(const std::vector<hsize_t>& dims) {
    return fmt::format("[{}]", fmt::join(dims, ", "));
}

}  // namespace anisoflow::io::detail
