// Issue 4 acceptance, end to end with real processes: `anisoflow demo` runs ingest, two reduce
// workers, analyze and archive as child processes over loopback and streams 40 + 40 simulated
// frames through them. Then:
// - the final result equals `anisoflow analyze` on the same frames, written to files by
//   `anisoflow simulate` with the same seed (every SUMMARY.json number to 1e-9 relative: only
//   the order of floating-point sums may differ);
// - the run file, read back with the HDF5 C API, holds every raw frame (the raw frame feed) and
//   every frame's cake once, and the result series ending with the final result;
// - the services' metrics, scraped over HTTP by the demo before it stopped them, show every
//   frame dispatched, reduced and merged, none missing.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <hdf5.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "anisoflow/testing/cli_runner.hpp"
#include "anisoflow/testing/hdf5_values.hpp"

namespace {

using anisoflow::testing::read_fixed_string;
using anisoflow::testing::read_u64;

namespace fs = std::filesystem;
using anisoflow::testing::describe;
using anisoflow::testing::run_cli;

constexpr int kFramesPerOrientation = 40;
constexpr double kSummationOrderRelativeTolerance = 1e-9;

// The simulated run: 256 x 256 pixels of 200 um at 8 cm reach Q ~ 19 1/A at 100 keV, enough
// for g(r); every other parameter is the simulator's default in both commands.
const std::vector<std::string> kRun = {
    "--rows",     "256",    "--cols",   "256",
    "--distance", "0.08",   "--frames", std::to_string(kFramesPerOrientation),
    "--mode",     "affine", "--eps",    "0.006",
    "--seed",     "11"};

nlohmann::json read_json(const fs::path& path) {
    std::ifstream in(path);
    return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

class PipelineAcceptance : public ::testing::Test {
  protected:
    void SetUp() override {
        // ipc:// socket paths are short: the system's temporary directory, not the build tree.
        dir_ = fs::temp_directory_path() / ("afaccept-" + std::to_string(::getpid()));
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

TEST_F(PipelineAcceptance, LiveResultEqualsOfflineAnalysisAndEveryFrameIsArchivedAndCounted) {
    const fs::path demo_json = dir_ / "demo.json";
    const auto demo = run_cli(
        ANISOFLOW_CLI, dir_,
        anisoflow::testing::concat(
            {"--log-level", "warn", "demo", "--out-dir", (dir_ / "demo").string(), "--reducers",
             "2", "--fps", "0", "--run-timeout", "300", "--json", demo_json.string()},
            kRun));
    ASSERT_EQ(demo.exit_code, 0) << describe(demo);
    const nlohmann::json live = read_json(demo_json);
    ASSERT_TRUE(live.is_object()) << demo_json;

    // The same frames, offline: simulate to files, analyze them with the run's configuration
    // (the simulator announces analyze's defaults in its RunStart, and the flat panel's noise
    // model with the read noise left to the darks).
    const auto reference = anisoflow::testing::run_offline_analysis(ANISOFLOW_CLI, dir_, kRun);
    ASSERT_EQ(reference.simulated.exit_code, 0) << describe(reference.simulated);
    ASSERT_EQ(reference.analyzed.exit_code, 0) << describe(reference.analyzed);
    const fs::path& summary_json = reference.summary_json;
    const nlohmann::json offline = read_json(summary_json);
    ASSERT_TRUE(offline.is_object()) << summary_json;

    for (const char* key : {"alpha", "alpha_stderr", "alpha_reduced_chi2", "alpha_full_range",
                            "alpha_full_range_stderr", "alpha_full_range_reduced_chi2", "eps_aff",
                            "eps_aff_stderr", "nu", "corr_stretching", "corr_rotation",
                            "first_peak_shift_angstrom", "s2_chi2", "r_c_angstrom"}) {
        ASSERT_TRUE(live.contains(key) && offline.contains(key)) << key;
        if (offline[key].is_null()) {
            EXPECT_TRUE(live[key].is_null()) << key << " live " << live[key];
            continue;
        }
        ASSERT_TRUE(live[key].is_number()) << key << " live " << live[key];
        const double a = live[key].get<double>();
        const double b = offline[key].get<double>();
        EXPECT_LE(std::abs(a - b),
                  kSummationOrderRelativeTolerance * std::max(std::abs(a), std::abs(b)))
            << key << ": live " << a << ", offline " << b;
    }
    for (const char* key :
         {"mechanism", "mode", "normalisation", "s2_dof", "n_frames_p", "n_frames_n", "version"}) {
        EXPECT_EQ(live.value(key, nlohmann::json()), offline.value(key, nlohmann::json())) << key;
    }
    EXPECT_EQ(live["n_frames_p"], kFramesPerOrientation);
    EXPECT_EQ(live["n_frames_n"], kFramesPerOrientation);

    // The run file: every data frame's cake exactly once, the result series ending final.
    const fs::path archive = live.value("archive", "");
    ASSERT_TRUE(fs::exists(archive)) << archive;
    const hid_t file = H5Fopen(archive.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(file, 0) << archive;
    EXPECT_EQ(read_fixed_string(file, "/entry/run_state"), "completed");
    const auto sequences = read_u64(file, "/entry/reduced/sequence");
    const std::set<std::uint64_t> distinct(sequences.begin(), sequences.end());
    EXPECT_EQ(sequences.size(), 2U * kFramesPerOrientation);
    EXPECT_EQ(distinct.size(), sequences.size()) << "a cake archived twice";
    // Every frame as streamed (2 darks, the flat, 40 P, 40 N) through the raw frame feed, each
    // once: the detector's uint16 frames as bitshuffle-LZ4 chunks in /entry/data, the
    // simulator's float32 flat in the detector's flatfield.
    auto raw_sequences = read_u64(file, "/entry/data/sequence");
    const auto flat_sequences = read_u64(file, "/entry/instrument/detector/flatfield_sequence");
    EXPECT_EQ(flat_sequences.size(), 1U);
    raw_sequences.insert(raw_sequences.end(), flat_sequences.begin(), flat_sequences.end());
    std::sort(raw_sequences.begin(), raw_sequences.end());
    ASSERT_EQ(raw_sequences.size(), 2U * kFramesPerOrientation + 3U);
    for (std::size_t i = 0; i < raw_sequences.size(); ++i) {
        EXPECT_EQ(raw_sequences[i], i) << "raw frame " << i;
    }
    EXPECT_EQ(read_fixed_string(file, "/entry/run_end_detail"), "");
    const auto frames_p = read_u64(file, "/entry/results/frames_p");
    ASSERT_FALSE(frames_p.empty());
    EXPECT_EQ(frames_p.back(), static_cast<std::uint64_t>(kFramesPerOrientation));
    const auto sent = read_u64(file, "/entry/frames_sent");
    ASSERT_EQ(sent.size(), 5U);
    EXPECT_EQ(sent[0], static_cast<std::uint64_t>(kFramesPerOrientation));
    EXPECT_EQ(sent[1], static_cast<std::uint64_t>(kFramesPerOrientation));
    H5Fclose(file);

    // What the services counted, scraped over HTTP before they stopped.
    const nlohmann::json& metrics = live["metrics"];
    ASSERT_TRUE(metrics.is_object()) << live.dump(2);
    const auto count = [&](const char* service, const char* name) {
        const nlohmann::json& samples = metrics.value(service, nlohmann::json::object());
        return samples.contains(name) ? samples[name].get<double>() : -1.0;
    };
    const double data_frames = 2.0 * kFramesPerOrientation;
    EXPECT_EQ(count("ingest", "anisoflow_ingest_frames_acked_total"), data_frames);
    EXPECT_EQ(count("reduce-0", "anisoflow_reduce_frames_reduced_total") +
                  count("reduce-1", "anisoflow_reduce_frames_reduced_total"),
              data_frames);
    EXPECT_EQ(count("analyze", "anisoflow_analyze_frames_merged_total"), data_frames);
    EXPECT_EQ(count("analyze", "anisoflow_analyze_frames_missing_total"), 0.0);
    EXPECT_EQ(count("analyze", "anisoflow_analyze_frames_lost_total"), 0.0);
    EXPECT_EQ(count("analyze", "anisoflow_analyze_frame_to_result_seconds_count"), data_frames);
    // Every data frame's pixels went through ingest: at least 80 x 256 x 256 x 2 bytes out.
    EXPECT_GE(count("ingest", "anisoflow_ingest_bytes_sent_total"), data_frames * 256 * 256 * 2);
    EXPECT_EQ(count("archive", "anisoflow_archive_reduced_frames_written_total"), data_frames);
    EXPECT_EQ(count("archive", "anisoflow_archive_raw_frames_written_total"), data_frames + 3.0);
    EXPECT_EQ(count("ingest", "anisoflow_ingest_raw_frames_sent_total"), data_frames + 3.0);
    EXPECT_GT(count("archive", "anisoflow_archive_bytes_written_total"), 0.0);
}

}  // namespace
