#include "simulate_command.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numbers>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "anisoflow/geometry/detector_geometry.hpp"
#include "anisoflow/io/frame_stack_writer.hpp"
#include "anisoflow/io/poni_file.hpp"
#include "anisoflow/physics/scattering_factors.hpp"
#include "anisoflow/sim/frame_renderer.hpp"
#include "anisoflow/sim/structure_model.hpp"

namespace anisoflow::app {

namespace {

int report(const Error& error) {
    std::fprintf(stderr, "anisoflow simulate: %s\n", error.message.c_str());
    return 1;
}

// The built-in detector: 200 um pixels, beam at the centre, 100 keV (lambda = 0.123984 A).
geometry::PoniGeometry builtin_geometry(const SimulateOptions& o) {
    geometry::PoniGeometry poni;
    poni.poni_version = "2.1";
    poni.detector = geometry::DetectorModel{"Detector", 200e-6, 200e-6, FrameShape{o.rows, o.cols}};
    poni.distance_m = o.distance_m;
    poni.poni1_m = 0.5 * static_cast<double>(o.rows) * 200e-6;
    poni.poni2_m = 0.5 * static_cast<double>(o.cols) * 200e-6;
    poni.wavelength_m = 0.123984e-10;
    return poni;
}

// A smooth, deterministic efficiency map around 1 (what a real flat field looks like).
std::vector<float> synthetic_flat(FrameShape shape, double variation) {
    std::vector<float> flat(shape.pixel_count());
    for (std::size_t r = 0; r < shape.rows; ++r) {
        for (std::size_t c = 0; c < shape.cols; ++c) {
            const double pattern =
                std::sin(2.0 * std::numbers::pi * static_cast<double>(r) / 97.0) *
                std::cos(2.0 * std::numbers::pi * static_cast<double>(c) / 131.0);
            flat[r * shape.cols + c] = static_cast<float>(1.0 + variation * pattern);
        }
    }
    return flat;
}

Result<void> write_stack(const std::filesystem::path& path, const std::vector<Frame>& frames,
                         PixelType type) {
    auto writer = io::FrameStackWriter::create(path, frames.front().shape, type);
    if (!writer) {
        return tl::unexpected(writer.error());
    }
    for (const Frame& frame : frames) {
        if (auto appended = writer->append(frame.view()); !appended) {
            return appended;
        }
    }
    return writer->close();
}

}  // namespace

CLI::App* add_simulate_command(CLI::App& app, SimulateOptions& o) {
    CLI::App* cmd = app.add_subcommand(
        "simulate", "Simulate P/N frames of a strained glass, darks, a flat and the PONI");
    cmd->add_option("--out-dir", o.out_dir, "directory for p.h5 n.h5 dark.h5 flat.h5 geometry.poni")
        ->required();
    cmd->add_option("--poni", o.poni_path, "detector geometry (default: built-in, see --rows)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--rows", o.rows, "built-in detector rows")->capture_default_str();
    cmd->add_option("--cols", o.cols, "built-in detector columns")->capture_default_str();
    cmd->add_option("--distance", o.distance_m, "built-in detector distance, m")
        ->capture_default_str();
    cmd->add_option("--mode", o.mode, "strain mode: affine or none (radial, rotation: later)")
        ->capture_default_str()
        ->check(CLI::IsMember({"affine", "none", "radial", "rotation"}));
    cmd->add_option("--eps", o.eps, "affine strain, > 0 for compression along the axis")
        ->capture_default_str();
    cmd->add_option("--nu", o.nu, "Poisson ratio")->capture_default_str();
    cmd->add_option("--loading-axis-chi", o.loading_axis_chi_deg,
                    "pyFAI chi of the loading axis in orientation P, deg")
        ->capture_default_str();
    cmd->add_option("--frames", o.frames_per_orientation, "frames per orientation")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->add_option("--darks", o.dark_frames, "dark frames")->capture_default_str();
    cmd->add_option("--counts-at-peak", o.counts_at_peak, "counts per pixel at the first peak")
        ->capture_default_str();
    cmd->add_option("--composition", o.composition, "chemical formula")->capture_default_str();
    cmd->add_option("--density", o.density_per_cubic_angstrom, "number density rho0, atoms/A^3")
        ->capture_default_str();
    cmd->add_option("--packing", o.packing_fraction, "hard-sphere packing fraction")
        ->capture_default_str();
    cmd->add_option("--debye-waller", o.debye_waller_angstrom, "Debye-Waller-like width, A")
        ->capture_default_str();
    cmd->add_option("--dark-level", o.dark_level_counts, "dark level, counts")
        ->capture_default_str();
    cmd->add_option("--read-noise", o.read_noise_counts, "read noise, counts rms")
        ->capture_default_str();
    cmd->add_option("--polarization", o.polarization_factor, "beam polarization factor")
        ->capture_default_str();
    cmd->add_option("--flat-variation", o.flat_variation, "amplitude of the flat-field pattern")
        ->capture_default_str();
    cmd->add_flag("--noiseless", o.noiseless, "no Poisson or read noise (for validation)");
    cmd->add_option("--seed", o.seed, "random seed (frames are reproducible)")
        ->capture_default_str();
    return cmd;
}

int run_simulate(const SimulateOptions& o) {
    if (o.mode == "radial" || o.mode == "rotation") {
        return report(Error{ErrorCode::kUnsupported,
                            "--mode " + o.mode +
                                " is not implemented yet (needs the l=2 transforms); use affine "
                                "or none"});
    }
    if (!(o.nu > -1.0 && o.nu < 0.5)) {
        return report(
            Error{ErrorCode::kInvalidArgument, fmt::format("--nu {} is outside (-1, 0.5)", o.nu)});
    }
    const std::filesystem::path dir(o.out_dir);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        return report(
            Error{ErrorCode::kIo, fmt::format("--out-dir {}: {}", o.out_dir, ec.message())});
    }
    geometry::PoniGeometry poni = builtin_geometry(o);
    if (!o.poni_path.empty()) {
        auto parsed = io::read_poni_file(o.poni_path);
        if (!parsed) {
            return report(parsed.error());
        }
        poni = parsed->geometry;
    }
    const geometry::DetectorGeometry geometry(poni);
    auto factors = physics::ScatteringFactors::from_formula(o.composition);
    if (!factors) {
        return report(factors.error().with_context("--composition"));
    }
    auto structure = sim::HardSphereStructure::create(
        {o.density_per_cubic_angstrom, o.packing_fraction, o.debye_waller_angstrom});
    if (!structure) {
        return report(structure.error());
    }

    // Scattering factors on a fine Q grid covering the detector.
    const auto range = geometry.pixel_q_range();
    sim::AtomicTermsTable atomic;
    for (double q = 0.0; q <= range.max_inv_angstrom + 0.1; q += 0.01) {
        const auto averages = factors->at(q);
        atomic.q_inv_angstrom.push_back(q);
        atomic.mean_f_squared.push_back(averages.mean_f_squared);
        atomic.mean_squared_f.push_back(averages.mean_squared_f);
        atomic.compton.push_back(averages.compton);
    }
    // Scale K so that the first peak of S holds --counts-at-peak counts per pixel.
    double q_peak = 0.0;
    for (double q = 0.5; q < 6.0; q += 0.001) {
        if (structure->s(q) > structure->s(q_peak)) {
            q_peak = q;
        }
    }
    const auto at_peak = factors->at(q_peak);
    const double per_atom_at_peak = at_peak.mean_f_squared * (structure->s(q_peak) - 1.0) +
                                    at_peak.mean_squared_f + at_peak.compton;

    const std::vector<float> flat = synthetic_flat(geometry.shape(), o.flat_variation);
    auto renderer = sim::FrameRenderer::create(geometry, atomic, flat);
    if (!renderer) {
        return report(renderer.error());
    }
    sim::RenderSettings settings;
    settings.counts_scale = o.counts_at_peak / per_atom_at_peak;
    settings.loading_axis_chi_deg = o.loading_axis_chi_deg;
    settings.strain = sim::UniaxialStrain{o.mode == "affine" ? o.eps : 0.0, o.nu};
    settings.polarization_factor = o.polarization_factor;
    settings.dark_counts = o.dark_level_counts;
    settings.read_noise_counts = o.noiseless ? 0.0 : o.read_noise_counts;
    settings.poisson_noise = !o.noiseless;

    std::uint64_t seed = o.seed;
    for (const auto orientation : {sim::Orientation::kP, sim::Orientation::kN}) {
        const bool is_p = orientation == sim::Orientation::kP;
        std::vector<Frame> frames;
        for (std::size_t f = 0; f < o.frames_per_orientation; ++f) {
            settings.orientation = orientation;
            settings.seed = seed++;
            auto frame = renderer->render(*structure, settings);
            if (!frame) {
                return report(frame.error());
            }
            frames.push_back(std::move(*frame));
            spdlog::info("simulated orientation={} frame={}/{}", is_p ? "P" : "N", f + 1,
                         o.frames_per_orientation);
        }
        if (auto written = write_stack(dir / (is_p ? "p.h5" : "n.h5"), frames, PixelType::kUint16);
            !written) {
            return report(written.error());
        }
    }
    if (o.dark_frames > 0) {
        std::vector<Frame> darks;
        for (std::size_t f = 0; f < o.dark_frames; ++f) {
            settings.seed = seed++;
            darks.push_back(renderer->render_dark(settings));
        }
        if (auto written = write_stack(dir / "dark.h5", darks, PixelType::kUint16); !written) {
            return report(written.error());
        }
    }
    if (auto written = write_stack(dir / "flat.h5", {Frame::from_vector(geometry.shape(), flat)},
                                   PixelType::kFloat32);
        !written) {
        return report(written.error());
    }
    {
        std::ofstream poni_file(dir / "geometry.poni");
        poni_file << "# anisoflow simulate: detector geometry of the simulated frames\n"
                  << geometry::format_poni(poni);
        if (!poni_file) {
            return report(
                Error{ErrorCode::kIo, (dir / "geometry.poni").string() + ": cannot write"});
        }
    }
    const double alpha = 2.0 * (1.0 + o.nu) * settings.strain.eps / (3.0 * std::sqrt(5.0));
    const nlohmann::json record = {
        {"mode", o.mode},
        {"eps_aff", settings.strain.eps},
        {"nu", o.nu},
        {"alpha_expected", alpha},
        {"loading_axis_chi_deg", o.loading_axis_chi_deg},
        {"composition", o.composition},
        {"density_per_cubic_angstrom", o.density_per_cubic_angstrom},
        {"packing_fraction", o.packing_fraction},
        {"debye_waller_angstrom", o.debye_waller_angstrom},
        {"hard_sphere_diameter_angstrom", structure->diameter_angstrom()},
        {"first_peak_q_inv_angstrom", q_peak},
        {"counts_scale", settings.counts_scale},
        {"frames_per_orientation", o.frames_per_orientation},
        {"dark_frames", o.dark_frames},
        {"dark_level_counts", o.dark_level_counts},
        {"read_noise_counts", settings.read_noise_counts},
        {"polarization_factor", o.polarization_factor},
        {"noiseless", o.noiseless},
        {"seed", o.seed},
    };
    std::ofstream json(dir / "simulation.json");
    json << record.dump(2) << "\n";
    std::printf(
        "anisoflow simulate: %s strain eps=%g nu=%g (alpha=%.6g), %zu frames per "
        "orientation of %zux%zu, first peak at Q = %.3f 1/A with ~%.0f counts\n"
        "  wrote %s/{p.h5, n.h5, dark.h5, flat.h5, geometry.poni, simulation.json}\n",
        o.mode.c_str(), settings.strain.eps, o.nu, alpha, o.frames_per_orientation,
        geometry.shape().rows, geometry.shape().cols, q_peak, o.counts_at_peak, o.out_dir.c_str());
    return 0;
}

}  // namespace anisoflow::app
