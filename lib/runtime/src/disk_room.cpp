#include "anisoflow/runtime/disk_room.hpp"

#include <cerrno>
#include <system_error>

#include <sys/statvfs.h>

namespace anisoflow::runtime {

Result<std::uint64_t> free_disk_bytes(const std::filesystem::path& path) {
    struct statvfs stats {};
    if (::statvfs(path.c_str(), &stats) != 0) {
        const std::error_code error(errno, std::generic_category());
        return fail(ErrorCode::kIo, "{}: cannot read the file system's free space: {}",
                    path.string(), error.message());
    }
    return std::uint64_t{stats.f_bavail} * std::uint64_t{stats.f_frsize};
}

DiskRoom::Check DiskRoom::check() {
    Check check;
    if (reserve_bytes_ == 0) {
        return check;
    }
    auto free_bytes = free_disk_bytes(directory_);
    if (free_bytes) {
        check.free_bytes = *free_bytes;
        check.has_room = *free_bytes >= reserve_bytes_;
    } else {
        check.error = free_bytes.error();
    }
    check.changed = check.has_room != has_room_;
    has_room_ = check.has_room;
    return check;
}

}  // namespace anisoflow::runtime
