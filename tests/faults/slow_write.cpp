// A slow disk for one process, without root: preloaded (LD_PRELOAD) into archive by the fault
// suite's slow-disk round, it sleeps before every write() and pwrite() to a file under
// $ANISOFLOW_SLOW_WRITE_DIR so that those writes go at most $ANISOFLOW_SLOW_WRITE_BYTES_PER_S.
// Other files (the service's log) are untouched. Both unset: a pass-through.

#include <array>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include <dlfcn.h>
#include <sys/types.h>
#include <time.h>  // NOLINT(modernize-deprecated-headers): nanosleep is POSIX
#include <unistd.h>

namespace {

struct Throttle {
    std::string directory;
    double bytes_per_s = 0.0;
};

const Throttle& throttle() {
    static const Throttle settings = [] {
        Throttle t;
        // NOLINTBEGIN(concurrency-mt-unsafe): read once, at the first write
        const char* directory = std::getenv("ANISOFLOW_SLOW_WRITE_DIR");
        const char* rate = std::getenv("ANISOFLOW_SLOW_WRITE_BYTES_PER_S");
        // NOLINTEND(concurrency-mt-unsafe)
        if (directory != nullptr && rate != nullptr) {
            t.directory = directory;
            t.bytes_per_s = std::strtod(rate, nullptr);
        }
        return t;
    }();
    return settings;
}

// Sleeps as long as `bytes` take at the configured rate when `fd` is a file under the directory.
void pace(int fd, std::size_t bytes) {
    const Throttle& t = throttle();
    if (t.bytes_per_s <= 0.0 || bytes == 0) {
        return;
    }
    std::array<char, 4096> path{};
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t length = ::readlink(link.c_str(), path.data(), path.size() - 1);
    if (length <= 0 || std::strncmp(path.data(), t.directory.c_str(), t.directory.size()) != 0) {
        return;
    }
    const double seconds = static_cast<double>(bytes) / t.bytes_per_s;
    timespec wait{};
    wait.tv_sec = static_cast<time_t>(seconds);
    wait.tv_nsec = static_cast<long>((seconds - static_cast<double>(wait.tv_sec)) * 1e9);
    while (::nanosleep(&wait, &wait) != 0) {
    }
}

template <typename Function>
Function next(const char* name) {
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): dlsym returns void*
    return reinterpret_cast<Function>(::dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" {

ssize_t write(int fd, const void* buffer, size_t bytes) {
    static const auto real = next<ssize_t (*)(int, const void*, size_t)>("write");
    pace(fd, bytes);
    return real(fd, buffer, bytes);
}

ssize_t pwrite(int fd, const void* buffer, size_t bytes, off_t offset) {
    static const auto real = next<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
    pace(fd, bytes);
    return real(fd, buffer, bytes, offset);
}

ssize_t pwrite64(int fd, const void* buffer, size_t bytes, off_t offset) {
    static const auto real = next<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite64");
    pace(fd, bytes);
    return real(fd, buffer, bytes, offset);
}

}  // extern "C"
