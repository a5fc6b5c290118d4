#include "packing.hpp"

#include <cassert>
#include <cmath>
#include <numbers>
#include <random>

namespace anisoflow::atomistic::testing {

Packing random_packing(std::size_t n_atoms, double phi, double jitter, std::uint64_t seed) {
    const double rho = phi / (std::numbers::pi / 6.0);
    const double length = std::cbrt(static_cast<double>(n_atoms) / rho);
    auto box = Box::create({0.0, 0.0, 0.0}, {length, length, length});
    assert(box && "a positive length");
    Packing p{*box, {}};
    // Cells of width >= 1 (one diameter): overlaps can only be with the 27 cells around.
    const auto n = static_cast<std::size_t>(std::floor(length));
    const double cell = length / static_cast<double>(n);
    std::vector<std::vector<std::size_t>> cells(n * n * n);
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> uniform(0.0, length);
    p.position.reserve(n_atoms);
    const auto index = [&](long cx, long cy, long cz) {
        const auto m = static_cast<long>(n);
        return static_cast<std::size_t>((((cz % m) + m) % m * m + ((cy % m) + m) % m) * m +
                                        ((cx % m) + m) % m);
    };
    while (p.position.size() < n_atoms) {
        const Vec3 x{uniform(rng), uniform(rng), uniform(rng)};
        const long cx = static_cast<long>(x[0] / cell);
        const long cy = static_cast<long>(x[1] / cell);
        const long cz = static_cast<long>(x[2] / cell);
        bool overlaps = false;
        for (long dz = -1; dz <= 1 && !overlaps; ++dz) {
            for (long dy = -1; dy <= 1 && !overlaps; ++dy) {
                for (long dx = -1; dx <= 1 && !overlaps; ++dx) {
                    for (const std::size_t j : cells[index(cx + dx, cy + dy, cz + dz)]) {
                        const Vec3 d =
                            p.box.minimum_image({p.position[j][0] - x[0], p.position[j][1] - x[1],
                                                 p.position[j][2] - x[2]});
                        if (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] < 1.0) {
                            overlaps = true;
                            break;
                        }
                    }
                }
            }
        }
        if (!overlaps) {
            cells[index(cx, cy, cz)].push_back(p.position.size());
            p.position.push_back(x);
        }
    }
    std::normal_distribution<double> gauss(0.0, jitter);
    for (Vec3& x : p.position) {
        for (double& v : x) {
            v += gauss(rng);
        }
    }
    return p;
}

std::vector<Vec3> deform(const Box& box, const std::vector<Vec3>& position, const Mat3& f) {
    std::vector<Vec3> out(position.size());
    const Vec3& o = box.origin();
    for (std::size_t i = 0; i < position.size(); ++i) {
        const Vec3 d{position[i][0] - o[0], position[i][1] - o[1], position[i][2] - o[2]};
        for (std::size_t r = 0; r < 3; ++r) {
            out[i][r] = o[r] + f[3 * r] * d[0] + f[3 * r + 1] * d[1] + f[3 * r + 2] * d[2];
        }
    }
    return out;
}

const Packing& shared_packing() {
    // 20,000 atoms (issue 7) at phi = 0.33: a first peak at contact and a first minimum near
    // 1.5 diameters; jitter 0.05 diameters keeps dg0/dr finite.
    static const Packing packing = random_packing(20000, 0.33, 0.05, 20261124);
    return packing;
}

}  // namespace anisoflow::atomistic::testing
