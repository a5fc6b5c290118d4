#pragma once
// The HDF5 C API, owned: an identifier that closes itself, HDF5's error stack as one line of
// text instead of its own stderr printing. Shared by lib/io (frame readers, result files) and
// lib/archive (run files), which otherwise keep their HDF5 use to themselves.

#include <string>
#include <utility>

#include <hdf5.h>

namespace anisoflow::hdf5 {

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
inline Hid object_handle(hid_t id) { return {id, H5Oclose}; }

/// Turns off HDF5's automatic printing of its error stack (once per process); failures travel
/// as Result values with hdf5_error_detail() instead.
void silence_hdf5_errors();

/// The innermost messages of the current HDF5 error stack, one line ("truncated file: eof =
/// ..."), or "unknown HDF5 error". Call right after the failing call: the next API call clears
/// the stack.
std::string hdf5_error_detail();

}  // namespace anisoflow::hdf5
