#include "open_run_store.hpp"

#include <fstream>
#include <iterator>
#include <system_error>
#include <utility>

namespace anisoflow::ingest {

Result<OpenRunStore> OpenRunStore::open(const std::filesystem::path& directory) {
    std::error_code ec;
    std::filesystem::create_directories(directory, ec);
    if (ec) {
        return fail(ErrorCode::kIo, "state_dir {}: cannot create it: {}", directory.string(),
                    ec.message());
    }
    if (!std::filesystem::is_directory(directory, ec)) {
        return fail(ErrorCode::kInvalidArgument, "state_dir {}: not a directory",
                    directory.string());
    }
    return OpenRunStore(directory / kFileName);
}

Result<std::optional<state::v1::IngestOpenRun>> OpenRunStore::load() const {
    std::error_code ec;
    if (!std::filesystem::exists(path_, ec)) {
        return std::optional<state::v1::IngestOpenRun>();
    }
    std::ifstream in(path_, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    state::v1::IngestOpenRun run;
    if (in.bad() || !run.ParseFromString(bytes) || run.start().run_id().empty()) {
        // Moved aside, not deleted: an operator can still see what run it was.
        std::filesystem::path aside = path_;
        aside += ".unreadable";
        std::filesystem::rename(path_, aside, ec);
        return fail(ErrorCode::kCorrupt,
                    "{}: not a run ingest left open ({} bytes); moved to {}{}: no run is resumed",
                    path_.string(), bytes.size(), aside.string(),
                    ec ? " failed: " + ec.message() : std::string());
    }
    return std::optional<state::v1::IngestOpenRun>(std::move(run));
}

Result<void> OpenRunStore::save(const state::v1::IngestOpenRun& run) const {
    std::filesystem::path partial = path_;
    partial += ".partial";
    {
        std::ofstream out(partial, std::ios::binary | std::ios::trunc);
        if (!out || !run.SerializeToOstream(&out) || !out.flush()) {
            return fail(ErrorCode::kIo, "{}: cannot write the open run", partial.string());
        }
    }
    std::error_code ec;
    std::filesystem::rename(partial, path_, ec);
    if (ec) {
        return fail(ErrorCode::kIo, "{}: cannot replace it: {}", path_.string(), ec.message());
    }
    return {};
}

Result<void> OpenRunStore::clear(const std::string& run_id) const {
    auto saved = load();
    if (!saved) {
        return tl::unexpected(saved.error());
    }
    if (!*saved || (*saved)->start().run_id() != run_id) {
        return {};
    }
    std::error_code ec;
    std::filesystem::remove(path_, ec);
    if (ec) {
        return fail(ErrorCode::kIo, "{}: cannot remove it: {}", path_.string(), ec.message());
    }
    return {};
}

}  // namespace anisoflow::ingest
