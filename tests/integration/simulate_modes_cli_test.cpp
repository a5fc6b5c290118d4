// `anisoflow simulate --mode radial|rotation` end to end: the real binary (ANISOFLOW_CLI) runs as a
// child process on a small detector; the frame stacks are read back and simulation.json must
// record each mode's parameters. The physics of the modes is tested in strain_modes_test.cpp.

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <numbers>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "anisoflow/geometry/detector_geometry.hpp"
#include "anisoflow/io/frame_source.hpp"
#include "anisoflow/io/poni_file.hpp"
#include "anisoflow/testing/cli_runner.hpp"
#include "anisoflow/testing/test_paths.hpp"

namespace anisoflow {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using testing::CliRun;
using testing::concat;
using testing::describe;
using testing::read_text;

CliRun run_cli(const fs::path& dir, const std::vector<std::string>& args) {
    return testing::run_cli(ANISOFLOW_CLI, dir, args);
}

// 128x128 pixels of 200 um at 15 cm, 100 keV: full rings to Q ~ 4.3 1/A (0.07 1/A a pixel),
// two noiseless frames.
std::vector<std::string> small_simulation(const fs::path& out_dir, const std::string& mode) {
    return {"simulate", "--out-dir",  out_dir.string(),
            "--rows",   "128",        "--cols",
            "128",      "--distance", "0.15",
            "--frames", "2",          "--darks",
            "1",        "--mode",     mode,
            "--seed",   "5",          "--noiseless"};
}

nlohmann::json read_json(const fs::path& path) { return nlohmann::json::parse(read_text(path)); }

std::vector<std::uint16_t> frame_pixels(const fs::path& stack, std::size_t index) {
    auto source = io::open_frame_source(stack.string());
    EXPECT_TRUE(source.has_value()) << stack;
    auto frame = (*source)->read_frame(index);
    EXPECT_TRUE(frame.has_value()) << stack;
    return std::get<std::vector<std::uint16_t>>(frame->pixels);
}

// Mean counts of P minus N over pixels within 0.05 1/A of q and 10 deg of the loading axis in P
// (chi = 0): SPEC 4 puts sqrt5 S2(q) P2(~1) there in P and sqrt5 S2(q) P2(~0) in N.
double p_minus_n_on_axis(const fs::path& sim, double q) {
    auto poni = io::read_poni_file(sim / "geometry.poni");
    EXPECT_TRUE(poni.has_value());
    const geometry::DetectorGeometry geometry(poni->geometry);
    const auto p = frame_pixels(sim / "p.h5", 0);
    const auto n = frame_pixels(sim / "n.h5", 0);
    double sum = 0.0;
    int count = 0;
    const FrameShape shape = geometry.shape();
    for (std::size_t row = 0; row < shape.rows; ++row) {
        for (std::size_t col = 0; col < shape.cols; ++col) {
            const auto angles = geometry.pixel_centre(row, col);
            if (std::abs(geometry.q_inv_angstrom(angles.two_theta_rad) - q) < 0.05 &&
                std::abs(angles.chi_rad) < 10.0 * std::numbers::pi / 180.0) {
                const std::size_t i = row * shape.cols + col;
                sum += static_cast<double>(p[i]) - static_cast<double>(n[i]);
                ++count;
            }
        }
    }
    EXPECT_GT(count, 3);
    return sum / count;
}

TEST(SimulateModesCli, HelpListsTheModesAndTheirOptions) {
    const fs::path dir = testing::scratch_dir();
    const CliRun help = run_cli(dir, {"simulate", "--help"});
    ASSERT_EQ(help.exit_code, 0) << describe(help);
    for (const char* text : {"radial", "rotation", "--radial-rc", "--radial-width", "--radial-drop",
                             "--rotation-amplitude"}) {
        EXPECT_THAT(help.out, HasSubstr(text)) << text;
    }
}

TEST(SimulateModesCli, RadialWritesFramesAndRecordsTheStep) {
    const fs::path dir = testing::scratch_dir();
    const CliRun run = run_cli(dir, small_simulation(dir / "sim", "radial"));
    ASSERT_EQ(run.exit_code, 0) << describe(run);
    for (const char* name : {"p.h5", "n.h5"}) {
        auto source = io::open_frame_source((dir / "sim" / name).string());
        ASSERT_TRUE(source.has_value()) << name;
        EXPECT_EQ((*source)->frame_count(), 2U) << name;
        EXPECT_EQ((*source)->shape(), (FrameShape{128, 128})) << name;
    }
    const nlohmann::json record = read_json(dir / "sim" / "simulation.json");
    EXPECT_EQ(record["mode"], "radial");
    EXPECT_DOUBLE_EQ(record["eps_aff"].get<double>(), 0.006);
    // alpha = 2 (1 + nu) eps_aff / (3 sqrt5), the long-range part (SPEC 7).
    EXPECT_NEAR(record["alpha_expected"].get<double>(), 2 * 1.37 * 0.006 / (3 * std::sqrt(5.0)),
                1e-15);
    const nlohmann::json& radial = record["radial"];
    EXPECT_DOUBLE_EQ(radial["step_centre_angstrom"].get<double>(), 11.0);
    EXPECT_DOUBLE_EQ(radial["step_width_angstrom"].get<double>(), 0.5);
    EXPECT_DOUBLE_EQ(radial["inner_drop"].get<double>(), 0.5);
    EXPECT_NEAR(radial["eps_inner"].get<double>(), 0.003, 1e-12);
    // Compression: the first peak's falling edge is brighter along the axis (as for affine).
    EXPECT_GT(p_minus_n_on_axis(dir / "sim", 3.0), 0.0);
    EXPECT_LT(p_minus_n_on_axis(dir / "sim", 2.5), 0.0);

    const CliRun custom = run_cli(dir, concat(small_simulation(dir / "custom", "radial"),
                                              {"--radial-rc", "9", "--radial-width", "0.4",
                                               "--radial-drop", "0.3", "--eps", "0.004"}));
    ASSERT_EQ(custom.exit_code, 0) << describe(custom);
    const nlohmann::json custom_record = read_json(dir / "custom" / "simulation.json");
    EXPECT_DOUBLE_EQ(custom_record["radial"]["step_centre_angstrom"].get<double>(), 9.0);
    EXPECT_DOUBLE_EQ(custom_record["radial"]["step_width_angstrom"].get<double>(), 0.4);
    EXPECT_DOUBLE_EQ(custom_record["radial"]["inner_drop"].get<double>(), 0.3);
    EXPECT_NEAR(custom_record["radial"]["eps_inner"].get<double>(), 0.004 * 0.7, 1e-12);
    EXPECT_DOUBLE_EQ(custom_record["eps_aff"].get<double>(), 0.004);
}

TEST(SimulateModesCli, RotationWritesFramesAndRecordsBeta) {
    const fs::path dir = testing::scratch_dir();
    const CliRun run = run_cli(dir, small_simulation(dir / "sim", "rotation"));
    ASSERT_EQ(run.exit_code, 0) << describe(run);
    const nlohmann::json record = read_json(dir / "sim" / "simulation.json");
    EXPECT_EQ(record["mode"], "rotation");
    // No bond-length change: no affine part.
    EXPECT_EQ(record["eps_aff"].get<double>(), 0.0);
    EXPECT_EQ(record["alpha_expected"].get<double>(), 0.0);
    const nlohmann::json& rotation = record["rotation"];
    EXPECT_GT(rotation["beta"].get<double>(), 0.0);
    EXPECT_DOUBLE_EQ(rotation["amplitude"].get<double>(), 1.0);
    EXPECT_DOUBLE_EQ(rotation["taper_start_angstrom"].get<double>(), 7.0);
    EXPECT_DOUBLE_EQ(rotation["taper_end_angstrom"].get<double>(), 9.0);
    // beta > 0: more first-shell pairs along the compressed axis, so at the first peak
    // (S2 ~ 2 beta there) P is brighter than N on the axis.
    EXPECT_GT(p_minus_n_on_axis(dir / "sim", 2.7), 0.0);

    const CliRun twice = run_cli(
        dir, concat(small_simulation(dir / "twice", "rotation"), {"--rotation-amplitude", "2"}));
    ASSERT_EQ(twice.exit_code, 0) << describe(twice);
    EXPECT_NEAR(read_json(dir / "twice" / "simulation.json")["rotation"]["beta"].get<double>(),
                2.0 * rotation["beta"].get<double>(), 1e-12);
}

TEST(SimulateModesCli, BadModeParametersAreNamed) {
    const fs::path dir = testing::scratch_dir();
    const CliRun width =
        run_cli(dir, concat(small_simulation(dir / "a", "radial"), {"--radial-width", "0"}));
    EXPECT_EQ(width.exit_code, 1) << describe(width);
    EXPECT_THAT(width.err, HasSubstr("--radial-width 0")) << describe(width);
    const CliRun sharp =
        run_cli(dir, concat(small_simulation(dir / "b", "rotation"), {"--debye-waller", "0.01"}));
    EXPECT_EQ(sharp.exit_code, 1) << describe(sharp);
    EXPECT_THAT(sharp.err, HasSubstr("--debye-waller")) << describe(sharp);
}

}  // namespace
}  // namespace anisoflow
