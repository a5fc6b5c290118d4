// Kept in its own translation unit: only programs that read PONI files link geometry's parser.

#include "anisoflow/io/poni_file.hpp"

#include <cerrno>
#include <fstream>
#include <sstream>
#include <system_error>

namespace anisoflow::io {

Result<geometry::PoniParseOutput> read_poni_file(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        return fail(ErrorCode::kNotFound, "{}: file not found", path.string());
    }
    if (std::filesystem::is_directory(path, ec)) {
        return fail(ErrorCode::kInvalidArgument, "{}: is a directory, not a PONI file",
                    path.string());
    }
    std::ifstream stream(path);
    if (!stream) {
        return fail(ErrorCode::kIo, "{}: cannot open: {}", path.string(),
                    std::generic_category().message(errno));
    }
    std::ostringstream text;
    text << stream.rdbuf();
    if (stream.bad()) {
        return fail(ErrorCode::kIo, "{}: read error", path.string());
    }
    auto parsed = geometry::parse_poni(text.str());
    if (!parsed) {
        return tl::unexpected(parsed.error().with_context(path.string()));
    }
    return parsed;
}

}  // namespace anisoflow::io
