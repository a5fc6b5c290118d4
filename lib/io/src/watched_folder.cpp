// A watched folder (docs/watched-folder.md): list, let files settle, verify, open, read frame by
// frame. Names, not contents, identify what was taken; names that leave the folder are forgotten.

#include "anisoflow/io/watched_folder.hpp"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <fmt/format.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sources.hpp"

namespace anisoflow::io {
namespace {

namespace fs = std::filesystem;

std::int64_t mtime_ns_of(const struct stat& status) {
    constexpr std::int64_t kNsPerS = 1'000'000'000;
    return static_cast<std::int64_t>(status.st_mtim.tv_sec) * kNsPerS +
           static_cast<std::int64_t>(status.st_mtim.tv_nsec);
}

std::string errno_text(int error) {
    return std::error_code(error, std::generic_category()).message();
}

/// What HDF5 (1.10 to 1.14) says when another process holds the file open for writing. The
/// kernel drops such a lock when its holder exits, so a locked file has a live writer.
constexpr std::string_view kHdf5LockedMessage = "unable to lock file";

std::int64_t to_ms(std::chrono::steady_clock::duration duration) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(duration).count();
}

/// Opens `file` with the reader its extension names (HDF5 with `dataset`).
Result<std::unique_ptr<FrameSource>> open_file(const fs::path& file, const std::string& dataset) {
    auto format = detail::format_of(file.string());
    if (!format) {
        return tl::unexpected(format.error());
    }
    switch (*format) {
        case detail::FileFormat::kHdf5:
            return detail::open_hdf5_source(file, dataset);
        case detail::FileFormat::kTiff:
            return detail::open_tiff_source(file);
        case detail::FileFormat::kGe:
            return detail::open_ge_source(file);
    }
    return fail(ErrorCode::kUnsupported, "{}: unknown file format", file.string());
}

/// The error with the file named first when the reader's message does not name it already.
Error naming(const Error& error, const fs::path& file) {
    if (error.message.find(file.filename().string()) != std::string::npos) {
        return error;
    }
    return error.with_context(file.string());
}

}  // namespace

WatchedFolder::WatchedFolder(WatchedFolderOptions options) : options_(std::move(options)) {}

WatchedFolder::Clock::time_point WatchedFolder::now() const {
    return options_.clock ? options_.clock() : Clock::now();
}

bool WatchedFolder::matches(std::string_view name) const {
    if (options_.pattern.empty()) {
        return name.front() != '.' && detail::format_of(std::string(name)).has_value();
    }
    return ::fnmatch(options_.pattern.c_str(), std::string(name).c_str(), FNM_PERIOD) == 0;
}

Result<WatchedFolder> WatchedFolder::open(WatchedFolderOptions options) {
    if (options.directory.empty()) {
        return fail(ErrorCode::kInvalidArgument, "watched folder: no directory given");
    }
    const std::string dir = options.directory.string();
    if (options.settle_time.count() < 0 || options.open_retry_time.count() < 0 ||
        options.scan_interval.count() < 0) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: settle_time, open_retry_time and scan_interval must not be negative "
                    "(got {} ms, {} ms, {} ms)",
                    dir, options.settle_time.count(), options.open_retry_time.count(),
                    options.scan_interval.count());
    }
    if (options.max_frames_per_poll == 0) {
        return fail(ErrorCode::kInvalidArgument, "{}: max_frames_per_poll must be at least 1", dir);
    }
    if (options.existing == ExistingFiles::kTakeModifiedAfter &&
        options.existing_modified_after == fs::file_time_type{}) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: taking the files modified after a time needs that time "
                    "(existing_modified_after is not set)",
                    dir);
    }
    if (options.hdf5_dataset.empty()) {
        return fail(ErrorCode::kInvalidArgument, "{}: empty HDF5 dataset path", dir);
    }
    std::error_code ec;
    const auto status = fs::status(options.directory, ec);
    if (status.type() == fs::file_type::not_found) {
        return fail(ErrorCode::kNotFound, "{}: watched folder does not exist", dir);
    }
    if (ec) {
        return fail(ErrorCode::kIo, "{}: cannot read the watched folder: {}", dir, ec.message());
    }
    if (status.type() != fs::file_type::directory) {
        return fail(ErrorCode::kInvalidArgument, "{}: watched folder is not a directory", dir);
    }
    WatchedFolder folder(std::move(options));
    folder.shape_ = folder.options_.expected_shape;
    folder.pixel_type_ = folder.options_.expected_pixel_type;
    folder.started_ = folder.now();
    if (auto scanned = folder.scan(true); !scanned) {
        return tl::unexpected(scanned.error());
    }
    return folder;
}

Result<void> WatchedFolder::scan(bool at_start) {
    const Clock::time_point t = now();
    const std::string dir = options_.directory.string();
    std::error_code ec;
    fs::directory_iterator it(options_.directory, ec);
    if (ec) {
        if (ec == std::errc::no_such_file_or_directory) {
            return fail(ErrorCode::kNotFound, "{}: watched folder does not exist", dir);
        }
        return fail(ErrorCode::kIo, "{}: cannot list the watched folder: {}", dir, ec.message());
    }
    std::vector<std::string> present;
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        if (ec) {
            return fail(ErrorCode::kIo, "{}: cannot list the watched folder: {}", dir,
                        ec.message());
        }
        std::string name = it->path().filename().string();
        std::error_code type_ec;
        if (!matches(name) || !it->is_regular_file(type_ec)) {
            continue;
        }
        present.push_back(name);
        if (taken_.contains(name)) {
            continue;  // read, failed or skipped: never looked at again (no stat)
        }
        struct stat status {};
        if (::stat(it->path().c_str(), &status) != 0) {
            continue;  // gone since the listing; the next scan forgets it
        }
        const Stamp stamp{static_cast<std::uintmax_t>(status.st_size), mtime_ns_of(status),
                          static_cast<std::uint64_t>(status.st_ino)};
        if (at_start) {
            bool take = options_.existing == ExistingFiles::kTake;
            if (options_.existing == ExistingFiles::kTakeModifiedAfter) {
                const auto modified = fs::last_write_time(it->path(), type_ec);
                take = !type_ec && modified > options_.existing_modified_after;
            }
            if (take) {
                pending_.emplace(name, Pending{stamp, t, std::nullopt});
            } else {
                existing_.emplace(name, stamp);
                ++stats_.files_skipped_at_start;
            }
            continue;
        }
        if (const auto existing = existing_.find(name); existing != existing_.end()) {
            if (existing->second == stamp) {
                continue;
            }
            // Changed since the watch began: the detector is writing it now.
            existing_.erase(existing);
            --stats_.files_skipped_at_start;
            pending_.emplace(name, Pending{stamp, t, std::nullopt});
            continue;
        }
        auto [entry, inserted] = pending_.try_emplace(name, Pending{stamp, t, std::nullopt});
        if (!inserted && entry->second.stamp != stamp) {
            entry->second = Pending{stamp, t, std::nullopt};  // still being written: settle again
            ready_.erase(name);
        }
    }
    // Files there at start that did not change within one settle time were finished before the
    // watch began: skipped for good, and no longer stat()ed.
    if (!at_start && !existing_.empty() && t - started_ >= options_.settle_time) {
        for (auto& [name, stamp] : existing_) {
            taken_.insert(name);
        }
        existing_.clear();
    }
    // Forget names that left the folder, so memory follows the folder, not the run's history.
    std::sort(present.begin(), present.end());
    const auto gone = [&present](const std::string& name) {
        return !std::binary_search(present.begin(), present.end(), name);
    };
    std::erase_if(taken_, gone);
    std::erase_if(ready_, gone);
    std::erase_if(existing_, [&gone](const auto& item) { return gone(item.first); });
    std::erase_if(pending_, [&gone](const auto& item) { return gone(item.first); });
    for (const auto& [name, pending] : pending_) {
        if (t - pending.stable_since >= options_.settle_time) {
            ready_.insert(name);  // failing ones too: one more try per scan
        }
    }
    last_scan_ = t;
    return {};
}

bool WatchedFolder::open_next(std::vector<WatchedFrame>& out) {
    while (!ready_.empty()) {
        const std::string name = *ready_.begin();
        ready_.erase(ready_.begin());
        const auto pending = pending_.find(name);
        assert(pending != pending_.end() && "every ready name is pending");
        Pending& state = pending->second;
        const fs::path file = options_.directory / name;
        const Clock::time_point t = now();

        // open() then fstat(): on NFS the open revalidates the attributes a directory scan may
        // have read from the client's cache, so a file still growing on the server shows it.
        std::optional<Stamp> fresh;
        Result<std::unique_ptr<FrameSource>> source = fail(ErrorCode::kIo, "{}: not opened", name);
        const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            source = fail(ErrorCode::kIo, "{}: cannot open: {}", file.string(), errno_text(errno));
        } else {
            struct stat status {};
            if (::fstat(fd, &status) == 0) {
                fresh = Stamp{static_cast<std::uintmax_t>(status.st_size), mtime_ns_of(status),
                              static_cast<std::uint64_t>(status.st_ino)};
            }
            ::close(fd);
            if (fresh && *fresh != state.stamp) {
                state = Pending{*fresh, t, std::nullopt};  // changed after the scan: settle again
                continue;
            }
            source = open_file(file, options_.hdf5_dataset);
        }

        if (!source && source.error().message.find(kHdf5LockedMessage) != std::string::npos) {
            state.failing_since.reset();  // held by its writer: not a failure, however long
            ++stats_.open_retries;
            continue;
        }
        if (!source) {
            if (!state.failing_since) {
                state.failing_since = t;
            }
            const auto failing_for = t - *state.failing_since;
            if (failing_for < options_.open_retry_time) {
                ++stats_.open_retries;
                continue;  // retried at the next scan, unless the file changes first
            }
            Error error = naming(source.error(), file);
            if (failing_for > Clock::duration::zero()) {
                error.message +=
                    fmt::format(" (still unreadable after {} ms unchanged)", to_ms(failing_for));
            }
            out.push_back({file, 0, 0, tl::unexpected(std::move(error))});
            ++stats_.files_failed;
            taken_.insert(name);
            pending_.erase(pending);
            return true;
        }

        std::unique_ptr<FrameSource>& opened = *source;
        const auto origin = [this](bool configured) {
            return configured ? std::string(" (configured)")
                              : fmt::format(" of the first file ({})", reference_file_);
        };
        std::string problem;
        if (shape_ && opened->shape() != *shape_) {
            problem =
                fmt::format("frame shape {} differs from {}{}", format_shape(opened->shape()),
                            format_shape(*shape_), origin(options_.expected_shape.has_value()));
        } else if (pixel_type_ && opened->pixel_type() != *pixel_type_) {
            problem = fmt::format("pixel type {} differs from {}{}",
                                  to_string(opened->pixel_type()), to_string(*pixel_type_),
                                  origin(options_.expected_pixel_type.has_value()));
        }
        taken_.insert(name);
        pending_.erase(pending);
        if (!problem.empty()) {
            out.push_back({file, 0, opened->frame_count(),
                           fail(ErrorCode::kInvalidArgument, "{}: {}; file skipped",
                                opened->describe(), problem)});
            ++stats_.files_failed;
            return true;
        }
        if (!shape_) {
            shape_ = opened->shape();
        }
        if (!pixel_type_) {
            pixel_type_ = opened->pixel_type();
        }
        if (reference_file_.empty()) {
            reference_file_ = name;
        }
        current_ = Current{name, std::move(opened), 0};
        return true;
    }
    return false;
}

void WatchedFolder::read_next(std::vector<WatchedFrame>& out) {
    assert(current_ && "a file is open");
    Current& current = *current_;
    const fs::path file = options_.directory / current.name;
    const std::size_t count = current.source->frame_count();
    auto frame = current.source->read_frame(current.next_frame);
    if (!frame) {
        Error error = naming(frame.error(), file);
        if (current.next_frame + 1 < count) {
            error.message += fmt::format("; frames {} to {} of this file skipped",
                                         current.next_frame + 1, count - 1);
        }
        out.push_back({file, current.next_frame, count, tl::unexpected(std::move(error))});
        ++stats_.files_failed;
        current_.reset();
        return;
    }
    out.push_back({file, current.next_frame, count, std::move(frame)});
    ++stats_.frames_read;
    if (++current.next_frame == count) {
        ++stats_.files_read;
        current_.reset();  // closes the file before the next one is opened
    }
}

Result<std::vector<WatchedFrame>> WatchedFolder::poll() {
    const Clock::time_point t = now();
    if (!last_scan_ || t - *last_scan_ >= options_.scan_interval) {
        if (auto scanned = scan(false); !scanned) {
            return tl::unexpected(scanned.error());
        }
    }
    std::vector<WatchedFrame> out;
    while (out.size() < options_.max_frames_per_poll) {
        if (current_) {
            read_next(out);
        } else if (!open_next(out)) {
            break;
        }
    }
    return out;
}

WatchedFolderStats WatchedFolder::stats() const {
    WatchedFolderStats stats = stats_;
    stats.files_pending = pending_.size();
    return stats;
}

}  // namespace anisoflow::io
