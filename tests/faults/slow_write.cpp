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

using WriteFunction = ssize_t (*)(int, const void*, size_t);
using PwriteFunction = ssize_t (*)(int, const void*, size_t, off_t);

// Read once when the library is loaded, before the process starts a thread: a lazily built
// static would be initialised under a guard this uninstrumented library hides from
// ThreadSanitizer, which then reports the first reads as racing with it. Constant-initialised,
// so nothing runs before load_settings().
struct Settings {
    std::array<char, 4096> directory{};
    std::size_t directory_size = 0;
    double bytes_per_s = 0.0;
    WriteFunction write = nullptr;
    PwriteFunction pwrite = nullptr;
    PwriteFunction pwrite64 = nullptr;
};
Settings settings;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables): set at load

template <typename Function>
Function next(const char* name) {
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): dlsym returns void*
    return reinterpret_cast<Function>(::dlsym(RTLD_NEXT, name));
}

[[gnu::constructor]] void load_settings() {
    settings.write = next<WriteFunction>("write");
    settings.pwrite = next<PwriteFunction>("pwrite");
    settings.pwrite64 = next<PwriteFunction>("pwrite64");
    // NOLINTBEGIN(concurrency-mt-unsafe): read at load, before any thread
    const char* directory = std::getenv("ANISOFLOW_SLOW_WRITE_DIR");
    const char* rate = std::getenv("ANISOFLOW_SLOW_WRITE_BYTES_PER_S");
    // NOLINTEND(concurrency-mt-unsafe)
    if (directory == nullptr || rate == nullptr) {
        return;
    }
    const std::size_t size = std::strlen(directory);
    if (size >= settings.directory.size()) {
        return;  // longer than a path can be: pass through
    }
    std::memcpy(settings.directory.data(), directory, size);
    settings.directory_size = size;
    settings.bytes_per_s = std::strtod(rate, nullptr);
}

// Sleeps as long as `bytes` take at the configured rate when `fd` is a file under the directory.
void pace(int fd, std::size_t bytes) {
    if (settings.bytes_per_s <= 0.0 || bytes == 0) {
        return;
    }
    std::array<char, 4096> path{};
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t length = ::readlink(link.c_str(), path.data(), path.size() - 1);
    if (length <= 0 ||
        std::strncmp(path.data(), settings.directory.data(), settings.directory_size) != 0) {
        return;
    }
    const double seconds = static_cast<double>(bytes) / settings.bytes_per_s;
    timespec wait{};
    wait.tv_sec = static_cast<time_t>(seconds);
    wait.tv_nsec = static_cast<long>((seconds - static_cast<double>(wait.tv_sec)) * 1e9);
    while (::nanosleep(&wait, &wait) != 0) {
    }
}

}  // namespace

extern "C" {

// A write before load_settings() ran (another library's constructor) passes through.
ssize_t write(int fd, const void* buffer, size_t bytes) {
    if (settings.write == nullptr) {
        return next<WriteFunction>("write")(fd, buffer, bytes);
    }
    pace(fd, bytes);
    return settings.write(fd, buffer, bytes);
}

ssize_t pwrite(int fd, const void* buffer, size_t bytes, off_t offset) {
    if (settings.pwrite == nullptr) {
        return next<PwriteFunction>("pwrite")(fd, buffer, bytes, offset);
    }
    pace(fd, bytes);
    return settings.pwrite(fd, buffer, bytes, offset);
}

ssize_t pwrite64(int fd, const void* buffer, size_t bytes, off_t offset) {
    if (settings.pwrite64 == nullptr) {
        return next<PwriteFunction>("pwrite64")(fd, buffer, bytes, offset);
    }
    pace(fd, bytes);
    return settings.pwrite64(fd, buffer, bytes, offset);
}

}  // extern "C"
