#pragma once
// Reading a pyFAI PONI file from disk; the parsing itself is geometry::parse_poni (SPEC 1).

#include <filesystem>

#include "anisoflow/core/result.hpp"
#include "anisoflow/geometry/poni.hpp"

namespace anisoflow::io {

/// Reads and parses a PONI file; every error message starts with the file's path.
Result<geometry::PoniParseOutput> read_poni_file(const std::filesystem::path& path);

}  // namespace anisoflow::io
