#pragma once
// Private helpers around the HDF5 C API: an owning handle, error capture instead of HDF5's own
// stderr printing, and the checks every reader does before touching a dataset.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <hdf5.h>

#include "anisoflow/core/result.hpp"

namespace anisoflow::io::detail {

/// Owns one HDF5 identifier and closes it with the matching H5?close function.
class Hid {
  public:
    using Closer = herr_t (*)(hid_t);

    Hid() = default;
    Hid(hid_t id, Closer closer) : id_(id), closer_(closer) {}
    Hid(Hid&& other) noexcept
        : id_(std::exchange(other.id_, H5I_INVALID_HID)), closer_(other.closer_) {}
    Hid& operator=(Hid&& other) noexcept {
        if (this != &other) {
            close();
            id_ = std::exchange(other.id_, H5I_INVALID_HID);
            closer_ = other.closer_;
        }
        return *this;
    }
    Hid(const Hid&) = delete;
    Hid& operator=(const Hid&) = delete;
    ~Hid() { close(); }

    [[nodiscard]] hid_t get() const { return id_; }
    [[nodiscard]] bool valid() const { return id_ >= 0; }
    explicit operator bool() const { return valid(); }

    /// Closes now; returns false when the close failed (for files: the final flush failed).
    bool close() {
        if (id_ < 0 || closer_ == nullptr) {
            return true;
        }
        const herr_t status = closer_(std::exchange(id_, H5I_INVALID_HID));
        return status >= 0;
    }

  private:
    hid_t id_ = H5I_INVALID_HID;
    Closer closer_ = nullptr;
};

inline Hid file_handle(hid_t id) { return {id, H5Fclose}; }
inline Hid group_handle(hid_t id) { return {id, H5Gclose}; }
inline Hid dataset_handle(hid_t id) { return {id, H5Dclose}; }
inline Hid space_handle(hid_t id) { return {id, H5Sclose}; }
inline Hid type_handle(hid_t id) { return {id, H5Tclose}; }
inline Hid plist_handle(hid_t id) { return {id, H5Pclose}; }
inline Hid attribute_handle(hid_t id) { return {id, H5Aclose}; }
inline Hid object_handle(hid_t id) { return {id, H5Oclose}; }

/// Turns off HDF5's automatic printing of its error stack (once per process); failures are
/// reported through Result instead, with hdf5_error_detail().
void silence_hdf5_errors();

/// The innermost messages of the current HDF5 error stack ("truncated file: eof = ..."), or
/// "unknown HDF5 error". Call right after the failing call: the next API call clears the stack.
std::string hdf5_error_detail();

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
