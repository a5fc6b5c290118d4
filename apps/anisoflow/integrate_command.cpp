#include "integrate_command.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "anisoflow/geometry/detector_geometry.hpp"
#include "anisoflow/io/cake_file.hpp"
#include "anisoflow/io/frame_source.hpp"
#include "anisoflow/io/iq_text.hpp"
#include "anisoflow/io/poni_file.hpp"
#include "anisoflow/reduce/cake_integrator.hpp"

#include "command_support.hpp"

namespace anisoflow::app {

namespace {

using Clock = std::chrono::steady_clock;

int report(const Error& error) {
    std::fprintf(stderr, "anisoflow integrate: %s\n", error.message.c_str());
    return 1;
}

}  // namespace

CLI::App* add_integrate_command(CLI::App& app, IntegrateOptions& o) {
    CLI::App* cmd = app.add_subcommand(
        "integrate", "Integrate detector frames into a (Q, chi) cake and I(Q) (NeXus HDF5)");
    cmd->add_option("--poni", o.poni_path, "pyFAI PONI calibration (versions 1, 2, 2.1)")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--frames", o.frames,
                    "frames: file.h5[::/dataset], TIFF, GE (.ge .ge2 .ge3 .ge5) or globs")
        ->required();
    auto* dark = cmd->add_option("--dark", o.darks, "dark frames, averaged (same formats)");
    cmd->add_option("--dark-level", o.dark_level_counts, "constant dark level in counts instead")
        ->excludes(dark);
    cmd->add_option("--flat", o.flats, "flat field: relative pixel efficiency, averaged");
    cmd->add_option("--mask", o.mask, "mask (HDF5 file.h5[::/path] or TIFF), non-zero = masked");
    cmd->add_option("--n-q", o.n_q, "Q bins")->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("--n-chi", o.n_chi, "chi bins on [-180, 180) deg")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->add_option("--q-min", o.q_min_inv_angstrom, "lowest Q in 1/A (default: the pixels' own)");
    cmd->add_option("--q-max", o.q_max_inv_angstrom, "highest Q in 1/A (default: the pixels' own)");
    cmd->add_option("--polarization", o.polarization_factor,
                    "polarization factor (pyFAI convention, 0.99 for a synchrotron)")
        ->capture_default_str()
        ->check(CLI::Range(-1.0, 1.0));
    cmd->add_flag("--no-polarization", o.no_polarization, "skip the polarization correction");
    cmd->add_flag("--no-solid-angle", o.no_solid_angle, "skip the solid-angle correction");
    cmd->add_option("--split", o.split, "pixel splitting: none (pixel centres) or bbox")
        ->capture_default_str()
        ->check(CLI::IsMember({"none", "bbox"}));
    cmd->add_option("--saturation", o.saturation_counts,
                    "raw counts at or above which a pixel is excluded in that frame "
                    "(default: the pixel type's maximum for integer frames)");
    cmd->add_flag("--keep-negative", o.keep_negative,
                  "keep pixels below the dark (by default excluded in that frame)");
    add_noise_model_options(*cmd, o.noise);
    cmd->add_option("--threads", o.threads, "threads per frame (default: all cores)");
    cmd->add_flag("--sum", o.sum, "write only the mean of all frames, not every frame's cake");
    cmd->add_option("--out", o.out_path, "output NeXus file (cake.h5)")->required();
    cmd->add_option("--iq-text", o.iq_text_path, "also write I(Q) as pyFAI-style text columns");
    return cmd;
}

int run_integrate(const IntegrateOptions& o) {
    if (auto out = check_output_path(o.out_path, "--out"); !out) {
        return report(out.error());
    }
    if (!o.iq_text_path.empty()) {
        if (auto iq = check_output_path(o.iq_text_path, "--iq-text"); !iq) {
            return report(iq.error());
        }
    }
    if (o.dark_level_counts && !std::isfinite(*o.dark_level_counts)) {
        return report(Error{
            ErrorCode::kInvalidArgument,
            fmt::format("--dark-level {} is not a finite number of counts", *o.dark_level_counts)});
    }
    if (o.saturation_counts && !(*o.saturation_counts > 0.0)) {
        return report(Error{ErrorCode::kInvalidArgument,
                            fmt::format("--saturation {} is not a positive number of counts",
                                        *o.saturation_counts)});
    }
    auto poni = io::read_poni_file(o.poni_path);
    if (!poni) {
        return report(poni.error());
    }
    for (const auto& warning : poni->warnings) {
        spdlog::warn("poni file={} {}", o.poni_path, warning);
    }
    const geometry::DetectorGeometry geometry(poni->geometry);
    const FrameShape detector = geometry.shape();

    auto source = io::open_frame_sources(o.frames);
    if (!source) {
        return report(source.error());
    }
    if (auto shape = io::check_shape(**source, detector); !shape) {
        return report(shape.error());
    }
    const std::size_t frame_count = (*source)->frame_count();
    if (frame_count == 0) {
        return report(Error{ErrorCode::kNotFound, (*source)->describe() + ": no frames"});
    }

    auto loaded = load_detector_corrections(o.darks, o.flats, o.mask, detector, o.noise);
    if (!loaded) {
        return report(loaded.error());
    }
    reduce::DetectorCorrections corrections = std::move(*loaded);
    if (o.darks.empty() && o.dark_level_counts) {
        corrections.dark_counts.assign(detector.pixel_count(),
                                       static_cast<float>(*o.dark_level_counts));
    }
    corrections.saturation_counts =
        o.saturation_counts ? o.saturation_counts : integer_saturation((*source)->pixel_type());
    corrections.mask_negative_after_dark = !o.keep_negative;
    if (!o.no_polarization) {
        corrections.polarization_factor = o.polarization_factor;
    }
    corrections.correct_solid_angle = !o.no_solid_angle;

    reduce::CakeAxes axes;
    axes.n_q = o.n_q;
    axes.n_chi = o.n_chi;
    if (!o.q_min_inv_angstrom || !o.q_max_inv_angstrom) {
        const auto range = geometry.pixel_q_range();
        axes.q_min_inv_angstrom = o.q_min_inv_angstrom.value_or(range.min_inv_angstrom);
        // pyFAI widens its default upper edge a hair so that the farthest pixel is inside.
        axes.q_max_inv_angstrom = o.q_max_inv_angstrom.value_or(
            std::nextafter(range.max_inv_angstrom, std::numeric_limits<double>::infinity()));
    } else {
        axes.q_min_inv_angstrom = *o.q_min_inv_angstrom;
        axes.q_max_inv_angstrom = *o.q_max_inv_angstrom;
    }
    const auto splitting = reduce::parse_pixel_splitting(o.split);
    if (!splitting) {
        return report(splitting.error());
    }
    const unsigned threads =
        o.threads > 0 ? o.threads : std::max(1U, std::thread::hardware_concurrency());

    const auto build_start = Clock::now();
    auto integrator =
        reduce::CakeIntegrator::create(geometry, {axes, *splitting, threads}, corrections);
    if (!integrator) {
        return report(integrator.error());
    }
    const double build_s = std::chrono::duration<double>(Clock::now() - build_start).count();
    if (integrator->contributing_pixel_count() == 0) {
        const auto range = geometry.pixel_q_range();
        return report(Error{
            ErrorCode::kInvalidArgument,
            fmt::format("no unmasked pixel falls in Q [{:.4f}, {:.4f}] 1/A; the detector's pixels "
                        "cover Q [{:.4f}, {:.4f}] 1/A",
                        axes.q_min_inv_angstrom, axes.q_max_inv_angstrom, range.min_inv_angstrom,
                        range.max_inv_angstrom)});
    }
    spdlog::info("lookup built split={} threads={} seconds={:.2f} bytes_per_pixel={:.1f}", o.split,
                 threads, build_s,
                 static_cast<double>(integrator->lookup_size_bytes()) /
                     static_cast<double>(detector.pixel_count()));

    nlohmann::json settings = {
        {"n_q", axes.n_q},
        {"n_chi", axes.n_chi},
        {"q_min_inv_angstrom", axes.q_min_inv_angstrom},
        {"q_max_inv_angstrom", axes.q_max_inv_angstrom},
        {"chi_range_deg", {-180.0, 180.0}},
        {"split", o.split},
        {"polarization_factor", corrections.polarization_factor
                                    ? nlohmann::json(*corrections.polarization_factor)
                                    : nlohmann::json(nullptr)},
        {"solid_angle", corrections.correct_solid_angle},
        {"dark", !o.darks.empty() ? nlohmann::json(o.darks)
                                  : (o.dark_level_counts ? nlohmann::json(*o.dark_level_counts)
                                                         : nlohmann::json(nullptr))},
        {"dark_frame_count", corrections.dark_frame_count},
        {"flat", o.flats},
        {"mask", o.mask},
        {"saturation_counts", corrections.saturation_counts
                                  ? nlohmann::json(*corrections.saturation_counts)
                                  : nlohmann::json(nullptr)},
        {"mask_negative_after_dark", corrections.mask_negative_after_dark},
        {"sum", o.sum},
    };
    settings.update(noise_model_json(corrections, o.noise));
    io::CakeFileInfo info{ANISOFLOW_VERSION, read_text(o.poni_path), settings.dump(2), o.frames};
    const bool per_frame = !o.sum && frame_count > 1;
    auto writer = io::CakeFileWriter::create(o.out_path, axes, info, per_frame);
    if (!writer) {
        return report(writer.error());
    }

    reduce::CakeAccumulator mean;
    Progress progress("integrating", frame_count);
    double integrate_ms = 0.0;
    for (std::size_t i = 0; i < frame_count; ++i) {
        auto frame = (*source)->read_frame(i);
        if (!frame) {
            return report(frame.error());
        }
        const auto start = Clock::now();
        reduce::CakeAccumulator single;
        if (auto added = integrator->accumulate(frame->view(), single); !added) {
            return report(
                added.error().with_context((*source)->describe() + " frame " + std::to_string(i)));
        }
        integrate_ms += std::chrono::duration<double, std::milli>(Clock::now() - start).count();
        if (per_frame) {
            if (auto appended = writer->append_frame(single.finish()); !appended) {
                return report(appended.error());
            }
        }
        if (auto merged = mean.merge(single); !merged) {
            return report(merged.error());
        }
        progress.update(i + 1, integrate_ms / static_cast<double>(i + 1));
    }
    const reduce::Cake cake = mean.finish();
    if (auto finished = writer->finish(cake); !finished) {
        return report(finished.error());
    }
    if (!o.iq_text_path.empty()) {
        const std::vector<std::string> header = {
            "anisoflow " + std::string(ANISOFLOW_VERSION) + " integrate", "poni: " + o.poni_path,
            "frames: " + (*source)->describe() + " (" + std::to_string(frame_count) + ")",
            "split: " + o.split + ", polarization: " +
                (corrections.polarization_factor ? std::to_string(*corrections.polarization_factor)
                                                 : std::string("none"))};
        if (auto written = io::write_iq_text(o.iq_text_path, cake, header); !written) {
            return report(written.error());
        }
    }

    // Summary for the scientist: what went in, what came out, where the strongest ring is.
    std::size_t populated = 0;
    for (const double count : cake.count) {
        populated += count > 0.0 ? 1U : 0U;
    }
    std::size_t peak = 0;
    for (std::size_t iq = 0; iq < axes.n_q; ++iq) {
        if (cake.count_1d[iq] > 0.0 &&
            (!(cake.count_1d[peak] > 0.0) || cake.intensity_1d[iq] > cake.intensity_1d[peak])) {
            peak = iq;
        }
    }
    std::printf("anisoflow integrate: %zu frame(s) of %zux%zu from %s\n", frame_count,
                detector.rows, detector.cols, (*source)->describe().c_str());
    std::printf(
        "  cake %zu Q x %zu chi on Q [%.4f, %.4f] 1/A, split %s: %zu of %zu cells "
        "populated, %zu pixels contribute\n",
        axes.n_q, axes.n_chi, axes.q_min_inv_angstrom, axes.q_max_inv_angstrom, o.split.c_str(),
        populated, axes.cell_count(), integrator->contributing_pixel_count());
    std::printf("  strongest I(Q) at Q = %.4f 1/A (I = %.6g)\n", cake.q_inv_angstrom[peak],
                cake.intensity_1d[peak]);
    std::printf("  lookup %.2f s, %.2f ms per frame on %u thread(s)\n", build_s,
                integrate_ms / static_cast<double>(frame_count), threads);
    std::printf("  wrote %s%s%s\n", o.out_path.c_str(), o.iq_text_path.empty() ? "" : " and ",
                o.iq_text_path.c_str());
    return 0;
}

}  // namespace anisoflow::app
