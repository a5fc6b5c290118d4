// Cell lists in reduced coordinates: n_k = floor(w_k / cutoff) slabs along each edge, so a pair
// closer than the cutoff lies in the same or an adjacent cell (|ds_k| <= cutoff / w_k).

#include "anisoflow/atomistic/cell_list.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace anisoflow::atomistic {

Result<CellList> CellList::build(const Box& box, std::span<const Vec3> positions, double cutoff) {
    if (!(cutoff > 0.0) || !std::isfinite(cutoff)) {
        return fail(ErrorCode::kInvalidArgument, "cutoff {} is not a positive length", cutoff);
    }
    const Vec3 w = box.perpendicular_widths();
    const double w_min = std::min({w[0], w[1], w[2]});
    if (cutoff >= 0.5 * w_min) {
        return fail(ErrorCode::kInvalidArgument,
                    "cutoff {} is not below {}, half the smallest box width {} (minimum image "
                    "ambiguous); use a larger configuration or a smaller cutoff",
                    cutoff, 0.5 * w_min, w_min);
    }
    if (positions.size() >= std::numeric_limits<std::uint32_t>::max()) {
        return fail(ErrorCode::kInvalidArgument, "{} atoms: more than 2^32 - 1", positions.size());
    }
    CellList cl;
    cl.box_ = box;
    cl.cutoff_ = cutoff;
    cl.cutoff2_ = cutoff * cutoff;
    std::array<std::uint32_t, 3> n{};
    for (int k = 0; k < 3; ++k) {
        // At most ~2^10 cells per edge keeps n_cells within memory for sparse cutoffs.
        n[k] = static_cast<std::uint32_t>(std::clamp(std::floor(w[k] / cutoff), 1.0, 1024.0));
    }
    const std::size_t n_cells = static_cast<std::size_t>(n[0]) * n[1] * n[2];
    const std::size_t n_atoms = positions.size();
    cl.reduced_.resize(n_atoms);
    cl.cell_of_.resize(n_atoms);
    std::vector<std::uint32_t> count(n_cells + 1, 0);
    for (std::size_t i = 0; i < n_atoms; ++i) {
        Vec3 s = box.to_reduced(positions[i]);
        std::array<std::uint32_t, 3> c{};
        for (int k = 0; k < 3; ++k) {
            s[k] -= std::floor(s[k]);
            if (s[k] >= 1.0) {  // -tiny - floor(-tiny) rounds to 1
                s[k] = 0.0;
            }
            c[k] = std::min(static_cast<std::uint32_t>(s[k] * n[k]), n[k] - 1);
        }
        cl.reduced_[i] = s;
        cl.cell_of_[i] = (c[2] * n[1] + c[1]) * n[0] + c[0];
        ++count[cl.cell_of_[i] + 1];
    }
    for (std::size_t c = 0; c < n_cells; ++c) {
        count[c + 1] += count[c];
    }
    cl.cell_start_ = count;
    cl.sorted_.resize(n_atoms);
    for (std::size_t i = 0; i < n_atoms; ++i) {
        cl.sorted_[count[cl.cell_of_[i]]++] = static_cast<std::uint32_t>(i);
    }
    // The distinct cells around each cell (fewer than 27 when an edge has fewer than 3 cells).
    cl.neighbour_offset_.assign(n_cells + 1, 0);
    cl.neighbour_cells_.reserve(n_cells * 27);
    std::vector<std::uint32_t> around;
    for (std::uint32_t cz = 0; cz < n[2]; ++cz) {
        for (std::uint32_t cy = 0; cy < n[1]; ++cy) {
            for (std::uint32_t cx = 0; cx < n[0]; ++cx) {
                around.clear();
                for (int dz = -1; dz <= 1; ++dz) {
                    for (int dy = -1; dy <= 1; ++dy) {
                        for (int dx = -1; dx <= 1; ++dx) {
                            const auto wrap = [](std::uint32_t c, int d, std::uint32_t m) {
                                return static_cast<std::uint32_t>(
                                    (static_cast<int>(c) + d + static_cast<int>(m)) %
                                    static_cast<int>(m));
                            };
                            around.push_back((wrap(cz, dz, n[2]) * n[1] + wrap(cy, dy, n[1])) *
                                                 n[0] +
                                             wrap(cx, dx, n[0]));
                        }
                    }
                }
                std::sort(around.begin(), around.end());
                around.erase(std::unique(around.begin(), around.end()), around.end());
                const std::uint32_t self = (cz * n[1] + cy) * n[0] + cx;
                cl.neighbour_cells_.insert(cl.neighbour_cells_.end(), around.begin(), around.end());
                cl.neighbour_offset_[self + 1] =
                    static_cast<std::uint32_t>(cl.neighbour_cells_.size());
            }
        }
    }
    return cl;
}

}  // namespace anisoflow::atomistic
