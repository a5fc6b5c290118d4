// RESULT.h5 and the .gr texts of `anisoflow analyze` (layout in docs/io.md, "Analysis file").
// Objects are addressed by absolute path from the file handle, so errors name what failed.

#include "anisoflow/io/analysis_file.hpp"

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "anisoflow/physics/affine_fit.hpp"

#include "hdf5_util.hpp"
#include "nexus_writer.hpp"
#include "text_output.hpp"

namespace anisoflow::io {

using detail::hdf5_error_detail;
using detail::Hid;

namespace {

using detail::NexusWriter;

constexpr std::string_view kProgramName = "anisoflow";
constexpr std::string_view kInverseAngstrom = "1/angstrom";
constexpr std::string_view kAngstrom = "angstrom";
constexpr std::string_view kDimensionless = "";  // NeXus NX_DIMENSIONLESS

/// Value and variance of `curve` must have `n` entries each, as must its grid.
template <class Curve>
Result<void> check_curve(const Curve& curve, const std::vector<double>& grid, std::size_t n,
                         std::string_view name) {
    if (grid.size() != n || curve.value.size() != n || curve.variance.size() != n) {
        return fail(ErrorCode::kInvalidArgument,
                    "{} has {} grid points, {} values and {} variances; expected {} each", name,
                    grid.size(), curve.value.size(), curve.variance.size(), n);
    }
    return {};
}

Result<void> check_result(const physics::AnisotropyResult& result) {
    const physics::StructureFunctions& structure = result.structure;
    const std::size_t n_q = structure.s0.size();
    const std::pair<const physics::QCurve*, std::string_view> q_curves[] = {
        {&structure.s0, "S0"},
        {&structure.s2, "S2"},
        {&result.harmonics.i0, "I0"},
        {&result.harmonics.a2, "a2"}};
    for (const auto& [curve, name] : q_curves) {
        if (auto ok = check_curve(*curve, curve->q_inv_angstrom, n_q, name); !ok) {
            return ok;
        }
    }
    const std::size_t n_r = result.g0.size();
    const std::pair<const physics::RCurve*, std::string_view> r_curves[] = {
        {&result.g0, "g0"},
        {&result.g2, "g2"},
        {&result.reduced_g, "G"},
        {&result.affine.affine_g2, "alpha r dg0/dr"},
        {&result.affine.eps_r, "eps(r)"}};
    for (const auto& [curve, name] : r_curves) {
        if (auto ok = check_curve(*curve, curve->r_angstrom, n_r, name); !ok) {
            return ok;
        }
    }
    const physics::RCurve& local = result.affine.local_ratio;
    return check_curve(local, local.r_angstrom, local.size(), "A(r)");
}

Result<void> check_cake(const reduce::Cake& cake, std::string_view name) {
    const reduce::CakeAxes& axes = cake.axes;
    const std::pair<const std::vector<double>*, std::size_t> expected[] = {
        {&cake.q_inv_angstrom, axes.n_q},
        {&cake.chi_deg, axes.n_chi},
        {&cake.intensity, axes.cell_count()},
        {&cake.variance, axes.cell_count()},
        {&cake.count, axes.cell_count()}};
    constexpr const char* kNames[] = {"q_inv_angstrom", "chi_deg", "intensity", "variance",
                                      "count"};
    for (std::size_t i = 0; i < std::size(expected); ++i) {
        if (expected[i].first->size() != expected[i].second) {
            return fail(ErrorCode::kInvalidArgument,
                        "cake {} ({} chi x {} q bins) has {} values of {}, expected {}", name,
                        axes.n_chi, axes.n_q, expected[i].first->size(), kNames[i],
                        expected[i].second);
        }
    }
    return {};
}

void write_structure(NexusWriter& out, const physics::AnisotropyResult& result) {
    const physics::StructureFunctions& structure = result.structure;
    const std::string group = "/entry/structure";
    const std::vector<hsize_t> dims{structure.s0.size()};
    out.group(group, "NXdata");
    out.string_attr(group, "signal", "s0");
    out.string_attr(group, "axes", "q");
    out.int_attr(group, "q_indices", 0);
    out.strings_attr(group, "auxiliary_signals", {"s2"});
    out.string_attr(group, "normalisation", kPaperNormalisation);
    out.double_attr(group, "scale_n", structure.scale);
    out.double_attr(group, "scale_n_variance", structure.scale_variance);
    out.doubles(group + "/q", dims, structure.s0.q_inv_angstrom, kInverseAngstrom);
    out.doubles(group + "/s0", dims, structure.s0.value, kDimensionless);
    out.doubles(group + "/s0_variance", dims, structure.s0.variance, kDimensionless);
    out.doubles(group + "/s2", dims, structure.s2.value, kDimensionless);
    out.doubles(group + "/s2_variance", dims, structure.s2.variance, kDimensionless);
    // The raw harmonics are on the cakes' (arbitrary) intensity scale, which has no unit.
    out.doubles(group + "/i0", dims, result.harmonics.i0.value, std::nullopt);
    out.doubles(group + "/i0_variance", dims, result.harmonics.i0.variance, std::nullopt);
    out.doubles(group + "/a2", dims, result.harmonics.a2.value, std::nullopt);
    out.doubles(group + "/a2_variance", dims, result.harmonics.a2.variance, std::nullopt);
}

void write_pdf(NexusWriter& out, const physics::AnisotropyResult& result) {
    const physics::AffineAnalysis& affine = result.affine;
    const std::string group = "/entry/pdf";
    const std::vector<hsize_t> dims{result.g0.size()};
    out.group(group, "NXdata");
    out.string_attr(group, "signal", "g0");
    out.string_attr(group, "axes", "r");
    out.int_attr(group, "r_indices", 0);
    out.strings_attr(group, "auxiliary_signals", {"g2", "G"});
    out.string_attr(group, "normalisation", "paper: g(r,psi) = g0 + sqrt5 g2 P2(cos psi)");
    out.doubles(group + "/r", dims, result.g0.r_angstrom, kAngstrom);
    out.doubles(group + "/g0", dims, result.g0.value, kDimensionless);
    out.doubles(group + "/g0_variance", dims, result.g0.variance, kDimensionless);
    out.doubles(group + "/g2", dims, result.g2.value, kDimensionless);
    out.doubles(group + "/g2_variance", dims, result.g2.variance, kDimensionless);
    out.doubles(group + "/G", dims, result.reduced_g.value, "1/angstrom^2");
    out.doubles(group + "/G_variance", dims, result.reduced_g.variance, "1/angstrom^4");
    out.doubles(group + "/affine_g2", dims, affine.affine_g2.value, kDimensionless);
    out.string_attr(group + "/affine_g2", "long_name", "alpha r dg0/dr");
    out.doubles(group + "/affine_g2_variance", dims, affine.affine_g2.variance, kDimensionless);
    out.doubles(group + "/eps_r", dims, affine.eps_r.value, kDimensionless);
    out.string_attr(group + "/eps_r", "long_name", "radial strain eps(r); NaN where undefined");
    out.doubles(group + "/eps_r_variance", dims, affine.eps_r.variance, kDimensionless);
    const std::vector<hsize_t> local_dims{affine.local_ratio.size()};
    out.doubles(group + "/local_ratio_r", local_dims, affine.local_ratio.r_angstrom, kAngstrom);
    out.doubles(group + "/local_ratio", local_dims, affine.local_ratio.value, kDimensionless);
    out.string_attr(group + "/local_ratio", "long_name", "A(r) at window centres local_ratio_r");
    out.doubles(group + "/local_ratio_variance", local_dims, affine.local_ratio.variance,
                kDimensionless);
}

void write_results(NexusWriter& out, const physics::AnisotropyResult& result,
                   const AnalysisFileInfo& info) {
    const physics::AffineAnalysis& affine = result.affine;
    const std::string group = "/entry/results";
    const auto path = [&group](std::string_view name) { return fmt::format("{}/{}", group, name); };
    out.group(group, "NXcollection");
    out.scalar(path("alpha"), affine.alpha, kDimensionless);
    out.scalar(path("alpha_stderr"), affine.alpha_stderr, kDimensionless);
    out.scalar(path("alpha_reduced_chi2"), affine.alpha_reduced_chi2, kDimensionless);
    out.scalar(path("alpha_full_range"), affine.alpha_full_range, kDimensionless);
    out.scalar(path("alpha_full_range_stderr"), affine.alpha_full_range_stderr, kDimensionless);
    out.scalar(path("alpha_full_range_reduced_chi2"), affine.alpha_full_range_reduced_chi2,
               kDimensionless);
    out.scalar(path("eps_aff"), affine.eps_aff, kDimensionless);
    out.scalar(path("eps_aff_stderr"), affine.eps_aff_stderr, kDimensionless);
    out.scalar(path("nu"), info.nu, kDimensionless);  // AnisotropyResult does not carry it
    const std::string r_c = path("r_c_angstrom");
    out.scalar(r_c, affine.r_c_angstrom.value_or(std::numeric_limits<double>::quiet_NaN()),
               kAngstrom);
    out.int_attr(r_c, "found", affine.r_c_angstrom.has_value() ? 1 : 0);
    out.integer(path("r_c_iterations"), affine.r_c_iterations);
    out.text(path("mechanism"), physics::to_string(affine.mechanism));
    out.scalar(path("corr_stretching"), affine.corr_stretching, kDimensionless);
    out.scalar(path("corr_rotation"), affine.corr_rotation, kDimensionless);
    out.scalar(path("first_peak_shift_angstrom"), affine.first_peak_shift_angstrom, kAngstrom);
    out.scalar(path("s2_chi2"), result.s2_chi2, kDimensionless);
    out.integer(path("s2_dof"), static_cast<std::int64_t>(result.s2_dof));
    out.integer(path("s2_consistent_with_zero"), result.s2_consistent_with_zero ? 1 : 0);
    out.integer(path("n_frames_p"), static_cast<std::int64_t>(info.n_frames_p));
    out.integer(path("n_frames_n"), static_cast<std::int64_t>(info.n_frames_n));
}

void write_cake(NexusWriter& out, const std::string& group, const reduce::Cake& cake) {
    const reduce::CakeAxes& axes = cake.axes;
    out.group(group, "NXdata");
    out.string_attr(group, "signal", "intensity");
    out.strings_attr(group, "axes", {"chi", "q"});
    out.int_attr(group, "chi_indices", 0);
    out.int_attr(group, "q_indices", 1);
    out.double_attr(group, "q_min_inv_angstrom", axes.q_min_inv_angstrom);
    out.double_attr(group, "q_max_inv_angstrom", axes.q_max_inv_angstrom);
    out.int_attr(group, "frame_count", static_cast<std::int64_t>(cake.frame_count));
    const std::vector<hsize_t> dims{axes.n_chi, axes.n_q};
    out.doubles(group + "/intensity", dims, cake.intensity, std::nullopt);
    out.doubles(group + "/variance", dims, cake.variance, std::nullopt);
    out.doubles(group + "/count", dims, cake.count, std::nullopt);
    out.doubles(group + "/q", {axes.n_q}, cake.q_inv_angstrom, kInverseAngstrom);
    out.doubles(group + "/chi", {axes.n_chi}, cake.chi_deg, "deg");
}

void write_process(NexusWriter& out, const AnalysisFileInfo& info) {
    const std::string group = "/entry/process";
    out.group(group, "NXprocess");
    out.text(group + "/program", kProgramName);
    out.text(group + "/version", info.program_version);
    out.text(group + "/poni", info.poni_text);
    out.text(group + "/configuration", info.configuration_json);
    out.string_attr(group + "/configuration", "format", "application/json");
    out.texts(group + "/sources_p", info.sources_p);
    out.texts(group + "/sources_n", info.sources_n);
    out.texts(group + "/sources_dark", info.sources_dark);
}

/// "A^-2" -> "$\AA^{-2}$", "A" -> "$\AA$"; anything else as given.
std::string latex_units(std::string_view units) {
    if (units == "A") {
        return R"($\AA$)";
    }
    if (units.size() > 2 && units.substr(0, 2) == "A^") {
        return fmt::format(R"($\AA^{{{}}}$)", units.substr(2));
    }
    return std::string(units);
}

}  // namespace

Result<void> write_analysis_file(const std::filesystem::path& path,
                                 const physics::AnisotropyResult& result,
                                 const reduce::Cake& cake_p, const reduce::Cake* cake_n,
                                 const AnalysisFileInfo& info) {
    const std::string file = path.string();
    if (auto ok = check_result(result); !ok) {
        return tl::unexpected(ok.error().with_context(file));
    }
    if (auto ok = check_cake(cake_p, "p"); !ok) {
        return tl::unexpected(ok.error().with_context(file));
    }
    if (cake_n != nullptr) {
        if (auto ok = check_cake(*cake_n, "n"); !ok) {
            return tl::unexpected(ok.error().with_context(file));
        }
    }

    detail::silence_hdf5_errors();
    // Written beside the target and renamed at the end: a reader never sees half a RESULT.h5.
    std::filesystem::path partial = path;
    partial += ".partial";
    Hid handle =
        detail::file_handle(H5Fcreate(partial.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    if (!handle) {
        return fail(ErrorCode::kIo, "{}: cannot create HDF5 file: {}", file, hdf5_error_detail());
    }
    const auto abandon = [&partial] {
        std::error_code ignored;
        std::filesystem::remove(partial, ignored);
    };

    NexusWriter out(handle.get());
    out.string_attr("/", "NX_class", "NXroot");
    out.string_attr("/", "default", "entry");
    out.string_attr("/", "creator", fmt::format("{} {}", kProgramName, info.program_version));
    out.group("/entry", "NXentry");
    out.string_attr("/entry", "default", "pdf");
    out.text("/entry/program_name", kProgramName);
    out.string_attr("/entry/program_name", "version", info.program_version);
    write_structure(out, result);
    write_pdf(out, result);
    write_results(out, result, info);
    out.group("/entry/cakes", "NXcollection");
    write_cake(out, "/entry/cakes/p", cake_p);
    if (cake_n != nullptr) {
        write_cake(out, "/entry/cakes/n", *cake_n);
    }
    write_process(out, info);
    if (auto status = out.status(path); !status) {
        handle.close();
        abandon();
        return status;
    }
    if (!handle.close()) {  // the final flush: a full disk shows up here
        const std::string detail = hdf5_error_detail();
        abandon();
        return fail(ErrorCode::kIo, "{}: cannot close (flush) the file: {}", file, detail);
    }
    std::error_code renamed;
    std::filesystem::rename(partial, path, renamed);
    if (renamed) {
        abandon();
        return fail(ErrorCode::kIo, "{}: cannot move the finished file into place: {}", file,
                    renamed.message());
    }
    return {};
}

Result<void> write_pdf_text(const std::filesystem::path& path, const physics::RCurve& curve,
                            std::string_view quantity, std::string_view units,
                            const std::vector<std::string>& header_lines) {
    const std::string file = path.string();
    if (quantity != "G" && quantity != "g0" && quantity != "g2") {
        return fail(ErrorCode::kInvalidArgument,
                    "{}: unknown PDF quantity '{}' (expected G, g0 or g2)", file, quantity);
    }
    if (curve.value.size() != curve.r_angstrom.size()) {
        return fail(ErrorCode::kInvalidArgument, "{}: {} has {} r points but {} values", file,
                    quantity, curve.r_angstrom.size(), curve.value.size());
    }

    std::ofstream out(path);
    if (!out) {
        return fail(ErrorCode::kIo, "{}: cannot create: {}", file,
                    std::generic_category().message(errno));
    }
    detail::write_comment_lines(out, header_lines);
    const std::string label = units.empty() ? fmt::format("{}(r)", quantity)
                                            : fmt::format("{}({})", quantity, latex_units(units));
    out << "#### start data\n#S 1\n"
        << R"(#L r($\AA$)  )" << label << '\n';
    for (std::size_t i = 0; i < curve.size(); ++i) {
        if (std::isnan(curve.r_angstrom[i]) || std::isnan(curve.value[i])) {
            continue;  // undefined sample: PDFgui cannot read NaN
        }
        out << fmt::format("{:.6f} {:.8e}\n", curve.r_angstrom[i], curve.value[i]);
    }
    out.close();
    if (!out) {
        return fail(ErrorCode::kIo, "{}: write failed (disk full?): {}", file,
                    std::generic_category().message(errno));
    }
    return {};
}

}  // namespace anisoflow::io
