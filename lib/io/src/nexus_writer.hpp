#pragma once
// Writes NeXus objects by absolute path; after the first failure every call is a no-op and
// status() reports it, so a sequence of writes needs one check at the end. Shared by the cake
// file and the analysis file.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <hdf5.h>

#include "anisoflow/core/result.hpp"

#include "hdf5_util.hpp"

namespace anisoflow::io::detail {

class NexusWriter {
  public:
    explicit NexusWriter(hid_t file) : file_(file) {}

    void group(const std::string& path, const char* nx_class) {
        if (failed()) {
            return;
        }
        Hid group = detail::group_handle(
            H5Gcreate2(file_, path.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        check(group.valid(), "cannot create group " + path);
        string_attr(path, "NX_class", nx_class);
    }

    void string_attr(const std::string& object, const char* name, std::string_view value) {
        const std::string copy(value);
        const char* text = copy.c_str();
        Hid space = detail::space_handle(H5Screate(H5S_SCALAR));
        Hid type = string_type();
        write_attr(object, name, space.get(), type.get(), &text);
    }

    void strings_attr(const std::string& object, const char* name,
                      const std::vector<std::string>& values) {
        const std::vector<const char*> texts = c_strings(values);
        const hsize_t dims[1] = {texts.size()};
        Hid space = detail::space_handle(H5Screate_simple(1, dims, nullptr));
        Hid type = string_type();
        write_attr(object, name, space.get(), type.get(), texts.data());
    }

    void int_attr(const std::string& object, const char* name, std::int64_t value) {
        Hid space = detail::space_handle(H5Screate(H5S_SCALAR));
        write_attr(object, name, space.get(), H5T_NATIVE_INT64, &value, H5T_STD_I64LE);
    }

    void double_attr(const std::string& object, const char* name, double value) {
        Hid space = detail::space_handle(H5Screate(H5S_SCALAR));
        write_attr(object, name, space.get(), H5T_NATIVE_DOUBLE, &value, H5T_IEEE_F64LE);
    }

    /// A float64 dataset, with @units when `units` is given ("" = dimensionless).
    void doubles(const std::string& path, const std::vector<hsize_t>& dims,
                 const std::vector<double>& values,
                 std::optional<std::string_view> units = std::nullopt) {
        Hid space = detail::space_handle(
            H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
        write_dataset(path, space.get(), H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, values.data(),
                      !values.empty());
        if (units) {
            string_attr(path, "units", *units);
        }
    }

    void scalar(const std::string& path, double value, std::optional<std::string_view> units) {
        Hid space = detail::space_handle(H5Screate(H5S_SCALAR));
        write_dataset(path, space.get(), H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, true);
        if (units) {
            string_attr(path, "units", *units);
        }
    }

    void integer(const std::string& path, std::int64_t value) {
        Hid space = detail::space_handle(H5Screate(H5S_SCALAR));
        write_dataset(path, space.get(), H5T_STD_I64LE, H5T_NATIVE_INT64, &value, true);
    }

    void text(const std::string& path, std::string_view value) {
        const std::string copy(value);
        const char* data = copy.c_str();
        Hid space = detail::space_handle(H5Screate(H5S_SCALAR));
        Hid type = string_type();
        write_dataset(path, space.get(), type.get(), type.get(), &data, true);
    }

    void texts(const std::string& path, const std::vector<std::string>& values) {
        const std::vector<const char*> data = c_strings(values);
        const hsize_t dims[1] = {data.size()};
        Hid space = detail::space_handle(H5Screate_simple(1, dims, nullptr));
        Hid type = string_type();
        write_dataset(path, space.get(), type.get(), type.get(), data.data(), !data.empty());
    }

    /// A float64 dataset [0, frame_dims...] growing by one chunk per frame.
    Hid extendible(const std::string& path, const std::vector<hsize_t>& frame_dims,
                   unsigned gzip_level) {
        if (failed()) {
            return {};
        }
        std::vector<hsize_t> dims{0};
        std::vector<hsize_t> max_dims{H5S_UNLIMITED};
        std::vector<hsize_t> chunk{1};
        dims.insert(dims.end(), frame_dims.begin(), frame_dims.end());
        max_dims.insert(max_dims.end(), frame_dims.begin(), frame_dims.end());
        chunk.insert(chunk.end(), frame_dims.begin(), frame_dims.end());
        const int rank = static_cast<int>(dims.size());
        Hid space = detail::space_handle(H5Screate_simple(rank, dims.data(), max_dims.data()));
        Hid create = detail::plist_handle(H5Pcreate(H5P_DATASET_CREATE));
        bool ok = space && create && H5Pset_chunk(create.get(), rank, chunk.data()) >= 0;
        if (ok && gzip_level > 0 && H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
            ok = H5Pset_shuffle(create.get()) >= 0 && H5Pset_deflate(create.get(), gzip_level) >= 0;
        }
        Hid dataset;
        if (ok) {
            dataset =
                detail::dataset_handle(H5Dcreate2(file_, path.c_str(), H5T_IEEE_F64LE, space.get(),
                                                  H5P_DEFAULT, create.get(), H5P_DEFAULT));
        }
        check(dataset.valid(), "cannot create " + path);
        return dataset;
    }

    /// Writes `values` as entry `index` of an extendible dataset, growing it first.
    void append(hid_t dataset, const std::string& path, std::size_t index,
                const std::vector<hsize_t>& frame_dims, const std::vector<double>& values) {
        if (failed()) {
            return;
        }
        std::vector<hsize_t> extent{index + 1};
        std::vector<hsize_t> start{index};
        std::vector<hsize_t> count{1};
        extent.insert(extent.end(), frame_dims.begin(), frame_dims.end());
        start.insert(start.end(), frame_dims.size(), 0);
        count.insert(count.end(), frame_dims.begin(), frame_dims.end());
        bool ok = H5Dset_extent(dataset, extent.data()) >= 0;
        Hid file_space = detail::space_handle(H5Dget_space(dataset));
        Hid memory_space = detail::space_handle(
            H5Screate_simple(static_cast<int>(frame_dims.size()), frame_dims.data(), nullptr));
        ok = ok && file_space && memory_space &&
             H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr,
                                 count.data(), nullptr) >= 0 &&
             H5Dwrite(dataset, H5T_NATIVE_DOUBLE, memory_space.get(), file_space.get(), H5P_DEFAULT,
                      values.data()) >= 0;
        check(ok, fmt::format("cannot append frame {} to {}", index, path));
    }

    [[nodiscard]] bool failed() const { return error_.has_value(); }

    Result<void> status(const std::filesystem::path& file) const {
        if (error_) {
            return tl::unexpected(error_->with_context(file.string()));
        }
        return {};
    }

  private:
    static Hid string_type() {
        Hid type = detail::type_handle(H5Tcopy(H5T_C_S1));
        H5Tset_size(type.get(), H5T_VARIABLE);
        H5Tset_cset(type.get(), H5T_CSET_UTF8);
        return type;
    }

    static std::vector<const char*> c_strings(const std::vector<std::string>& values) {
        std::vector<const char*> texts;
        texts.reserve(values.size());
        for (const auto& value : values) {
            texts.push_back(value.c_str());
        }
        return texts;
    }

    void write_attr(const std::string& object, const char* name, hid_t space, hid_t memory_type,
                    const void* data, hid_t file_type = H5I_INVALID_HID) {
        if (failed()) {
            return;
        }
        Hid attribute = detail::attribute_handle(
            H5Acreate_by_name(file_, object.c_str(), name, file_type >= 0 ? file_type : memory_type,
                              space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        check(attribute && H5Awrite(attribute.get(), memory_type, data) >= 0,
              fmt::format("cannot write attribute {}@{}", object, name));
    }

    void write_dataset(const std::string& path, hid_t space, hid_t file_type, hid_t memory_type,
                       const void* data, bool has_data) {
        if (failed()) {
            return;
        }
        Hid dataset = detail::dataset_handle(H5Dcreate2(file_, path.c_str(), file_type, space,
                                                        H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        check(dataset && (!has_data || H5Dwrite(dataset.get(), memory_type, H5S_ALL, H5S_ALL,
                                                H5P_DEFAULT, data) >= 0),
              "cannot write " + path);
    }

    void check(bool ok, const std::string& what) {
        if (!ok && !error_) {
            error_ =
                Error{ErrorCode::kIo, fmt::format("{}: {}", what, detail::hdf5_error_detail())};
        }
    }

    hid_t file_;
    std::optional<Error> error_;
};

}  // namespace anisoflow::io::detail
