#include "anisoflow/io/analysis_file.hpp"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hdf5.h>

#include "anisoflow/physics/affine_fit.hpp"
#include "anisoflow/testing/test_paths.hpp"

#include "fixture_writers.hpp"

namespace anisoflow::io {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr std::size_t kNq = 5;
constexpr std::size_t kNr = 7;
// %.6f prints r to 1e-6: a value read back is within half of that (plus binary rounding).
constexpr double kTextRAbsoluteTolerance = 5e-7 + 1e-12;
// %.8e keeps 9 significant digits: within half a unit of the 9th, relative.
constexpr double kTextValueRelativeTolerance = 5e-9;

/// n samples starting at `first`, step `step`; distinct per curve so mix-ups show.
std::vector<double> ramp(std::size_t n, double first, double step) {
    std::vector<double> values(n);
    for (std::size_t i = 0; i < n; ++i) {
        values[i] = first + step * static_cast<double>(i);
    }
    return values;
}

physics::QCurve q_curve(double first, double step) {
    return {ramp(kNq, 1.0, 0.5), ramp(kNq, first, step), ramp(kNq, first / 100.0, step / 100.0)};
}

physics::RCurve r_curve(double first, double step) {
    return {ramp(kNr, 2.0, 0.25), ramp(kNr, first, step), ramp(kNr, first / 50.0, step / 50.0)};
}

/// 5 Q points, 7 r points, distinct values everywhere; eps(r) is NaN at both ends, as where
/// g0 < 0.3 or r > r_fit_max.
physics::AnisotropyResult make_result(std::optional<double> r_c, physics::Mechanism mechanism) {
    physics::AnisotropyResult result;
    result.harmonics.i0 = q_curve(1000.0, 10.0);
    result.harmonics.a2 = q_curve(-3.0, 0.5);
    result.structure.s0 = q_curve(0.9, 0.05);
    result.structure.s2 = q_curve(-0.02, 0.003);
    result.structure.scale = 123.25;
    result.structure.scale_variance = 0.5;
    result.g0 = r_curve(0.1, 0.3);
    result.g2 = r_curve(-0.004, 0.001);
    result.reduced_g = r_curve(-1.5, 0.7);
    result.affine.affine_g2 = r_curve(-0.0035, 0.0011);
    result.affine.eps_r = r_curve(0.002, -0.0001);
    result.affine.eps_r.value.front() = kNan;
    result.affine.eps_r.value.back() = kNan;
    result.affine.local_ratio = {{3.0, 5.0, 7.0}, {0.8, 1.05, 0.97}, {0.01, 0.02, 0.03}};
    result.affine.alpha = -0.0123;
    result.affine.alpha_stderr = 0.0004;
    result.affine.alpha_reduced_chi2 = 1.1;
    result.affine.alpha_full_range = -0.0119;
    result.affine.alpha_full_range_stderr = 0.0003;
    result.affine.alpha_full_range_reduced_chi2 = 1.3;
    result.affine.eps_aff = -0.0305;
    result.affine.eps_aff_stderr = 0.001;
    result.affine.r_c_angstrom = r_c;
    result.affine.r_c_iterations = 2;
    result.affine.mechanism = mechanism;
    result.affine.corr_stretching = 0.93;
    result.affine.corr_rotation = 0.12;
    result.affine.first_peak_shift_angstrom = 0.045;
    result.s2_chi2 = 812.5;
    result.s2_dof = 5;
    result.s2_consistent_with_zero = false;
    return result;
}

/// A 4 chi x 5 q cake with distinct values per cell.
reduce::Cake make_cake(double scale, std::size_t frame_count) {
    reduce::Cake cake;
    cake.axes = {kNq, 4, 1.0, 6.0};
    for (std::size_t iq = 0; iq < kNq; ++iq) {
        cake.q_inv_angstrom.push_back(cake.axes.q_centre(iq));
    }
    for (std::size_t ichi = 0; ichi < 4; ++ichi) {
        cake.chi_deg.push_back(cake.axes.chi_centre_deg(ichi));
        for (std::size_t iq = 0; iq < kNq; ++iq) {
            const double value = scale * static_cast<double>(10 * ichi + iq + 1);
            cake.intensity.push_back(value);
            cake.variance.push_back(value / 3.0);
            cake.count.push_back(static_cast<double>(ichi + iq + 1));
        }
    }
    cake.intensity_1d.assign(kNq, 1.0);
    cake.variance_1d.assign(kNq, 1.0);
    cake.count_1d.assign(kNq, 4.0);
    cake.frame_count = frame_count;
    return cake;
}

AnalysisFileInfo make_info(bool pn) {
    AnalysisFileInfo info;
    info.program_version = "0.1.0-test";
    info.poni_text = "Distance: 0.5\nWavelength: 1.24e-11\n";
    info.configuration_json = R"({"mode":"pn","nu":0.36,"q_max":24.0})";
    info.sources_p = {"p_0001.h5", "p_0002.h5"};
    if (pn) {
        info.sources_n = {"n_0001.h5"};
    }
    info.sources_dark = {"dark.tif"};
    info.n_frames_p = 20;
    info.n_frames_n = pn ? 10 : 0;
    info.nu = 0.36;
    return info;
}

// ---- raw HDF5 readers, so the writer is checked against code it does not share -------------

class File {
  public:
    explicit File(const fs::path& path) : id_(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT)) {}
    File(const File&) = delete;
    File& operator=(const File&) = delete;
    ~File() {
        if (id_ >= 0) {
            H5Fclose(id_);
        }
    }
    [[nodiscard]] hid_t id() const { return id_; }

  private:
    hid_t id_;
};

bool exists(const File& file, const std::string& path) {
    return H5Lexists(file.id(), path.c_str(), H5P_DEFAULT) > 0;
}

struct Array {
    std::vector<hsize_t> dims;
    std::vector<double> values;
};

Array read_doubles(const File& file, const std::string& path) {
    Array array;
    const hid_t dataset = H5Dopen2(file.id(), path.c_str(), H5P_DEFAULT);
    if (dataset < 0) {
        ADD_FAILURE() << "no dataset " << path;
        return array;
    }
    const hid_t space = H5Dget_space(dataset);
    array.dims.resize(static_cast<std::size_t>(H5Sget_simple_extent_ndims(space)));
    H5Sget_simple_extent_dims(space, array.dims.data(), nullptr);
    array.values.resize(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
    EXPECT_GE(
        H5Dread(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, array.values.data()), 0)
        << path;
    H5Sclose(space);
    H5Dclose(dataset);
    return array;
}

double read_scalar(const File& file, const std::string& path) {
    const Array array = read_doubles(file, path);
    EXPECT_TRUE(array.dims.empty()) << path << " is not a scalar";
    return array.values.empty() ? kNan : array.values[0];
}

std::vector<std::string> read_strings(const File& file, const std::string& path) {
    std::vector<std::string> values;
    const hid_t dataset = H5Dopen2(file.id(), path.c_str(), H5P_DEFAULT);
    if (dataset < 0) {
        ADD_FAILURE() << "no dataset " << path;
        return values;
    }
    const hid_t type = H5Dget_type(dataset);
    const hid_t space = H5Dget_space(dataset);
    EXPECT_EQ(H5Tget_class(type), H5T_STRING) << path;
    EXPECT_GT(H5Tis_variable_str(type), 0) << path;
    std::vector<char*> texts(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
    if (!texts.empty()) {
        EXPECT_GE(H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, texts.data()), 0);
        for (char* text : texts) {
            values.emplace_back(text != nullptr ? text : "");
        }
        H5Dvlen_reclaim(type, space, H5P_DEFAULT, texts.data());
    }
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(dataset);
    return values;
}

template <class T>
T read_number_attr(const File& file, const std::string& object, const char* name) {
    T value{};
    const hid_t attribute =
        H5Aopen_by_name(file.id(), object.c_str(), name, H5P_DEFAULT, H5P_DEFAULT);
    if (attribute < 0) {
        ADD_FAILURE() << "no attribute " << object << "@" << name;
        return value;
    }
    const hid_t memory_type = std::is_same_v<T, double> ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64;
    EXPECT_GE(H5Aread(attribute, memory_type, &value), 0);
    H5Aclose(attribute);
    return value;
}

std::vector<std::string> attr(const fs::path& file, const std::string& object, const char* name) {
    return fixtures::read_string_attribute(file, object, name);
}

/// Element-wise equality where NaN equals NaN.
void expect_same(const std::vector<double>& got, const std::vector<double>& expected,
                 const std::string& what) {
    ASSERT_EQ(got.size(), expected.size()) << what;
    for (std::size_t i = 0; i < got.size(); ++i) {
        if (std::isnan(expected[i])) {
            EXPECT_TRUE(std::isnan(got[i])) << what << "[" << i << "]";
        } else {
            EXPECT_EQ(got[i], expected[i]) << what << "[" << i << "]";
        }
    }
}

void expect_dataset(const File& file, const std::string& path, const std::vector<double>& values) {
    const Array array = read_doubles(file, path);
    EXPECT_THAT(array.dims, ElementsAre(values.size())) << path;
    expect_same(array.values, values, path);
}

// ---- RESULT.h5 ------------------------------------------------------------------------------

TEST(AnalysisFile, WritesNexusLayoutWithUnitsSignalsAndNormalisationInPnMode) {
    const fs::path path = testing::scratch_dir() / "RESULT.h5";
    const auto result = make_result(6.5, physics::Mechanism::kBondStretching);
    const reduce::Cake cake_p = make_cake(1.0, 20);
    const reduce::Cake cake_n = make_cake(2.0, 10);
    auto written = write_analysis_file(path, result, cake_p, &cake_n, make_info(true));
    ASSERT_TRUE(written.has_value()) << written.error().message;

    EXPECT_THAT(attr(path, "/", "NX_class"), ElementsAre("NXroot"));
    EXPECT_THAT(attr(path, "/", "default"), ElementsAre("entry"));
    EXPECT_THAT(attr(path, "/entry", "NX_class"), ElementsAre("NXentry"));
    EXPECT_THAT(attr(path, "/entry", "default"), ElementsAre("pdf"));
    EXPECT_THAT(attr(path, "/entry/program_name", "version"), ElementsAre("0.1.0-test"));

    const File file(path);
    ASSERT_GE(file.id(), 0);

    // structure: S0, S2 and the raw harmonics on the Q grid (SPEC 4 normalisation stated).
    EXPECT_THAT(attr(path, "/entry/structure", "NX_class"), ElementsAre("NXdata"));
    EXPECT_THAT(attr(path, "/entry/structure", "signal"), ElementsAre("s0"));
    EXPECT_THAT(attr(path, "/entry/structure", "axes"), ElementsAre("q"));
    EXPECT_THAT(attr(path, "/entry/structure", "normalisation"),
                ElementsAre("paper: S(Q,psi) = S0 + sqrt5 S2 P2(cos psi)"));
    EXPECT_EQ(read_number_attr<double>(file, "/entry/structure", "scale_n"), 123.25);
    EXPECT_THAT(attr(path, "/entry/structure/q", "units"), ElementsAre("1/angstrom"));
    expect_dataset(file, "/entry/structure/q", result.structure.s0.q_inv_angstrom);
    expect_dataset(file, "/entry/structure/s0", result.structure.s0.value);
    expect_dataset(file, "/entry/structure/s0_variance", result.structure.s0.variance);
    expect_dataset(file, "/entry/structure/s2", result.structure.s2.value);
    expect_dataset(file, "/entry/structure/s2_variance", result.structure.s2.variance);
    expect_dataset(file, "/entry/structure/i0", result.harmonics.i0.value);
    expect_dataset(file, "/entry/structure/i0_variance", result.harmonics.i0.variance);
    expect_dataset(file, "/entry/structure/a2", result.harmonics.a2.value);
    expect_dataset(file, "/entry/structure/a2_variance", result.harmonics.a2.variance);

    // pdf: g0, g2, G, the affine model and eps(r) on the r grid; A(r) on its own grid.
    EXPECT_THAT(attr(path, "/entry/pdf", "NX_class"), ElementsAre("NXdata"));
    EXPECT_THAT(attr(path, "/entry/pdf", "signal"), ElementsAre("g0"));
    EXPECT_THAT(attr(path, "/entry/pdf", "axes"), ElementsAre("r"));
    EXPECT_THAT(attr(path, "/entry/pdf", "auxiliary_signals"), ElementsAre("g2", "G"));
    EXPECT_THAT(attr(path, "/entry/pdf/r", "units"), ElementsAre("angstrom"));
    EXPECT_THAT(attr(path, "/entry/pdf/G", "units"), ElementsAre("1/angstrom^2"));
    EXPECT_THAT(attr(path, "/entry/pdf/local_ratio_r", "units"), ElementsAre("angstrom"));
    expect_dataset(file, "/entry/pdf/r", result.g0.r_angstrom);
    expect_dataset(file, "/entry/pdf/g0", result.g0.value);
    expect_dataset(file, "/entry/pdf/g0_variance", result.g0.variance);
    expect_dataset(file, "/entry/pdf/g2", result.g2.value);
    expect_dataset(file, "/entry/pdf/g2_variance", result.g2.variance);
    expect_dataset(file, "/entry/pdf/G", result.reduced_g.value);
    expect_dataset(file, "/entry/pdf/affine_g2", result.affine.affine_g2.value);
    expect_dataset(file, "/entry/pdf/eps_r", result.affine.eps_r.value);  // NaN ends kept
    expect_dataset(file, "/entry/pdf/local_ratio_r", result.affine.local_ratio.r_angstrom);
    expect_dataset(file, "/entry/pdf/local_ratio", result.affine.local_ratio.value);
    expect_dataset(file, "/entry/pdf/local_ratio_variance", result.affine.local_ratio.variance);

    // results: the SUMMARY.json numbers.
    EXPECT_EQ(read_scalar(file, "/entry/results/alpha"), -0.0123);
    EXPECT_EQ(read_scalar(file, "/entry/results/alpha_stderr"), 0.0004);
    EXPECT_EQ(read_scalar(file, "/entry/results/alpha_reduced_chi2"), 1.1);
    EXPECT_EQ(read_scalar(file, "/entry/results/alpha_full_range"), -0.0119);
    EXPECT_EQ(read_scalar(file, "/entry/results/alpha_full_range_stderr"), 0.0003);
    EXPECT_EQ(read_scalar(file, "/entry/results/alpha_full_range_reduced_chi2"), 1.3);
    EXPECT_EQ(read_scalar(file, "/entry/results/eps_aff"), -0.0305);
    EXPECT_EQ(read_scalar(file, "/entry/results/eps_aff_stderr"), 0.001);
    EXPECT_EQ(read_scalar(file, "/entry/results/nu"), 0.36);
    EXPECT_EQ(read_scalar(file, "/entry/results/r_c_angstrom"), 6.5);
    EXPECT_EQ(read_number_attr<std::int64_t>(file, "/entry/results/r_c_angstrom", "found"), 1);
    EXPECT_THAT(attr(path, "/entry/results/r_c_angstrom", "units"), ElementsAre("angstrom"));
    EXPECT_THAT(read_strings(file, "/entry/results/mechanism"), ElementsAre("bond-stretching"));
    EXPECT_EQ(read_scalar(file, "/entry/results/corr_stretching"), 0.93);
    EXPECT_EQ(read_scalar(file, "/entry/results/corr_rotation"), 0.12);
    EXPECT_EQ(read_scalar(file, "/entry/results/first_peak_shift_angstrom"), 0.045);
    EXPECT_EQ(read_scalar(file, "/entry/results/s2_chi2"), 812.5);
    EXPECT_EQ(read_scalar(file, "/entry/results/s2_dof"), 5.0);
    EXPECT_EQ(read_scalar(file, "/entry/results/s2_consistent_with_zero"), 0.0);
    EXPECT_EQ(read_scalar(file, "/entry/results/n_frames_p"), 20.0);
    EXPECT_EQ(read_scalar(file, "/entry/results/n_frames_n"), 10.0);

    // cakes: both orientations, [n_chi, n_q].
    const std::pair<std::string, const reduce::Cake*> cakes[] = {{"/entry/cakes/p", &cake_p},
                                                                 {"/entry/cakes/n", &cake_n}};
    for (const auto& [group, cake] : cakes) {
        EXPECT_THAT(attr(path, group, "signal"), ElementsAre("intensity")) << group;
        EXPECT_THAT(attr(path, group, "axes"), ElementsAre("chi", "q")) << group;
        const Array intensity = read_doubles(file, group + "/intensity");
        EXPECT_THAT(intensity.dims, ElementsAre(4, kNq)) << group;
        expect_same(intensity.values, cake->intensity, group + "/intensity");
        expect_same(read_doubles(file, group + "/variance").values, cake->variance,
                    group + "/variance");
        expect_same(read_doubles(file, group + "/count").values, cake->count, group + "/count");
        expect_dataset(file, group + "/q", cake->q_inv_angstrom);
        expect_dataset(file, group + "/chi", cake->chi_deg);
        EXPECT_THAT(attr(path, group + "/q", "units"), ElementsAre("1/angstrom"));
        EXPECT_THAT(attr(path, group + "/chi", "units"), ElementsAre("deg"));
    }

    // process: provenance, the configuration verbatim.
    EXPECT_THAT(attr(path, "/entry/process", "NX_class"), ElementsAre("NXprocess"));
    EXPECT_THAT(read_strings(file, "/entry/process/program"), ElementsAre("anisoflow"));
    EXPECT_THAT(read_strings(file, "/entry/process/version"), ElementsAre("0.1.0-test"));
    EXPECT_THAT(read_strings(file, "/entry/process/poni"),
                ElementsAre("Distance: 0.5\nWavelength: 1.24e-11\n"));
    EXPECT_THAT(read_strings(file, "/entry/process/configuration"),
                ElementsAre(R"({"mode":"pn","nu":0.36,"q_max":24.0})"));
    EXPECT_THAT(read_strings(file, "/entry/process/sources_p"),
                ElementsAre("p_0001.h5", "p_0002.h5"));
    EXPECT_THAT(read_strings(file, "/entry/process/sources_n"), ElementsAre("n_0001.h5"));
    EXPECT_THAT(read_strings(file, "/entry/process/sources_dark"), ElementsAre("dark.tif"));
}

TEST(AnalysisFile, SingleModeHasNoNCakeAndMarksAMissingCrossoverAsNanNotFound) {
    const fs::path path = testing::scratch_dir() / "single.h5";
    const auto result = make_result(std::nullopt, physics::Mechanism::kIsotropic);
    auto written = write_analysis_file(path, result, make_cake(1.0, 3), nullptr, make_info(false));
    ASSERT_TRUE(written.has_value()) << written.error().message;

    const File file(path);
    ASSERT_GE(file.id(), 0);
    EXPECT_TRUE(exists(file, "/entry/cakes/p"));
    EXPECT_FALSE(exists(file, "/entry/cakes/n"));
    EXPECT_TRUE(std::isnan(read_scalar(file, "/entry/results/r_c_angstrom")));
    EXPECT_EQ(read_number_attr<std::int64_t>(file, "/entry/results/r_c_angstrom", "found"), 0);
    EXPECT_THAT(read_strings(file, "/entry/results/mechanism"), ElementsAre("isotropic"));
    EXPECT_EQ(read_scalar(file, "/entry/results/n_frames_n"), 0.0);
    EXPECT_THAT(read_strings(file, "/entry/process/sources_n"), ::testing::IsEmpty());
}

TEST(AnalysisFile, ReplacesAnExistingFileAndLeavesNoPartialFileBehind) {
    const fs::path dir = testing::scratch_dir();
    const fs::path path = dir / "again.h5";
    const reduce::Cake cake = make_cake(1.0, 1);
    ASSERT_TRUE(write_analysis_file(path, make_result(4.0, physics::Mechanism::kBondRotation), cake,
                                    nullptr, make_info(false)));
    ASSERT_TRUE(write_analysis_file(path, make_result(8.0, physics::Mechanism::kBondRotation), cake,
                                    nullptr, make_info(false)));
    const File file(path);
    EXPECT_EQ(read_scalar(file, "/entry/results/r_c_angstrom"), 8.0);
    EXPECT_THAT(read_strings(file, "/entry/results/mechanism"), ElementsAre("bond-rotation"));
    EXPECT_FALSE(fs::exists(dir / "again.h5.partial"));
}

TEST(AnalysisFile, RejectsCurvesOfInconsistentLengthNamingTheCurveAndWritesNothing) {
    const fs::path path = testing::scratch_dir() / "bad.h5";
    auto result = make_result(6.5, physics::Mechanism::kBondStretching);
    result.g2.variance.pop_back();
    auto written = write_analysis_file(path, result, make_cake(1.0, 1), nullptr, make_info(false));
    ASSERT_FALSE(written.has_value());
    EXPECT_EQ(written.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(written.error().message,
                HasSubstr("bad.h5: g2 has 7 grid points, 7 values and 6 variances; expected 7"));
    EXPECT_FALSE(fs::exists(path));

    reduce::Cake short_cake = make_cake(1.0, 1);
    short_cake.count.pop_back();
    const auto good = make_result(6.5, physics::Mechanism::kBondStretching);
    written = write_analysis_file(path, good, make_cake(1.0, 1), &short_cake, make_info(true));
    ASSERT_FALSE(written.has_value());
    EXPECT_THAT(written.error().message, HasSubstr("cake n (4 chi x 5 q bins) has 19 values of "
                                                   "count, expected 20"));
}

TEST(AnalysisFile, ReportsAnUnwritablePathByName) {
    const fs::path path = testing::scratch_dir() / "missing_dir" / "RESULT.h5";
    auto written = write_analysis_file(path, make_result(6.5, physics::Mechanism::kBondStretching),
                                       make_cake(1.0, 1), nullptr, make_info(false));
    ASSERT_FALSE(written.has_value());
    EXPECT_EQ(written.error().code, ErrorCode::kIo);
    EXPECT_THAT(written.error().message, HasSubstr("missing_dir/RESULT.h5: cannot create"));
}

// ---- .gr text -------------------------------------------------------------------------------

std::vector<std::string> read_lines(const fs::path& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) {
        lines.push_back(line);
    }
    return lines;
}

TEST(PdfText, WritesPdfgetx3HeaderAndRowsThatParseBackSkippingNan) {
    const fs::path path = testing::scratch_dir() / "sample.gr";
    physics::RCurve curve{{0.01, 0.02, 0.03, 0.04, 0.05},
                          {-0.123456789012, kNan, 3.14159265358979e-5, 12345.678901234, 0.0},
                          {}};
    auto written = write_pdf_text(
        path, curve, "G", "A^-2",
        {"anisoflow 0.1.0", "composition = Zr52.5Cu17.9Ni14.6Al10Ti5", "qmin = 0.5\nqmax = 24.0"});
    ASSERT_TRUE(written.has_value()) << written.error().message;

    const std::vector<std::string> lines = read_lines(path);
    ASSERT_EQ(lines.size(), 4u + 3u + 4u);  // header, data start, the four finite rows
    EXPECT_EQ(lines[0], "# anisoflow 0.1.0");
    EXPECT_EQ(lines[1], "# composition = Zr52.5Cu17.9Ni14.6Al10Ti5");
    EXPECT_EQ(lines[2], "# qmin = 0.5");
    EXPECT_EQ(lines[3], "# qmax = 24.0");
    EXPECT_EQ(lines[4], "#### start data");
    EXPECT_EQ(lines[5], "#S 1");
    EXPECT_EQ(lines[6], R"(#L r($\AA$)  G($\AA^{-2}$))");

    std::vector<double> r;
    std::vector<double> value;
    for (std::size_t i = 7; i < lines.size(); ++i) {
        std::istringstream row(lines[i]);
        double a = kNan;
        double b = kNan;
        std::string rest;
        ASSERT_TRUE(row >> a >> b) << lines[i];
        EXPECT_FALSE(row >> rest) << "two columns expected: " << lines[i];
        r.push_back(a);
        value.push_back(b);
    }
    const std::vector<std::size_t> kept{0, 2, 3, 4};  // the NaN row (index 1) is skipped
    ASSERT_EQ(r.size(), kept.size());
    for (std::size_t k = 0; k < kept.size(); ++k) {
        const std::size_t i = kept[k];
        EXPECT_NEAR(r[k], curve.r_angstrom[i], kTextRAbsoluteTolerance) << "row " << k;
        EXPECT_NEAR(value[k], curve.value[i],
                    kTextValueRelativeTolerance * std::abs(curve.value[i]))
            << "row " << k;
    }
    EXPECT_EQ(lines[7], "0.010000 -1.23456789e-01");  // %.6f %.8e
}

TEST(PdfText, LabelsDimensionlessCurvesWithTheirName) {
    const fs::path path = testing::scratch_dir() / "g0.gr";
    const physics::RCurve curve{{1.0, 2.0}, {0.5, 1.5}, {0.1, 0.1}};
    ASSERT_TRUE(write_pdf_text(path, curve, "g0", "", {}));
    const std::vector<std::string> lines = read_lines(path);
    ASSERT_EQ(lines.size(), 5u);
    EXPECT_EQ(lines[0], "#### start data");
    EXPECT_EQ(lines[2], R"(#L r($\AA$)  g0(r))");
    EXPECT_EQ(lines[4], "2.000000 1.50000000e+00");

    ASSERT_TRUE(write_pdf_text(path, curve, "g2", "", {}));
    EXPECT_EQ(read_lines(path)[2], R"(#L r($\AA$)  g2(r))");
}

TEST(PdfText, RejectsUnknownQuantityMismatchedCurveAndUnwritablePath) {
    const fs::path dir = testing::scratch_dir();
    const physics::RCurve curve{{1.0, 2.0}, {0.5, 1.5}, {}};
    auto unknown = write_pdf_text(dir / "s.gr", curve, "S0", "", {});
    ASSERT_FALSE(unknown.has_value());
    EXPECT_EQ(unknown.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(unknown.error().message, HasSubstr("s.gr: unknown PDF quantity 'S0'"));

    const physics::RCurve ragged{{1.0, 2.0}, {0.5}, {}};
    auto mismatched = write_pdf_text(dir / "r.gr", ragged, "G", "A^-2", {});
    ASSERT_FALSE(mismatched.has_value());
    EXPECT_THAT(mismatched.error().message, HasSubstr("r.gr: G has 2 r points but 1 values"));

    auto unwritable = write_pdf_text(dir / "missing_dir" / "G.gr", curve, "G", "A^-2", {});
    ASSERT_FALSE(unwritable.has_value());
    EXPECT_EQ(unwritable.error().code, ErrorCode::kIo);
    EXPECT_THAT(unwritable.error().message, HasSubstr("missing_dir/G.gr: cannot create"));
}

}  // namespace
}  // namespace anisoflow::io
