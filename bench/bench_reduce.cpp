// bench_reduce: time to integrate one 2048x2048 uint16 frame into a 2000 x 72 cake plus I(Q),
// for each splitting kind on 1 and 2 threads, against a memcpy of the same bytes measured in the
// same run (these machines are noisy: ratios travel, absolute times do not).
//
//   bench_reduce [--frames N] [--threads T] [--split none|bbox]
//   (defaults: 60 frames, threads 1 and 2, both splitting kinds)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "anisoflow/geometry/detector_geometry.hpp"
#include "anisoflow/reduce/cake_integrator.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using anisoflow::Frame;
using anisoflow::FrameShape;
using anisoflow::geometry::DetectorGeometry;
using anisoflow::reduce::CakeIntegrator;
using anisoflow::reduce::PixelSplitting;

struct Stats {
    double median_ms;
    double min_ms;
    double max_ms;
};

Stats summarise(std::vector<double> ms) {
    std::sort(ms.begin(), ms.end());
    return {ms[ms.size() / 2], ms.front(), ms.back()};
}

// The geometry of shared/reference/integration/geometry.poni (a 2048x2048, 200 um detector at
// 0.34 m and 100 keV), written out so the benchmark needs no file.
anisoflow::geometry::PoniGeometry reference_geometry() {
    anisoflow::geometry::PoniGeometry poni;
    poni.poni_version = "2.1";
    poni.detector = {"Detector", 200e-6, 200e-6, FrameShape{2048, 2048}};
    poni.distance_m = 0.3412;
    poni.poni1_m = 0.2011;
    poni.poni2_m = 0.2093;
    poni.rot1_rad = 0.013962634015954637;
    poni.rot2_rad = -0.008726646259971648;
    poni.wavelength_m = 1.2359e-11;
    return poni;
}

// A diffraction-like frame: rings on a background, Poisson-like noise, a dark level of 100.
std::vector<std::uint16_t> synthetic_frame(const DetectorGeometry& geometry) {
    const FrameShape shape = geometry.shape();
    std::vector<std::uint16_t> frame(shape.pixel_count());
    std::mt19937 rng(42);
    std::normal_distribution<double> noise(0.0, 1.0);
    for (std::size_t r = 0; r < shape.rows; ++r) {
        for (std::size_t c = 0; c < shape.cols; ++c) {
            const double q = geometry.q_inv_angstrom(geometry.pixel_centre(r, c).two_theta_rad);
            const double mean = 300.0 + 2000.0 * std::exp(-std::pow((q - 2.6) / 0.15, 2)) +
                                600.0 * std::exp(-std::pow((q - 4.6) / 0.3, 2));
            const double value = 100.0 + mean + std::sqrt(mean) * noise(rng);
            frame[r * shape.cols + c] = static_cast<std::uint16_t>(std::clamp(value, 0.0, 65535.0));
        }
    }
    return frame;
}

}  // namespace

int run(int argc, char** argv) {
    std::size_t frames = 60;
    std::vector<unsigned> thread_counts = {1, 2};
    std::vector<PixelSplitting> splittings = {PixelSplitting::kNone, PixelSplitting::kBoundingBox};
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        if (flag == "--frames") {
            frames = std::max<std::size_t>(1, std::strtoul(argv[i + 1], nullptr, 10));
        } else if (flag == "--threads") {
            thread_counts = {
                static_cast<unsigned>(std::max(1UL, std::strtoul(argv[i + 1], nullptr, 10)))};
        } else if (flag == "--split") {
            auto parsed = anisoflow::reduce::parse_pixel_splitting(argv[i + 1]);
            if (!parsed) {
                std::fprintf(stderr, "%s\n", parsed.error().message.c_str());
                return 2;
            }
            splittings = {*parsed};
        } else {
            std::fprintf(stderr,
                         "usage: bench_reduce [--frames N] [--threads T] [--split none|bbox]\n");
            return 2;
        }
    }

    const DetectorGeometry geometry(reference_geometry());
    const auto pixels = synthetic_frame(geometry);
    const Frame frame = Frame::from_vector(geometry.shape(), pixels);
    const std::size_t frame_bytes = pixels.size() * sizeof(std::uint16_t);

    // memcpy of the same bytes, same run: the floor any pass over the frame pays.
    std::vector<std::uint16_t> copy(pixels.size());
    std::vector<double> memcpy_ms;
    for (std::size_t i = 0; i < std::max<std::size_t>(frames, 20); ++i) {
        const auto start = Clock::now();
        std::memcpy(copy.data(), pixels.data(), frame_bytes);
        memcpy_ms.push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - start).count());
        if (copy[i % copy.size()] != pixels[i % pixels.size()]) {
            return 1;  // keeps the copy observable
        }
    }
    const Stats memcpy_stats = summarise(memcpy_ms);

    std::printf(
        "bench_reduce: 2048x2048 uint16 frame (%.1f MB) -> 2000 x 72 cake + I(Q), "
        "dark subtracted, saturation check, polarization 0.99, solid angle; %zu frames per case\n",
        static_cast<double>(frame_bytes) / 1e6, frames);
    std::printf("memcpy of the frame: median %.3f ms (min %.3f, max %.3f)\n",
                memcpy_stats.median_ms, memcpy_stats.min_ms, memcpy_stats.max_ms);
    // The build in its two halves (docs/reduction.md, "Lookup and corrections"): the geometry
    // lookup, which services build once per geometry, and the per-run corrections pass.
    std::printf("%-6s %7s %10s %10s %9s %9s %9s %11s %12s %10s\n", "split", "threads", "lookup_s",
                "correct_s", "median_ms", "min_ms", "max_ms", "frames/s", "x memcpy", "lut B/px");

    anisoflow::reduce::DetectorCorrections corrections;
    corrections.dark_counts.assign(pixels.size(), 100.0F);
    corrections.polarization_factor = 0.99;
    corrections.saturation_counts = 65535.0;
    const anisoflow::reduce::CakeAxes axes{2000, 72, 0.5, 25.0};

    for (const PixelSplitting splitting : splittings) {
        for (const unsigned threads : thread_counts) {
            const auto lookup_start = Clock::now();
            auto lookup = anisoflow::reduce::CakeLookup::create(
                geometry, axes, splitting, anisoflow::reduce::geometric_factors(corrections),
                threads);
            const auto correct_start = Clock::now();
            if (!lookup) {
                std::fprintf(stderr, "%s\n", lookup.error().message.c_str());
                return 1;
            }
            auto integrator = CakeIntegrator::create(*lookup, threads, corrections);
            const double lookup_s =
                std::chrono::duration<double>(correct_start - lookup_start).count();
            const double correct_s =
                std::chrono::duration<double>(Clock::now() - correct_start).count();
            if (!integrator) {
                std::fprintf(stderr, "%s\n", integrator.error().message.c_str());
                return 1;
            }
            std::vector<double> ms;
            double checksum = 0.0;
            anisoflow::reduce::Cake cake;  // reused, as the streaming reducers do
            for (std::size_t i = 0; i < frames; ++i) {
                const auto start = Clock::now();
                auto done = integrator->integrate_into(frame.view(), cake);
                ms.push_back(
                    std::chrono::duration<double, std::milli>(Clock::now() - start).count());
                if (!done) {
                    std::fprintf(stderr, "%s\n", done.error().message.c_str());
                    return 1;
                }
                checksum += cake.intensity_1d[1000];
            }
            const Stats s = summarise(ms);
            std::printf("%-6s %7u %10.3f %10.3f %9.3f %9.3f %9.3f %11.1f %12.2f %10.2f\n",
                        std::string(to_string(splitting)).c_str(), threads, lookup_s, correct_s,
                        s.median_ms, s.min_ms, s.max_ms, 1000.0 / s.median_ms,
                        s.median_ms / memcpy_stats.median_ms,
                        static_cast<double>(integrator->lookup_size_bytes()) /
                            static_cast<double>(pixels.size()));
            if (!std::isfinite(checksum)) {
                return 1;
            }
        }
    }
    return 0;
}

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "bench_reduce: unexpected failure: %s\n", error.what());
    } catch (...) {
        std::fprintf(stderr, "bench_reduce: unexpected failure\n");
    }
    return 1;
}
