#include "anisoflow/io/iq_text.hpp"

#include <cerrno>
#include <cmath>
#include <fstream>
#include <string_view>
#include <system_error>

#include <fmt/format.h>

#include "text_output.hpp"

namespace anisoflow::io {

Result<void> write_iq_text(const std::filesystem::path& path, const reduce::Cake& cake,
                           const std::vector<std::string>& header_lines) {
    const std::size_t n_q = cake.axes.n_q;
    if (cake.q_inv_angstrom.size() != n_q || cake.intensity_1d.size() != n_q ||
        cake.count_1d.size() != n_q) {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: cake has {} q bins but {} q values, {} intensities and {} counts",
                    path.string(), n_q, cake.q_inv_angstrom.size(), cake.intensity_1d.size(),
                    cake.count_1d.size());
    }
    const bool with_sigma = !cake.variance_1d.empty();
    if (with_sigma && cake.variance_1d.size() != n_q) {
        return fail(ErrorCode::kInvalidArgument, "{}: cake has {} q bins but {} variances",
                    path.string(), n_q, cake.variance_1d.size());
    }

    std::ofstream out(path);
    if (!out) {
        return fail(ErrorCode::kIo, "{}: cannot create: {}", path.string(),
                    std::generic_category().message(errno));
    }
    detail::write_comment_lines(out, header_lines);
    out << (with_sigma ? "#  q_A^-1  I  sigma\n" : "#  q_A^-1  I\n");
    for (std::size_t iq = 0; iq < n_q; ++iq) {
        if (!(cake.count_1d[iq] > 0.0)) {
            continue;  // empty bin: no pixel contributed
        }
        if (with_sigma) {
            out << fmt::format("{:14.6e} {:14.6e} {:14.6e}\n", cake.q_inv_angstrom[iq],
                               cake.intensity_1d[iq], std::sqrt(cake.variance_1d[iq]));
        } else {
            out << fmt::format("{:14.6e} {:14.6e}\n", cake.q_inv_angstrom[iq],
                               cake.intensity_1d[iq]);
        }
    }
    out.close();
    if (!out) {
        return fail(ErrorCode::kIo, "{}: write failed (disk full?): {}", path.string(),
                    std::generic_category().message(errno));
    }
    return {};
}

}  // namespace anisoflow::io
