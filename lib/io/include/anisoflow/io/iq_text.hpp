#pragma once
// pyFAI-style text output of I(q): "# " header lines, then q, I and sigma columns.

#include <filesystem>
#include <string>
#include <vector>

#include "anisoflow/core/result.hpp"
#include "anisoflow/reduce/cake.hpp"

namespace anisoflow::io {

/// Writes `# <line>` for each header line, then `#  q_A^-1  I  sigma`, then one row per non-empty
/// q bin (count_1d > 0) with `%14.6e` numbers; sigma = sqrt(variance_1d). Without variance_1d
/// the file has two columns.
Result<void> write_iq_text(const std::filesystem::path& path, const reduce::Cake& cake,
                           const std::vector<std::string>& header_lines);

}  // namespace anisoflow::io
