#pragma once
// Periodic cell lists: O(N) search of all neighbours within a cutoff, in orthogonal and triclinic
// boxes (cells are slabs of reduced coordinates at least one cutoff wide between faces).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "anisoflow/atomistic/box.hpp"
#include "anisoflow/core/result.hpp"

namespace anisoflow::atomistic {

class CellList {
  public:
    /// Bins the atoms. Errors: cutoff not positive, or at least half the smallest perpendicular
    /// width of the box (the minimum image would then be ambiguous).
    static Result<CellList> build(const Box& box, std::span<const Vec3> positions, double cutoff);

    [[nodiscard]] double cutoff() const { return cutoff_; }
    [[nodiscard]] std::size_t size() const { return reduced_.size(); }
    [[nodiscard]] const Box& box() const { return box_; }

    /// Calls f(j, d, r2) for every atom j != i closer than the cutoff to atom i, d = x_j - x_i
    /// (minimum image), r2 = |d|^2. Order: by cell, then by index inside the cell.
    template <class F>
    void for_each_neighbour(std::size_t i, F&& f) const {
        const Vec3& si = reduced_[i];
        const std::uint32_t ci = cell_of_[i];
        for (std::size_t k = neighbour_offset_[ci]; k < neighbour_offset_[ci + 1]; ++k) {
            const std::uint32_t c = neighbour_cells_[k];
            for (std::uint32_t m = cell_start_[c]; m < cell_start_[c + 1]; ++m) {
                const std::uint32_t j = sorted_[m];
                if (j == i) {
                    continue;
                }
                Vec3 ds{reduced_[j][0] - si[0], reduced_[j][1] - si[1], reduced_[j][2] - si[2]};
                for (double& v : ds) {
                    v -= std::round(v);
                }
                const Vec3 d = box_.cartesian_separation(ds);
                const double r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
                if (r2 < cutoff2_) {
                    f(static_cast<std::size_t>(j), d, r2);
                }
            }
        }
    }

  private:
    Box box_;
    double cutoff_ = 0.0;
    double cutoff2_ = 0.0;
    std::vector<Vec3> reduced_;                    // per atom, wrapped into [0, 1)
    std::vector<std::uint32_t> cell_of_;           // per atom
    std::vector<std::uint32_t> sorted_;            // atom indices ordered by cell
    std::vector<std::uint32_t> cell_start_;        // CSR offsets into sorted_, n_cells + 1
    std::vector<std::uint32_t> neighbour_offset_;  // CSR offsets into neighbour_cells_
    std::vector<std::uint32_t> neighbour_cells_;   // the distinct cells around each cell
};

}  // namespace anisoflow::atomistic
