#pragma once
// Shared by the text writers (I(Q) columns, .gr files): header lines as '# ' comments.

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace anisoflow::io::detail {

/// Writes each line as "# line"; an embedded newline starts another comment line.
inline void write_comment_lines(std::ostream& out, const std::vector<std::string>& lines) {
    for (const auto& line : lines) {
        std::string_view rest = line;
        while (true) {
            const auto end = rest.find('\n');
            out << "# " << rest.substr(0, end) << '\n';
            if (end == std::string_view::npos) {
                break;
            }
            rest.remove_prefix(end + 1);
        }
    }
}

}  // namespace anisoflow::io::detail
