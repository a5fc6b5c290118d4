// bench_md: D2_min and per-atom g2 of a 40,000-atom configuration on one core (issue 7 target:
// under 2 s for both), and the peak memory of a run (issue 7: 1,000,000 atoms within 2 GB).
// The configuration is a simple-cubic lattice with a Gaussian jitter at the number density of
// a dense liquid of unit spheres (0.63); the deformed one is affine plus a random displacement.
//
//   bench_md [--atoms N] [--repeats R]   (defaults 40000, 3)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <sys/resource.h>

#include "anisoflow/atomistic/d2min.hpp"
#include "anisoflow/atomistic/pair_distribution.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace anisoflow;  // NOLINT(google-build-using-namespace): a benchmark's main

constexpr double kNumberDensity = 0.63;  // unit spheres at packing fraction 0.33
constexpr double kCutoff = 1.5;          // the first minimum of g(r) of such a liquid
constexpr double kG2RMax = 5.0;          // per-atom g2 over the first shells
constexpr double kG2Bin = 0.05;

template <class Work>
double median_ms(std::size_t repeats, Work&& work) {
    std::vector<double> samples;
    for (std::size_t i = 0; i < repeats; ++i) {
        const auto start = Clock::now();
        work();
        samples.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
    std::sort(samples.begin(), samples.end());
    return samples[samples.size() / 2];
}

double peak_rss_mb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;  // kB on Linux
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t atoms = 40000;
    std::size_t repeats = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        const auto value = std::strtoul(argv[i + 1], nullptr, 10);
        if (flag == "--atoms") {
            atoms = std::max<std::size_t>(1000, value);
        } else if (flag == "--repeats") {
            repeats = std::max<std::size_t>(1, value);
        } else {
            std::fprintf(stderr, "usage: bench_md [--atoms N] [--repeats R]\n");
            return 2;
        }
    }
    const auto side = static_cast<std::size_t>(std::ceil(std::cbrt(static_cast<double>(atoms))));
    atoms = side * side * side;
    const double spacing = std::cbrt(1.0 / kNumberDensity);
    const double length = spacing * static_cast<double>(side);
    auto box = atomistic::Box::create({0.0, 0.0, 0.0}, {length, length, length});
    if (!box) {
        std::fprintf(stderr, "bench_md: %s\n", box.error().message.c_str());
        return 1;
    }
    std::mt19937_64 rng(7);
    std::normal_distribution<double> jitter(0.0, 0.15 * spacing);
    std::normal_distribution<double> noise(0.0, 0.02);
    std::vector<atomistic::Vec3> reference(atoms);
    std::vector<atomistic::Vec3> deformed(atoms);
    const atomistic::Mat3 f{1.0037, 0.0, 0.0, 0.0, 1.0037, 0.0, 0.0, 0.0, 0.99};
    for (std::size_t i = 0; i < atoms; ++i) {
        const std::size_t ix = i % side;
        const std::size_t iy = (i / side) % side;
        const std::size_t iz = i / (side * side);
        for (std::size_t k = 0; k < 3; ++k) {
            const std::size_t c = k == 0 ? ix : (k == 1 ? iy : iz);
            reference[i][k] = (static_cast<double>(c) + 0.5) * spacing + jitter(rng);
        }
        for (std::size_t k = 0; k < 3; ++k) {
            deformed[i][k] = f[4 * k] * reference[i][k] + noise(rng);
        }
    }
    const atomistic::Box deformed_box = box->deformed(f);
    std::printf(
        "bench_md: %zu atoms, box %.1f, D2_min cutoff %.2f, per-atom g2 to r = %.1f in "
        "%.2f bins, one core, median of %zu\n",
        atoms, length, kCutoff, kG2RMax, kG2Bin, repeats);

    double sum = 0.0;
    const double d2_ms = median_ms(repeats, [&] {
        auto r = atomistic::compute_d2min(*box, reference, deformed_box, deformed, {kCutoff});
        if (!r) {
            std::fprintf(stderr, "bench_md: %s\n", r.error().message.c_str());
            std::exit(1);  // NOLINT(concurrency-mt-unsafe): single-threaded benchmark
        }
        sum += r->d2min[0];
    });
    std::printf("  D2_min + local affine J:   %9.1f ms  (%.2f us/atom)\n", d2_ms,
                1e3 * d2_ms / static_cast<double>(atoms));

    atomistic::PairDistributionOptions options;
    options.r_max = kG2RMax;
    options.bin_width = kG2Bin;
    const double g2_ms = median_ms(repeats, [&] {
        auto r = atomistic::per_atom_g2(deformed_box, deformed, options);
        if (!r) {
            std::fprintf(stderr, "bench_md: %s\n", r.error().message.c_str());
            std::exit(1);  // NOLINT(concurrency-mt-unsafe): single-threaded benchmark
        }
        sum += r->g2[0];
    });
    std::printf("  per-atom g2 (%zu x %zu floats): %9.1f ms  (%.2f us/atom)\n", atoms,
                static_cast<std::size_t>(kG2RMax / kG2Bin), g2_ms,
                1e3 * g2_ms / static_cast<double>(atoms));
    std::printf("  D2_min + per-atom g2:      %9.1f ms\n", d2_ms + g2_ms);
    std::printf("  peak resident memory:      %9.1f MB  (checksum %g)\n", peak_rss_mb(), sum);
    return 0;
}
