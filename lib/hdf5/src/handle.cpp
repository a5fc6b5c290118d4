#include "anisoflow/hdf5/handle.hpp"

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <vector>

namespace anisoflow::hdf5 {
namespace {

constexpr std::size_t kMaxErrorMessages = 3;  // innermost messages kept from an error stack

herr_t collect_error(unsigned /*index*/, const H5E_error2_t* error, void* data) {
    auto* messages = static_cast<std::vector<std::string>*>(data);
    if (error->desc != nullptr && *error->desc != '\0') {
        // HDF5 descriptions may span lines (e.g. a time stamp); an error is one line.
        std::string text(error->desc);
        std::replace(text.begin(), text.end(), '\n', ' ');
        while (!text.empty() && text.back() == ' ') {
            text.pop_back();
        }
        messages->emplace_back(std::move(text));
    }
    return 0;
}

}  // namespace

void silence_hdf5_errors() {
    static std::once_flag once;
    std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

std::string hdf5_error_detail() {
    std::vector<std::string> messages;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_error, &messages);  // innermost first
    if (messages.empty()) {
        return "unknown HDF5 error";
    }
    std::string detail;
    for (std::size_t i = 0; i < messages.size() && i < kMaxErrorMessages; ++i) {
        detail += (i == 0 ? "" : "; ") + messages[i];
    }
    return detail;
}

}  // namespace anisoflow::hdf5
