#pragma once
// Sampled curves with their variances: what flows between the physics stages (SPEC 5-7).

#include <cstddef>
#include <vector>

namespace anisoflow::physics {

/// A function of Q (1/A) sampled on an ascending grid, with the variance of each sample
/// (NaN where unknown). All three vectors have the same length.
struct QCurve {
    std::vector<double> q_inv_angstrom;
    std::vector<double> value;
    std::vector<double> variance;
    [[nodiscard]] std::size_t size() const { return q_inv_angstrom.size(); }
};

/// A function of r (A) sampled on an ascending grid, with the variance of each sample.
struct RCurve {
    std::vector<double> r_angstrom;
    std::vector<double> value;
    std::vector<double> variance;
    [[nodiscard]] std::size_t size() const { return r_angstrom.size(); }
};

}  // namespace anisoflow::physics
