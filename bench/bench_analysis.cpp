// bench_analysis: a full recompute of the anisotropy analysis from accumulated P and N cakes
// (n_q 2000, n_r 2000: harmonics, normalisation, both transforms, the derivative variance, the
// affine fit with r_c and eps(r)), with each stage's share. Target: <= 20 ms median on one core.
//
//   bench_analysis [--repeats N]   (default 30)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "anisoflow/geometry/detector_geometry.hpp"
#include "anisoflow/physics/anisotropy_analysis.hpp"
#include "anisoflow/physics/transforms.hpp"
#include "anisoflow/reduce/cake_integrator.hpp"
#include "anisoflow/sim/frame_renderer.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace anisoflow;  // NOLINT(google-build-using-namespace): a benchmark's main

double median_ms(std::vector<double> samples) {
    std::sort(samples.begin(), samples.end());
    return samples[samples.size() / 2];
}

template <class Work>
double time_ms(std::size_t repeats, Work&& work) {
    std::vector<double> samples;
    for (std::size_t i = 0; i < repeats; ++i) {
        const auto start = Clock::now();
        work();
        samples.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
    return median_ms(std::move(samples));
}

int fail(const Error& error) {
    std::fprintf(stderr, "bench_analysis: %s\n", error.message.c_str());
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t repeats = 30;
    if (argc == 3 && std::string(argv[1]) == "--repeats") {
        repeats = std::max<std::size_t>(1, std::strtoul(argv[2], nullptr, 10));
    } else if (argc != 1) {
        std::fprintf(stderr, "usage: bench_analysis [--repeats N]\n");
        return 2;
    }
    // Cakes of a simulated affine glass on a 2048^2 detector at 0.35 m (as `anisoflow simulate`).
    geometry::PoniGeometry poni;
    poni.detector = geometry::DetectorModel{"Detector", 200e-6, 200e-6, FrameShape{2048, 2048}};
    poni.distance_m = 0.35;
    poni.poni1_m = 0.2048;
    poni.poni2_m = 0.2048;
    poni.wavelength_m = 0.123984e-10;
    const geometry::DetectorGeometry geometry(poni);
    const std::string composition = "Zr52.5Cu17.9Ni14.6Al10Ti5";
    auto factors = physics::ScatteringFactors::from_formula(composition);
    auto structure = sim::HardSphereStructure::create(sim::HardSphereParameters{});
    if (!factors || !structure) {
        return fail(!factors ? factors.error() : structure.error());
    }
    sim::AtomicTermsTable atomic;
    for (double q = 0.0; q <= 36.0; q += 0.01) {
        const auto a = factors->at(q);
        atomic.q_inv_angstrom.push_back(q);
        atomic.mean_f_squared.push_back(a.mean_f_squared);
        atomic.mean_squared_f.push_back(a.mean_squared_f);
        atomic.compton.push_back(a.compton);
    }
    auto renderer = sim::FrameRenderer::create(geometry, atomic);
    if (!renderer) {
        return fail(renderer.error());
    }
    reduce::DetectorCorrections corrections;
    corrections.dark_counts.assign(geometry.shape().pixel_count(), 100.0F);
    corrections.polarization_factor = 0.99;
    const reduce::CakeAxes axes{2000, 72, 0.5, 26.5};
    auto integrator = reduce::CakeIntegrator::create(
        geometry, {axes, reduce::PixelSplitting::kBoundingBox, 1}, corrections);
    if (!integrator) {
        return fail(integrator.error());
    }
    sim::RenderSettings settings;
    settings.counts_scale = 5.0;
    settings.strain = sim::UniaxialStrain{0.006, 0.37};
    std::vector<reduce::Cake> cakes;
    for (const auto orientation : {sim::Orientation::kP, sim::Orientation::kN}) {
        settings.orientation = orientation;
        settings.seed = cakes.size() + 1;
        auto frame = renderer->render(*structure, settings);
        auto cake = integrator->integrate(frame->view());
        if (!cake) {
            return fail(cake.error());
        }
        cakes.push_back(std::move(*cake));
    }

    physics::AnalysisSettings analysis;
    analysis.composition = composition;
    analysis.density_per_cubic_angstrom = 0.0553;
    analysis.nu = 0.37;
    analysis.wavelength_angstrom = 0.123984;
    analysis.r_max_angstrom = 25.0;
    analysis.n_r = 2000;
    auto analyzer = physics::AnisotropyAnalyzer::create(analysis);
    if (!analyzer) {
        return fail(analyzer.error());
    }
    auto first = analyzer->analyse(cakes[0], &cakes[1]);  // builds the transform plans once
    if (!first) {
        return fail(first.error());
    }
    const double total = time_ms(repeats, [&] { (void)analyzer->analyse(cakes[0], &cakes[1]); });

    // The stages on the same inputs, for their shares.
    physics::HarmonicsOptions harmonics_options{0.0, 0.123984, false};
    const double harmonics =
        time_ms(repeats, [&] { (void)physics::extract_pn(cakes[0], cakes[1], harmonics_options); });
    const double normalisation = time_ms(repeats, [&] {
        (void)physics::normalise_high_q(first->harmonics, *factors, 0.65 * axes.q_max_inv_angstrom);
    });
    const auto& s0 = first->structure.s0;
    auto grid = physics::uniform_q_grid_of(s0.q_inv_angstrom);
    auto transform = physics::FastTransform::create(*grid, physics::uniform_r_grid(25.0, 2000),
                                                    physics::TransformOptions{0.0553, false});
    if (!grid || !transform) {
        return fail(!grid ? grid.error() : transform.error());
    }
    const double transforms = time_ms(repeats, [&] {
        (void)transform->transform_l0(first->structure.s0);
        (void)transform->transform_l2(first->structure.s2);
    });
    const physics::TransformOptions transform_options{0.0553, false};
    const auto& s2 = first->structure.s2;
    auto noise =
        physics::TransformNoise::create(s0, s2, first->g0.r_angstrom, transform_options, 162);
    if (!noise) {
        return fail(noise.error());
    }
    // As the analyzer runs it: the chirp-z plans of the first call are kept for the next.
    const double noise_model = time_ms(repeats, [&] {
        (void)physics::TransformNoise::create(s0, s2, first->g0.r_angstrom, transform_options, 162,
                                              noise->sums());
    });
    physics::AffineFitOptions fit;
    fit.nu = 0.37;
    fit.transform_noise = std::make_shared<const physics::TransformNoise>(std::move(*noise));
    const double affine =
        time_ms(repeats, [&] { (void)physics::analyse_affine(first->g0, first->g2, fit); });

    std::printf(
        "bench_analysis: P+N cakes of 2000 Q x 72 chi -> n_r 2000, one core, median of %zu\n",
        repeats);
    std::printf("  full recompute          %8.2f ms   (target <= 20 ms)\n", total);
    std::printf("  harmonics (pn)          %8.2f ms   %5.1f %%\n", harmonics,
                100 * harmonics / total);
    std::printf("  normalisation           %8.2f ms   %5.1f %%\n", normalisation,
                100 * normalisation / total);
    std::printf("  transforms l=0 + l=2    %8.2f ms   %5.1f %%\n", transforms,
                100 * transforms / total);
    std::printf("  noise model (bands)     %8.2f ms   %5.1f %%\n", noise_model,
                100 * noise_model / total);
    std::printf("  affine fit, r_c, eps(r) %8.2f ms   %5.1f %%\n", affine, 100 * affine / total);
    std::printf(
        "  result (one low-count frame per orientation): alpha %.4g +- %.2g (true %.4g), r_c %s, "
        "%s\n",
        first->affine.alpha, first->affine.alpha_stderr,
        2.0 * 1.37 * 0.006 / (3.0 * std::sqrt(5.0)),
        first->affine.r_c_angstrom ? fmt::format("{:.2f} A", *first->affine.r_c_angstrom).c_str()
                                   : "none",
        std::string(physics::to_string(first->affine.mechanism)).c_str());
    return 0;
}
