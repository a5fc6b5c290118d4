// `anisoflow demo` end to end: the real binary (ANISOFLOW_CLI) starts the four service binaries
// of the same build tree as child processes, streams a small simulated run through them and
// prints the live results; the archive file it names is read back with the HDF5 C API.

#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include "anisoflow/testing/cli_runner.hpp"
#include "anisoflow/testing/hdf5_values.hpp"

namespace {

using anisoflow::testing::read_fixed_string;

namespace fs = std::filesystem;

// ipc:// socket paths are short: keep the demo directory in the system's temporary directory.
class DemoCli : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("afdemo-" + std::to_string(::getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override {
        if (!HasFailure()) {
            fs::remove_all(dir_);
        }
    }
    fs::path dir_;
};

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        lines.push_back(line);
    }
    return lines;
}

bool starts_with(const std::string& text, const std::string& prefix) {
    return text.rfind(prefix, 0) == 0;
}

hsize_t rows_of(hid_t file, const char* name) {
    const hid_t dataset = H5Dopen2(file, name, H5P_DEFAULT);
    if (dataset < 0) {
        return 0;
    }
    const hid_t space = H5Dget_space(dataset);
    hsize_t dims[4] = {0, 0, 0, 0};
    H5Sget_simple_extent_dims(space, dims, nullptr);
    H5Sclose(space);
    H5Dclose(dataset);
    return dims[0];
}

TEST_F(DemoCli, StreamsASimulatedRunThroughEveryServiceAndArchivesIt) {
    constexpr int kFrames = 2;  // per orientation
    const fs::path out = dir_ / "demo";
    // 256x256 pixels of 200 um at 8 cm reach Q ~ 19 1/A at 100 keV: enough for g(r).
    const auto run = anisoflow::testing::run_cli(
        ANISOFLOW_CLI, dir_,
        {"--log-level", "warn", "demo", "--out-dir", out.string(), "--rows", "256", "--cols", "256",
         "--distance", "0.08", "--frames", std::to_string(kFrames), "--fps", "0", "--reducers", "2",
         "--run-timeout", "120"});
    ASSERT_EQ(run.exit_code, 0) << anisoflow::testing::describe(run);

    std::vector<std::string> results;
    std::string archive_line;
    for (const std::string& line : lines_of(run.out)) {
        if (starts_with(line, "update") || starts_with(line, "final")) {
            results.push_back(line);
        }
        if (starts_with(line, "archive: ")) {
            archive_line = line;
        }
    }
    ASSERT_FALSE(results.empty()) << anisoflow::testing::describe(run);
    const std::string& final_line = results.back();
    EXPECT_TRUE(starts_with(final_line, "final")) << anisoflow::testing::describe(run);
    EXPECT_NE(final_line.find("alpha = "), std::string::npos) << final_line;
    EXPECT_NE(final_line.find(" +- "), std::string::npos) << final_line;
    EXPECT_NE(final_line.find("eps_aff = "), std::string::npos) << final_line;
    EXPECT_NE(final_line.find("r_c = "), std::string::npos) << final_line;
    EXPECT_NE(final_line.find("mechanism = "), std::string::npos) << final_line;
    const std::string all_frames = "frames P " + std::to_string(kFrames) + "/" +
                                   std::to_string(kFrames) + " N " + std::to_string(kFrames) + "/" +
                                   std::to_string(kFrames);
    EXPECT_NE(final_line.find(all_frames), std::string::npos) << final_line;

    // The children's logs are where docs/demo.md says.
    for (const char* service :
         {"ingest", "reduce-0", "reduce-1", "analyze", "archive", "gateway"}) {
        EXPECT_TRUE(fs::exists(out / "logs" / (std::string(service) + ".log"))) << service;
    }
    // Where a Prometheus server finds every service's metrics (file_sd), and the dashboard.
    const std::string targets = anisoflow::testing::read_text(out / "prometheus" / "targets.json");
    for (const char* instance : {"\"ingest\"", "\"reduce-1\"", "\"gateway\""}) {
        EXPECT_NE(targets.find(instance), std::string::npos) << targets;
    }
    EXPECT_NE(run.out.find("dashboard: http://127.0.0.1:"), std::string::npos) << run.out;

    ASSERT_FALSE(archive_line.empty()) << anisoflow::testing::describe(run);
    const fs::path archive = archive_line.substr(std::string("archive: ").size());
    ASSERT_TRUE(fs::exists(archive)) << archive;
    const hid_t file = H5Fopen(archive.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(file, 0) << archive;
    EXPECT_EQ(read_fixed_string(file, "/entry/run_state"), "completed");
    EXPECT_EQ(rows_of(file, "/entry/reduced/sequence"), static_cast<hsize_t>(2 * kFrames));
    EXPECT_EQ(rows_of(file, "/entry/reduced/intensity"), static_cast<hsize_t>(2 * kFrames));
    EXPECT_GE(rows_of(file, "/entry/results/alpha"), static_cast<hsize_t>(1));
    H5Fclose(file);
}

TEST_F(DemoCli, NamesTheMissingServiceBinary) {
    const auto run = anisoflow::testing::run_cli(
        ANISOFLOW_CLI, dir_,
        {"demo", "--out-dir", (dir_ / "demo").string(), "--services-dir", dir_.string()});
    EXPECT_EQ(run.exit_code, 1) << anisoflow::testing::describe(run);
    EXPECT_NE(run.err.find("anisoflow-ingest not found"), std::string::npos)
        << anisoflow::testing::describe(run);
}

}  // namespace
