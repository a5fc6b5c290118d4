#include "analyze_command.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "anisoflow/geometry/detector_geometry.hpp"
#include "anisoflow/io/analysis_file.hpp"
#include "anisoflow/io/frame_source.hpp"
#include "anisoflow/io/poni_file.hpp"
#include "anisoflow/physics/anisotropy_analysis.hpp"
#include "anisoflow/reduce/cake_integrator.hpp"

#include "command_support.hpp"

namespace anisoflow::app {

namespace {

constexpr double kMetresPerAngstrom = 1e-10;

int report(const Error& error) {
    std::fprintf(stderr, "anisoflow analyze: %s\n", error.message.c_str());
    return 1;
}

// The frames of one orientation, opened and checked against the detector.
Result<std::unique_ptr<io::FrameSource>> open_orientation(const std::vector<std::string>& specs,
                                                          const char* orientation,
                                                          FrameShape detector) {
    auto source = io::open_frame_sources(specs);
    if (!source) {
        return tl::unexpected(source.error().with_context(std::string("--") + orientation));
    }
    if (auto shape = io::check_shape(**source, detector); !shape) {
        return tl::unexpected(shape.error().with_context(std::string("--") + orientation));
    }
    return source;
}

// Mean cake of every frame of one orientation.
Result<reduce::Cake> integrate_orientation(io::FrameSource& source, const char* orientation,
                                           const reduce::CakeIntegrator& integrator,
                                           std::size_t& frame_count) {
    frame_count = source.frame_count();
    if (frame_count == 0) {
        return fail(ErrorCode::kNotFound, "--{} {}: no frames", orientation, source.describe());
    }
    reduce::CakeAccumulator sums;
    Progress progress(std::string("reading ") + orientation + " frames", frame_count);
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < frame_count; ++i) {
        auto frame = source.read_frame(i);
        if (!frame) {
            return tl::unexpected(frame.error());
        }
        if (auto added = integrator.accumulate(frame->view(), sums); !added) {
            return tl::unexpected(added.error().with_context(source.describe()));
        }
        const double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count();
        progress.update(i + 1, ms / static_cast<double>(i + 1));
    }
    return sums.finish();
}

std::vector<std::string> pdf_header(const AnalyzeOptions& o, const char* what) {
    return {std::string("anisoflow ") + ANISOFLOW_VERSION + " analyze: " + what,
            "composition: " + o.composition,
            "rho0: " + std::to_string(o.density_per_cubic_angstrom) + " atoms/A^3",
            "mode: " + o.mode + ", Lorch: " + (o.lorch ? "yes" : "no"),
            "normalisation: paper, S(Q,psi) = S0 + sqrt5 S2 P2(cos psi) (SPEC 4)"};
}

}  // namespace

CLI::App* add_analyze_command(CLI::App& app, AnalyzeOptions& o) {
    CLI::App* cmd = app.add_subcommand(
        "analyze", "Structural anisotropy from P and N frame sets (S0/S2, g0/g2, alpha, r_c)");
    cmd->add_option("--config", o.config_path,
                    "TOML file giving any of these options by name (flags override it)");
    cmd->add_option("--poni", o.poni_path, "pyFAI PONI calibration")->required();
    cmd->add_option("--p", o.p_frames,
                    "frames of orientation P (loading axis at --loading-axis-chi)")
        ->required();
    cmd->add_option("--n", o.n_frames, "frames of orientation N (sample turned 90 deg)");
    cmd->add_option("--dark", o.darks, "dark frames, averaged");
    cmd->add_option("--flat", o.flats, "flat field, averaged");
    cmd->add_option("--mask", o.mask, "mask (HDF5 file.h5[::/path] or TIFF), non-zero = masked");
    cmd->add_option("--composition", o.composition, "formula, e.g. Zr52.5Cu17.9Ni14.6Al10Ti5")
        ->required();
    cmd->add_option("--density", o.density_per_cubic_angstrom, "number density rho0, atoms/A^3")
        ->required();
    cmd->add_option("--nu", o.nu, "Poisson ratio")->required();
    cmd->add_option("--loading-axis-chi", o.loading_axis_chi_deg,
                    "pyFAI chi of the loading axis in orientation P, deg")
        ->required();
    cmd->add_option("--mode", o.mode, "pn (P minus N) or single (P alone)")
        ->capture_default_str()
        ->check(CLI::IsMember({"pn", "single"}));
    cmd->add_option("--q-min", o.q_min_inv_angstrom, "lowest Q, 1/A (default 0.5)");
    cmd->add_option("--q-max", o.q_max_inv_angstrom,
                    "highest Q, 1/A (default: the largest full ring on the detector)");
    cmd->add_option("--q-norm-min", o.q_norm_min_inv_angstrom,
                    "start of the high-Q normalisation range (default 0.65 q-max)");
    cmd->add_option("--normalisation", o.normalisation,
                    "high-Q (SPEC 5) or adhoc (PDFgetX3-style polynomial on F(Q))")
        ->capture_default_str();
    cmd->add_option("--r-poly", o.r_poly_angstrom,
                    "adhoc: the background polynomial carries no feature above this r, A")
        ->capture_default_str();
    cmd->add_option("--n-q", o.n_q, "Q bins")->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("--n-chi", o.n_chi, "chi bins")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->add_option("--r-max", o.r_max_angstrom, "largest r, A")->capture_default_str();
    cmd->add_option("--n-r", o.n_r, "r points")->capture_default_str();
    cmd->add_option("--r-fit-min", o.r_fit_min_angstrom, "affine fit range start, A")
        ->capture_default_str();
    cmd->add_option("--r-fit-max", o.r_fit_max_angstrom, "affine fit range end, A")
        ->capture_default_str();
    cmd->add_option("--polarization", o.polarization_factor, "polarization factor")
        ->capture_default_str();
    cmd->add_flag("--keep-negative", o.keep_negative,
                  "keep pixels below the dark (by default excluded in that frame)");
    add_noise_model_options(*cmd, o.noise);
    cmd->add_flag("--lorch", o.lorch, "apply the Lorch window in the transforms");
    cmd->add_option("--split", o.split,
                    "pixel splitting: none (default: independent Q bins, as the error propagation "
                    "assumes) or bbox")
        ->capture_default_str()
        ->check(CLI::IsMember({"none", "bbox"}));
    cmd->add_option("--threads", o.threads, "threads per frame (default: all cores)");
    cmd->add_option("--out", o.out_path, "NeXus result file (RESULT.h5)")->required();
    cmd->add_option("--json", o.json_path, "summary (SUMMARY.json)")->required();
    return cmd;
}

int run_analyze(const AnalyzeOptions& o) {
    for (const auto& [path, option] : {std::pair{o.out_path, "--out"}, {o.json_path, "--json"}}) {
        if (auto ok = check_output_path(path, option); !ok) {
            return report(ok.error());
        }
    }
    auto mode = physics::parse_extraction_mode(o.mode);
    if (!mode) {
        return report(mode.error());
    }
    if (*mode == physics::ExtractionMode::kPn && o.n_frames.empty()) {
        return report(Error{ErrorCode::kInvalidArgument, "--mode pn needs --n frames"});
    }
    auto poni = io::read_poni_file(o.poni_path);
    if (!poni) {
        return report(poni.error());
    }
    const geometry::DetectorGeometry geometry(poni->geometry);
    const FrameShape detector = geometry.shape();

    // Settings first: a wrong composition or density fails before any frame is read.
    physics::AnalysisSettings settings;
    settings.mode = *mode;
    settings.composition = o.composition;
    settings.density_per_cubic_angstrom = o.density_per_cubic_angstrom;
    settings.nu = o.nu;
    settings.loading_axis_chi_deg = o.loading_axis_chi_deg;
    settings.wavelength_angstrom = poni->geometry.wavelength_m / kMetresPerAngstrom;
    settings.q_norm_min_inv_angstrom = o.q_norm_min_inv_angstrom;
    auto normalisation = physics::parse_normalisation(o.normalisation);
    if (!normalisation) {
        return report(normalisation.error().with_context("--normalisation"));
    }
    settings.normalisation = *normalisation;
    settings.r_poly_angstrom = o.r_poly_angstrom;
    settings.r_max_angstrom = o.r_max_angstrom;
    settings.n_r = o.n_r;
    settings.r_fit_min_angstrom = o.r_fit_min_angstrom;
    settings.r_fit_max_angstrom = o.r_fit_max_angstrom;
    settings.lorch = o.lorch;
    auto analyzer = physics::AnisotropyAnalyzer::create(settings);
    if (!analyzer) {
        return report(analyzer.error());
    }

    // Q range: by default up to the largest ring the detector holds whole.
    const auto coverage = geometry.pixel_q_range();
    const double full_ring_q = geometry.full_ring_q_inv_angstrom();
    reduce::CakeAxes axes;
    axes.n_q = o.n_q;
    axes.n_chi = o.n_chi;
    axes.q_min_inv_angstrom =
        o.q_min_inv_angstrom.value_or(std::max(0.5, coverage.min_inv_angstrom));
    axes.q_max_inv_angstrom = o.q_max_inv_angstrom.value_or(full_ring_q);
    if (axes.q_min_inv_angstrom < coverage.min_inv_angstrom ||
        axes.q_max_inv_angstrom > coverage.max_inv_angstrom ||
        !(axes.q_max_inv_angstrom > axes.q_min_inv_angstrom)) {
        return report(Error{ErrorCode::kInvalidArgument,
                            fmt::format("Q range [{:.4f}, {:.4f}] 1/A is outside the detector's "
                                        "coverage [{:.4f}, {:.4f}] 1/A",
                                        axes.q_min_inv_angstrom, axes.q_max_inv_angstrom,
                                        coverage.min_inv_angstrom, coverage.max_inv_angstrom)});
    }

    auto loaded = load_detector_corrections(o.darks, o.flats, o.mask, detector, o.noise);
    if (!loaded) {
        return report(loaded.error());
    }
    reduce::DetectorCorrections corrections = std::move(*loaded);
    auto p_source = open_orientation(o.p_frames, "p", detector);
    if (!p_source) {
        return report(p_source.error());
    }
    std::unique_ptr<io::FrameSource> n_source;
    if (*mode == physics::ExtractionMode::kPn) {
        auto opened = open_orientation(o.n_frames, "n", detector);
        if (!opened) {
            return report(opened.error());
        }
        n_source = std::move(*opened);
    }
    corrections.saturation_counts = integer_saturation((*p_source)->pixel_type());
    corrections.polarization_factor = o.polarization_factor;
    corrections.mask_negative_after_dark = !o.keep_negative;
    auto splitting = reduce::parse_pixel_splitting(o.split);
    if (!splitting) {
        return report(splitting.error());
    }
    const unsigned threads =
        o.threads > 0 ? o.threads : std::max(1U, std::thread::hardware_concurrency());
    auto integrator =
        reduce::CakeIntegrator::create(geometry, {axes, *splitting, threads}, corrections);
    if (!integrator) {
        return report(integrator.error());
    }

    std::size_t n_frames_p = 0;
    std::size_t n_frames_n = 0;
    auto cake_p = integrate_orientation(**p_source, "p", *integrator, n_frames_p);
    if (!cake_p) {
        return report(cake_p.error());
    }
    std::optional<reduce::Cake> cake_n;
    if (*mode == physics::ExtractionMode::kPn) {
        auto cake = integrate_orientation(*n_source, "n", *integrator, n_frames_n);
        if (!cake) {
            return report(cake.error());
        }
        cake_n = std::move(*cake);
    }

    const auto analysis_start = std::chrono::steady_clock::now();
    auto result = analyzer->analyse(*cake_p, cake_n ? &*cake_n : nullptr);
    if (!result) {
        return report(result.error());
    }
    const double analysis_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - analysis_start)
            .count();
    const physics::AffineAnalysis& a = result->affine;

    nlohmann::json configuration = {
        {"poni", o.poni_path},
        {"p", o.p_frames},
        {"n", o.n_frames},
        {"dark", o.darks},
        {"flat", o.flats},
        {"mask", o.mask},
        {"composition", o.composition},
        {"density", o.density_per_cubic_angstrom},
        {"nu", o.nu},
        {"loading_axis_chi_deg", o.loading_axis_chi_deg},
        {"mode", o.mode},
        {"q_min", axes.q_min_inv_angstrom},
        {"q_max", axes.q_max_inv_angstrom},
        {"q_norm_min", settings.q_norm_min_inv_angstrom.value_or(physics::kDefaultQNormMinFraction *
                                                                 axes.q_max_inv_angstrom)},
        {"normalisation", o.normalisation},
        {"r_poly", o.r_poly_angstrom},
        {"n_q", axes.n_q},
        {"n_chi", axes.n_chi},
        {"r_max", o.r_max_angstrom},
        {"n_r", o.n_r},
        {"r_fit_min", o.r_fit_min_angstrom},
        {"r_fit_max", o.r_fit_max_angstrom},
        {"polarization", o.polarization_factor},
        {"lorch", o.lorch},
        {"keep_negative", o.keep_negative},
        {"split", o.split},
    };
    configuration.update(noise_model_json(corrections, o.noise));
    io::AnalysisFileInfo info;
    info.program_version = ANISOFLOW_VERSION;
    info.poni_text = read_text(o.poni_path);
    info.configuration_json = configuration.dump(2);
    info.sources_p = o.p_frames;
    info.sources_n = o.n_frames;
    info.sources_dark = o.darks;
    info.n_frames_p = n_frames_p;
    info.n_frames_n = n_frames_n;
    info.nu = o.nu;
    if (auto written = io::write_analysis_file(o.out_path, *result, *cake_p,
                                               cake_n ? &*cake_n : nullptr, info);
        !written) {
        return report(written.error());
    }
    const std::filesystem::path out(o.out_path);
    const std::filesystem::path stem = out.parent_path() / out.stem();
    const std::pair<const physics::RCurve*, const char*> pdfs[] = {
        {&result->reduced_g, "G"}, {&result->g0, "g0"}, {&result->g2, "g2"}};
    for (const auto& [curve, name] : pdfs) {
        const std::string path = stem.string() + "_" + name + ".gr";
        if (auto written =
                io::write_pdf_text(path, *curve, name, std::string_view(name) == "G" ? "A^-2" : "",
                                   pdf_header(o, name));
            !written) {
            return report(written.error());
        }
    }

    const nlohmann::json summary = {
        {"alpha", a.alpha},
        {"alpha_stderr", a.alpha_stderr},
        {"alpha_reduced_chi2", a.alpha_reduced_chi2},
        {"alpha_full_range", a.alpha_full_range},
        {"alpha_full_range_stderr", a.alpha_full_range_stderr},
        {"alpha_full_range_reduced_chi2", a.alpha_full_range_reduced_chi2},
        {"eps_aff", a.eps_aff},
        {"eps_aff_stderr", a.eps_aff_stderr},
        {"nu", o.nu},
        {"r_c_angstrom",
         a.r_c_angstrom ? nlohmann::json(*a.r_c_angstrom) : nlohmann::json(nullptr)},
        {"mechanism", std::string(physics::to_string(a.mechanism))},
        {"corr_stretching", a.corr_stretching},
        {"corr_rotation", a.corr_rotation},
        {"first_peak_shift_angstrom", a.first_peak_shift_angstrom},
        {"s2_chi2", result->s2_chi2},
        {"s2_dof", result->s2_dof},
        {"n_frames_p", n_frames_p},
        {"n_frames_n", n_frames_n},
        {"mode", o.mode},
        {"normalisation", std::string(physics::to_string(settings.normalisation))},
        {"harmonics_normalisation", "paper: S(Q,psi) = S0 + sqrt5 S2 P2(cos psi)"},
        {"variance_model", std::string(reduce::to_string(corrections.variance_model))},
        {"read_noise_counts", corrections.read_noise_counts
                                  ? nlohmann::json(*corrections.read_noise_counts)
                                  : nlohmann::json(nullptr)},
        {"version", ANISOFLOW_VERSION},
    };
    std::ofstream json(o.json_path);
    json << summary.dump(2) << "\n";
    if (!json) {
        return report(Error{ErrorCode::kIo, "--json " + o.json_path + ": cannot write"});
    }

    std::printf("anisoflow analyze: %zu P + %zu N frames, mode %s, Q [%.3f, %.3f] 1/A\n",
                n_frames_p, n_frames_n, o.mode.c_str(), axes.q_min_inv_angstrom,
                axes.q_max_inv_angstrom);
    if (corrections.read_noise_counts) {
        std::printf("  variance model %s, read noise %.3f counts rms\n",
                    std::string(reduce::to_string(corrections.variance_model)).c_str(),
                    *corrections.read_noise_counts);
    }
    std::printf("  alpha = %.5g +- %.2g (full range %.5g +- %.2g)\n", a.alpha, a.alpha_stderr,
                a.alpha_full_range, a.alpha_full_range_stderr);
    std::printf("  eps_aff = %.5g +- %.2g (nu = %.3g)\n", a.eps_aff, a.eps_aff_stderr, o.nu);
    if (a.r_c_angstrom) {
        std::printf("  r_c = %.2f A\n", *a.r_c_angstrom);
    } else {
        std::printf("  r_c: none found\n");
    }
    std::printf("  mechanism: %s (C_s = %.2f, C_r = %.2f, first-peak shift %.3f A)\n",
                std::string(physics::to_string(a.mechanism)).c_str(), a.corr_stretching,
                a.corr_rotation, a.first_peak_shift_angstrom);
    std::printf("  analysis %.1f ms; wrote %s, %s and %s_{G,g0,g2}.gr\n", analysis_ms,
                o.out_path.c_str(), o.json_path.c_str(), stem.string().c_str());
    return 0;
}

}  // namespace anisoflow::app
