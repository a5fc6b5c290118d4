#pragma once
// Private HDF5 helpers: an owning identifier and the error stack as text. The same small idea as
// lib/io's hdf5_util.hpp, kept here so the archive does not link the science through lib/io.

#include <string>
#include <utility>

#include <hdf5.h>

namespace anisoflow::archive::detail {

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

    /// Closes now; false when the close failed (for a file: its final flush failed).
    bool close() {
        if (id_ < 0 || closer_ == nullptr) {
            return true;
        }
        return closer_(std::exchange(id_, H5I_INVALID_HID)) >= 0;
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

/// Turns off HDF5's printing of its error stack (once per process); failures travel as Results.
void silence_hdf5_errors();

/// The innermost messages of the current HDF5 error stack, or "unknown HDF5 error". Call right
/// after the failing call: the next API call clears the stack.
std::string hdf5_error_detail();

}  // namespace anisoflow::archive::detail
