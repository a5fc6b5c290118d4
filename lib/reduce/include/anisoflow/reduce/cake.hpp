#pragma once
// The result of 2D integration (SPEC 2): corrected intensity in (Q, chi) cells with Poisson
// variance and pixel counts, plus its azimuthal average I(Q).

#include <cmath>
#include <cstddef>
#include <vector>

namespace anisoflow::reduce {

/// Bin layout of a cake: n_q bins on [q_min, q_max] (1/A), n_chi bins on [-180, 180) deg.
struct CakeAxes {
    std::size_t n_q = 1000;
    std::size_t n_chi = 72;
    double q_min_inv_angstrom = 0.0;
    double q_max_inv_angstrom = 0.0;

    [[nodiscard]] std::size_t cell_count() const { return n_q * n_chi; }
    [[nodiscard]] double q_step() const {
        return (q_max_inv_angstrom - q_min_inv_angstrom) / static_cast<double>(n_q);
    }
    [[nodiscard]] double chi_step_deg() const { return 360.0 / static_cast<double>(n_chi); }
    [[nodiscard]] double q_centre(std::size_t iq) const {
        return q_min_inv_angstrom + (static_cast<double>(iq) + 0.5) * q_step();
    }
    [[nodiscard]] double chi_centre_deg(std::size_t ichi) const {
        return -180.0 + (static_cast<double>(ichi) + 0.5) * chi_step_deg();
    }
};

/// Row-major [n_chi][n_q] arrays (pyFAI's integrate2d layout). Empty cells (no pixel
/// contributed) have count 0 and NaN intensity and variance: flagged, never silently zero.
struct Cake {
    CakeAxes axes;
    std::vector<double> q_inv_angstrom;  ///< bin centres, n_q
    std::vector<double> chi_deg;         ///< bin centres, n_chi
    std::vector<double> intensity;       ///< [n_chi * n_q]
    std::vector<double> variance;        ///< [n_chi * n_q], of intensity
    std::vector<double> count;           ///< [n_chi * n_q], pixels (fractional when split)

    // Azimuthal average over all chi (the ratio of sums over the whole ring, as integrate1d).
    std::vector<double> intensity_1d;  ///< n_q
    std::vector<double> variance_1d;   ///< n_q
    std::vector<double> count_1d;      ///< n_q

    std::size_t frame_count = 0;  ///< frames averaged into this cake

    [[nodiscard]] std::size_t cell(std::size_t ichi, std::size_t iq) const {
        return ichi * axes.n_q + iq;
    }
    [[nodiscard]] bool is_empty(std::size_t ichi, std::size_t iq) const {
        return count[cell(ichi, iq)] <= 0.0;
    }
};

/// The P - N anisotropy of two cakes on one grid, cell by cell: (a - b) / ((a + b) / 2),
/// dimensionless (the seed paper's Fig. 1c shows it for P and N). NaN where either cell is empty
/// or their mean is not positive. Empty when the grids differ.
[[nodiscard]] inline std::vector<double> relative_difference(const Cake& a, const Cake& b) {
    if (a.intensity.size() != b.intensity.size() || a.count.size() != a.intensity.size() ||
        b.count.size() != b.intensity.size()) {
        return {};
    }
    std::vector<double> out(a.intensity.size(), std::nan(""));
    for (std::size_t i = 0; i < out.size(); ++i) {
        const double mean = 0.5 * (a.intensity[i] + b.intensity[i]);
        if (a.count[i] > 0.0 && b.count[i] > 0.0 && mean > 0.0) {
            out[i] = (a.intensity[i] - b.intensity[i]) / mean;
        }
    }
    return out;
}

}  // namespace anisoflow::reduce
