// Run control end to end (docs/run-control.md): the real `anisoflow run` command drives a
// running ingest over its REP socket while the DECTRIS emulator streams two series inside one
// run; the state is switched between series and within one, and a fake reduce worker checks
// every frame's sequence, kind and orientation, the RunEvents on the control PUB and the run log
// RunEnd carries. RunController's refusals are checked directly.

#include "run_control.hpp"

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <hdf5.h>
#include <nlohmann/json.hpp>

#include "anisoflow/runtime/service_thread.hpp"
#include "anisoflow/testing/cli_runner.hpp"

#include "archive_service.hpp"
#include "fixture_writers.hpp"
#include "ingest_harness.hpp"

namespace anisoflow::ingest {
namespace {

using namespace harness;  // NOLINT(google-build-using-namespace): the test's vocabulary
namespace pb = ::anisoflow::stream::v1;
namespace emu = ::anisoflow::dectris::emulator;
namespace fs = std::filesystem;
namespace fixtures = ::anisoflow::io::fixtures;
using namespace std::chrono_literals;

constexpr std::size_t kSide = 64;  // detector pixels per side

// The run's ExperimentConfig as a site writes it for `anisoflow run start --config`.
fs::path write_run_toml(const fs::path& dir) {
    const fs::path path = dir / "run.toml";
    std::ofstream(path) << "composition = \"Zr52.5Cu17.9Ni14.6Al10Ti5\"\n"
                           "density_per_cubic_angstrom = 0.0553\n"
                           "nu = 0.37\n"
                           "loading_axis_chi_deg = 90.0\n"
                           "mode = \"pn\"\n"
                           "normalisation = \"high_q\"\n"
                           "q_min_inv_angstrom = 0.5\nq_max_inv_angstrom = 12.0\n"
                           "n_q = 100\nn_chi = 36\n"
                           "r_max_angstrom = 25.0\nn_r = 500\n"
                           "r_fit_min_angstrom = 2.3\nr_fit_max_angstrom = 20.0\n";
    return path;
}

// A calibration of the 64 x 64 emulated detector (pyFAI PONI 2.1).
fs::path write_poni(const fs::path& dir) {
    const fs::path path = dir / "detector.poni";
    std::ofstream(path)
        << "poni_version: 2.1\n"
           "Detector: Detector\n"
           "Detector_config: {\"pixel1\": 7.5e-05, \"pixel2\": 7.5e-05, \"max_shape\": [64, 64]}\n"
           "Distance: 0.125\nPoni1: 0.0024\nPoni2: 0.0024\nRot1: 0\nRot2: 0\nRot3: 0\n"
           "Wavelength: 1.771e-11\n";
    return path;
}

class RunControlCli {
  public:
    RunControlCli(std::string address, fs::path dir)
        : address_(std::move(address)), dir_(std::move(dir)) {}

    testing::CliRun operator()(const std::vector<std::string>& args) const {
        return testing::run_cli(ANISOFLOW_CLI, dir_,
                                testing::concat({"run", "--address", address_}, args));
    }

  private:
    std::string address_;
    fs::path dir_;
};

// The v2 messages of one series: start, images, end.
std::vector<emu::Multipart> v2_messages(const emu::SeriesSettings& settings) {
    return series_messages(dectris::Protocol::kStreamV2, settings, emu::WireEncoding::kRaw);
}

TEST(RunControl, TheAnisoflowRunCommandTagsEveryFrameWithTheStateInForce) {
    zmq::context_t context;
    FakeDetector detector(context);
    cfg::IngestConfig config = dectris_config(detector.endpoint, dectris::Protocol::kStreamV2);
    const fs::path dir = testing::scratch_dir();  // after dectris_config(), which clears it
    config.mutable_endpoints()->mutable_run_control()->set_address("@tcp://127.0.0.1:*");
    config.mutable_source()->set_dectris_run_file("");  // not read under run control
    RunningIngest ingest(config);
    ASSERT_FALSE(ingest.endpoints().run_control.empty());
    FakeReducer reducer(context, ingest.endpoints());
    const RunControlCli run(ingest.endpoints().run_control, dir);
    const auto wait_frames = [&](std::size_t n) {
        ASSERT_TRUE(reducer.until_frames(n));
        ASSERT_EQ(reducer.frames.size(), n);
    };

    // No run yet: status says so, next is refused by name, a series' images are refused.
    auto status = run({"status"});
    ASSERT_EQ(status.exit_code, 0) << testing::describe(status);
    EXPECT_NE(status.out.find("no run open"), std::string::npos) << status.out;
    auto refused = run({"next", "--kind", "dark"});
    EXPECT_EQ(refused.exit_code, 1) << testing::describe(refused);
    EXPECT_NE(refused.err.find("no run is open"), std::string::npos) << refused.err;
    emu::SeriesSettings early = tiny_series();
    early.width_px = kSide;
    early.height_px = kSide;
    early.number_of_images = 1;
    early.series_id = 1;
    early.series_unique_id = "early";
    for (const auto& message : v2_messages(early)) {
        detector.send(message);
    }
    const auto deadline = Clock::now() + kPatience;
    while (ingest.metrics().find("frames_rejected_total{reason=\"no_run\"} 1") ==
               std::string::npos &&
           Clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
    }

    // Open the run with its configuration and a calibrated geometry, darks first.
    const fs::path toml = write_run_toml(dir);
    const fs::path poni = write_poni(dir);
    auto started = run({"start", "--config", toml.string(), "--poni", poni.string(), "--run-id",
                        "rc-1", "--kind", "dark", "--note", "shutter closed"});
    ASSERT_EQ(started.exit_code, 0) << testing::describe(started);
    // A series' messages and a request reach ingest on different sockets: each step waits
    // until the previous one took effect, as a plan waits for its detector.
    ASSERT_TRUE(reducer.until_events(2));
    auto twice = run({"start", "--config", toml.string(), "--poni", poni.string()});
    EXPECT_EQ(twice.exit_code, 1) << testing::describe(twice);
    EXPECT_NE(twice.err.find("run rc-1 is open"), std::string::npos) << twice.err;
    auto no_orientation = run({"next", "--kind", "data"});
    EXPECT_EQ(no_orientation.exit_code, 2) << testing::describe(no_orientation);

    // Series A: 2 darks, a flat, 2 P frames; the state changes within the series.
    emu::SeriesSettings a = tiny_series();
    a.width_px = kSide;
    a.height_px = kSide;
    a.number_of_images = 5;
    a.series_id = 2;
    a.series_unique_id = "series-a";
    const auto series_a = v2_messages(a);
    detector.send(series_a[0]);
    detector.send(series_a[1]);
    detector.send(series_a[2]);
    wait_frames(2);
    ASSERT_TRUE(reducer.until_events(3));
    ASSERT_EQ(run({"next", "--kind", "flat"}).exit_code, 0);
    detector.send(series_a[3]);
    wait_frames(3);
    ASSERT_EQ(run({"next", "--kind", "data", "--orientation", "P", "--note", "omega 0"}).exit_code,
              0);
    detector.send(series_a[4]);
    detector.send(series_a[5]);
    detector.send(series_a[6]);  // end of series A
    wait_frames(5);
    ASSERT_TRUE(reducer.until_events(6));

    // The sample turns between series; series B: 3 N frames, then a background frame.
    ASSERT_EQ(run({"next", "--kind", "data", "--orientation", "N", "--note", "turned"}).exit_code,
              0);
    emu::SeriesSettings b = a;
    b.number_of_images = 4;
    b.series_id = 3;
    b.series_unique_id = "series-b";
    const auto series_b = v2_messages(b);
    for (std::size_t i = 0; i < 4; ++i) {
        detector.send(series_b[i]);
    }
    wait_frames(8);
    ASSERT_EQ(run({"next", "--kind", "background"}).exit_code, 0);
    detector.send(series_b[4]);
    detector.send(series_b[5]);
    wait_frames(9);
    ASSERT_TRUE(reducer.until_events(10));

    auto json = run({"--json", "status"});
    ASSERT_EQ(json.exit_code, 0) << testing::describe(json);
    const auto reply = nlohmann::json::parse(json.out);
    EXPECT_EQ(reply["status"]["run_id"], "rc-1");
    EXPECT_EQ(reply["status"]["kind"], "FRAME_KIND_BACKGROUND");
    EXPECT_EQ(reply["status"]["frames_taken"]["data_n"], "3");  // proto3 JSON: uint64 as text
    auto stopped = run({"stop", "--detail", "done"});
    ASSERT_EQ(stopped.exit_code, 0) << testing::describe(stopped);

    const auto end = reducer.until_run_end("rc-1");
    ASSERT_TRUE(end) << "no RunEnd";
    EXPECT_EQ(end->reason(), pb::RUN_END_REASON_COMPLETED);
    EXPECT_EQ(end->frames_sent().dark(), 2U);
    EXPECT_EQ(end->frames_sent().flat(), 1U);
    EXPECT_EQ(end->frames_sent().data_p(), 2U);
    EXPECT_EQ(end->frames_sent().data_n(), 3U);
    EXPECT_EQ(end->frames_sent().background(), 1U);
    const pb::RunStart& start = reducer.starts.at("rc-1");
    EXPECT_EQ(start.config().geometry().detector_rows(), kSide);
    EXPECT_NEAR(start.config().geometry().distance_m(), 0.125, 1e-12);
    EXPECT_EQ(start.config().composition(), "Zr52.5Cu17.9Ni14.6Al10Ti5");

    // Every frame once, numbered over the run, with the state in force when it came.
    struct Expected {
        pb::FrameKind kind;
        pb::Orientation orientation;
    };
    const std::vector<Expected> expected = {
        {pb::FRAME_KIND_DARK, pb::ORIENTATION_UNSPECIFIED},
        {pb::FRAME_KIND_DARK, pb::ORIENTATION_UNSPECIFIED},
        {pb::FRAME_KIND_FLAT, pb::ORIENTATION_UNSPECIFIED},
        {pb::FRAME_KIND_DATA, pb::ORIENTATION_P},
        {pb::FRAME_KIND_DATA, pb::ORIENTATION_P},
        {pb::FRAME_KIND_DATA, pb::ORIENTATION_N},
        {pb::FRAME_KIND_DATA, pb::ORIENTATION_N},
        {pb::FRAME_KIND_DATA, pb::ORIENTATION_N},
        {pb::FRAME_KIND_BACKGROUND, pb::ORIENTATION_UNSPECIFIED}};
    ASSERT_EQ(reducer.frames.size(), expected.size());
    std::map<std::uint64_t, const ReceivedFrame*> by_sequence;
    for (const ReceivedFrame& frame : reducer.frames) {
        EXPECT_EQ(frame.header.run_id(), "rc-1");
        by_sequence[frame.header.sequence()] = &frame;
    }
    ASSERT_EQ(by_sequence.size(), expected.size()) << "a sequence number came twice";
    for (std::uint64_t n = 0; n < expected.size(); ++n) {
        ASSERT_TRUE(by_sequence.contains(n)) << "sequence " << n;
        const pb::FrameHeader& h = by_sequence[n]->header;
        EXPECT_EQ(h.kind(), expected[n].kind) << "sequence " << n;
        EXPECT_EQ(h.orientation(), expected[n].orientation) << "sequence " << n;
        // Series A's images 0-4 are sequences 0-4, series B's images 0-3 are 5-8.
        const auto& message = n < 5 ? series_a[n + 1] : series_b[n - 5 + 1];
        EXPECT_EQ(by_sequence[n]->payload, sent_payload(dectris::Protocol::kStreamV2, message))
            << "sequence " << n;
    }

    // The run log: every change, in order, in RunEnd and live on the control PUB.
    const std::vector<pb::StateChangeType> log = {
        pb::STATE_CHANGE_TYPE_RUN_STARTED,        pb::STATE_CHANGE_TYPE_STATE_SET,  // dark
        pb::STATE_CHANGE_TYPE_ACQUISITION_OPENED, pb::STATE_CHANGE_TYPE_STATE_SET,  // flat
        pb::STATE_CHANGE_TYPE_STATE_SET,                                            // P
        pb::STATE_CHANGE_TYPE_ACQUISITION_CLOSED, pb::STATE_CHANGE_TYPE_STATE_SET,  // N
        pb::STATE_CHANGE_TYPE_ACQUISITION_OPENED, pb::STATE_CHANGE_TYPE_STATE_SET,  // background
        pb::STATE_CHANGE_TYPE_ACQUISITION_CLOSED, pb::STATE_CHANGE_TYPE_RUN_ENDED};
    ASSERT_EQ(end->state_changes_size(), static_cast<int>(log.size()));
    for (int i = 0; i < end->state_changes_size(); ++i) {
        const pb::StateChange& change = end->state_changes(i);
        EXPECT_EQ(change.index(), static_cast<std::uint32_t>(i));
        EXPECT_EQ(change.type(), log[static_cast<std::size_t>(i)]) << "entry " << i;
    }
    EXPECT_EQ(end->state_changes(1).note(), "shutter closed");
    EXPECT_EQ(end->state_changes(4).next_sequence(), 3U);  // P from the 4th frame on
    EXPECT_EQ(end->state_changes(4).note(), "omega 0");
    EXPECT_EQ(end->state_changes(10).note(), "done");
    ASSERT_EQ(reducer.events.size(), log.size());
    for (std::size_t i = 0; i < log.size(); ++i) {
        EXPECT_EQ(reducer.events[i].change().type(), log[i]) << "event " << i;
    }

    const std::string metrics = ingest.metrics();
    EXPECT_NE(metrics.find("anisoflow_ingest_frames_rejected_total{reason=\"no_run\"} 1"),
              std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("anisoflow_ingest_run_control_refused_total{action=\"start\"} 1"),
              std::string::npos)
        << metrics;
}

// A 1-D dataset of one-byte enums (read as stored) or uint64 values; a fixed string column.
template <class T>
std::vector<T> read_column(hid_t file, const std::string& path) {
    const hid_t dataset = H5Dopen2(file, path.c_str(), H5P_DEFAULT);
    const hid_t type = sizeof(T) == 1 ? H5Dget_type(dataset) : H5Tcopy(H5T_NATIVE_UINT64);
    const hid_t space = H5Dget_space(dataset);
    std::vector<T> values(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
    if (!values.empty()) {
        EXPECT_GE(H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0) << path;
    }
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(dataset);
    return values;
}

std::vector<std::string> read_notes(hid_t file, const std::string& path) {
    const hid_t dataset = H5Dopen2(file, path.c_str(), H5P_DEFAULT);
    const hid_t type = H5Dget_type(dataset);
    const hid_t space = H5Dget_space(dataset);
    const auto n = static_cast<std::size_t>(H5Sget_simple_extent_npoints(space));
    const std::size_t size = H5Tget_size(type);
    std::string buffer(n * size, '\0');
    if (n > 0) {
        EXPECT_GE(H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()), 0) << path;
    }
    std::vector<std::string> notes;
    for (std::size_t i = 0; i < n; ++i) {
        const char* entry = buffer.data() + i * size;
        notes.emplace_back(entry, strnlen(entry, size));
    }
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(dataset);
    return notes;
}

// Every state change reaches the run file: live on the raw feed, then completed from RunEnd.
TEST(RunControl, EveryStateChangeIsArchivedInTheRunLog) {
    zmq::context_t context;
    FakeDetector detector(context);
    cfg::IngestConfig config = dectris_config(detector.endpoint, dectris::Protocol::kStreamV2);
    const fs::path dir = testing::scratch_dir();
    config.mutable_endpoints()->mutable_run_control()->set_address("@tcp://127.0.0.1:*");
    config.mutable_endpoints()->mutable_raw_out()->set_address("@tcp://127.0.0.1:*");
    RunningIngest ingest(config);
    FakeReducer reducer(context, ingest.endpoints());

    // Archive, fed raw frames by ingest; the test stands in for analyze on the archive feed.
    cfg::ArchiveConfig archive;
    ASSERT_TRUE(runtime::merge_defaults(archive).has_value());
    archive.mutable_metrics()->set_enabled(false);
    archive.set_archive_dir((dir / "runs").string());
    archive.set_raw_compression("lz4");
    const std::string feed = "ipc://" + (dir / "archive.sock").string();
    archive.mutable_endpoints()->mutable_archive_in()->set_address("@" + feed);
    archive.mutable_endpoints()->mutable_raw_in()->set_address(">" + ingest.endpoints().raw);
    auto archiver = runtime::ServiceThread::start(
        "archive", [&](runtime::ServiceContext& c) { return archiver::run(archive, c); });
    ASSERT_TRUE(archiver.has_value()) << archiver.error().message;
    auto analyze_feed = transport::open_socket(context, zmq::socket_type::push, ">" + feed);
    ASSERT_TRUE(analyze_feed.has_value());

    const RunControlCli run(ingest.endpoints().run_control, dir);
    auto started =
        run({"start", "--config", write_run_toml(dir).string(), "--poni", write_poni(dir).string(),
             "--run-id", "logged-1", "--kind", "data", "--orientation", "P", "--note", "omega 0"});
    ASSERT_EQ(started.exit_code, 0) << testing::describe(started);
    ASSERT_TRUE(reducer.until_events(2));
    emu::SeriesSettings series = tiny_series();
    series.width_px = kSide;
    series.height_px = kSide;
    series.number_of_images = 2;
    for (const auto& message : v2_messages(series)) {
        detector.send(message);
    }
    ASSERT_TRUE(reducer.until_events(4));  // the series opened and closed
    ASSERT_EQ(run({"next", "--kind", "data", "--orientation", "N", "--note", "turned"}).exit_code,
              0);
    ASSERT_TRUE(reducer.until_events(5));
    ASSERT_EQ(run({"stop", "--detail", "done"}).exit_code, 0);
    const auto end = reducer.until_run_end("logged-1");
    ASSERT_TRUE(end) << "no RunEnd";
    ASSERT_EQ(end->state_changes_size(), 6);

    // Live: the raw feed's RunEvents are in the file before it closes (read as h5py would,
    // SWMR, while archive holds it open).
    const fs::path file = dir / "runs" / archiver::run_file_name("logged-1");
    std::size_t live_rows = 0;
    for (const auto until = Clock::now() + kPatience; live_rows < 6 && Clock::now() < until;) {
        std::this_thread::sleep_for(20ms);
        const hid_t reader = H5Fopen(file.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
        if (reader >= 0) {
            live_rows = read_column<std::uint8_t>(reader, "/entry/run_log/change").size();
            H5Fclose(reader);
        }
    }
    EXPECT_EQ(live_rows, 6U) << "the run log did not grow while the run file was open";

    // As analyze does: its RunEnd (ingest's, forwarded) on the archive feed closes the file.
    auto parts = transport::encode_control(*end);
    ASSERT_TRUE(parts.has_value());
    auto sent = transport::send(*analyze_feed, *parts, kPatience);
    ASSERT_TRUE(sent && *sent);
    const auto deadline = Clock::now() + kPatience;
    while ((*archiver)->metrics().find("anisoflow_archive_runs_closed_total 1") ==
               std::string::npos &&
           Clock::now() < deadline) {
        std::this_thread::sleep_for(20ms);
    }
    ASSERT_TRUE((*archiver)->stop().has_value());

    const hid_t h5 = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(h5, 0) << file;
    EXPECT_EQ(read_column<std::uint8_t>(h5, "/entry/run_log/change"),
              (std::vector<std::uint8_t>{1, 2, 3, 4, 2, 5}));
    EXPECT_EQ(read_column<std::uint8_t>(h5, "/entry/run_log/orientation"),
              (std::vector<std::uint8_t>{0, 1, 1, 1, 2, 2}));
    EXPECT_EQ(read_column<std::uint64_t>(h5, "/entry/run_log/next_sequence"),
              (std::vector<std::uint64_t>{0, 0, 0, 2, 2, 2}));
    const std::vector<std::string> notes = read_notes(h5, "/entry/run_log/note");
    ASSERT_EQ(notes.size(), 6U);
    EXPECT_EQ(notes[1], "omega 0");
    EXPECT_EQ(notes[4], "turned");
    EXPECT_EQ(notes[5], "done");
    EXPECT_EQ(read_column<std::uint64_t>(h5, "/entry/data/sequence"),
              (std::vector<std::uint64_t>{0, 1}));
    H5Fclose(h5);
}

// A TIFF of `pages` 64 x 64 frames whose first pixels are first, first + 100, ..., written under
// a hidden name and renamed, as detectors do, so the watcher never sees it half written.
void write_frames(const fs::path& file, std::uint16_t first, std::size_t pages,
                  std::size_t side = kSide) {
    std::vector<std::vector<std::uint16_t>> frames;
    for (std::size_t i = 0; i < pages; ++i) {
        frames.push_back(fixtures::ramp<std::uint16_t>(side * side, 1.0,
                                                       first + 100.0 * static_cast<double>(i)));
    }
    const fs::path hidden = file.parent_path() / ("." + file.filename().string());
    ASSERT_TRUE(fixtures::write_tiff(hidden, static_cast<std::uint32_t>(side),
                                     static_cast<std::uint32_t>(side), frames));
    fs::rename(hidden, file);
}

std::uint16_t first_pixel(const ReceivedFrame& frame) {
    EXPECT_GE(frame.payload.size(), sizeof(std::uint16_t));
    std::uint16_t value = 0;
    std::memcpy(&value, frame.payload.data(), sizeof(value));
    return value;
}

TEST(RunControl, AWatchedFolderFeedsTheRunFileByFile) {
    zmq::context_t context;
    cfg::IngestConfig config = base_config();
    const fs::path dir = testing::scratch_dir();
    const fs::path folder = dir / "detector";
    fs::create_directories(folder);
    write_frames(folder / "scan_000.tif", 9000, 1);  // there before ingest: skipped
    cfg::IngestSource& source = *config.mutable_source();
    source.set_kind(cfg::SOURCE_KIND_WATCHED_FOLDER);
    source.set_watch_directory(folder.string());
    source.set_watch_pattern("scan_*.tif");
    source.set_watch_settle_ms(100);
    source.set_watch_open_retry_ms(300);
    config.mutable_endpoints()->mutable_run_control()->set_address("@tcp://127.0.0.1:*");
    RunningIngest ingest(config);
    FakeReducer reducer(context, ingest.endpoints());
    const RunControlCli run(ingest.endpoints().run_control, dir);
    const auto wait_frames = [&](std::size_t n) {
        ASSERT_TRUE(reducer.until_frames(n));
        ASSERT_EQ(reducer.frames.size(), n);
    };
    const auto wait_metric = [&](const std::string& line) {
        const auto deadline = Clock::now() + kPatience;
        while (ingest.metrics().find(line) == std::string::npos && Clock::now() < deadline) {
            reducer.serve(10ms);
        }
        EXPECT_NE(ingest.metrics().find(line), std::string::npos) << ingest.metrics();
    };

    auto started = run({"start", "--config", write_run_toml(dir).string(), "--poni",
                        write_poni(dir).string(), "--run-id", "folder-1", "--kind", "dark"});
    ASSERT_EQ(started.exit_code, 0) << testing::describe(started);
    ASSERT_TRUE(reducer.until_events(2));
    write_frames(folder / "scan_001.tif", 10, 1);
    wait_frames(1);
    ASSERT_EQ(run({"next", "--kind", "data", "--orientation", "P"}).exit_code, 0);
    write_frames(folder / "scan_002.tif", 20, 2);  // a two-page file: two frames
    wait_frames(3);
    // A file cut short and one of another detector: refused by name, the stream goes on.
    std::ofstream(folder / ".scan_003.tif") << "II*\0 not a whole tiff";
    fs::rename(folder / ".scan_003.tif", folder / "scan_003.tif");
    wait_metric("anisoflow_ingest_frames_rejected_total{reason=\"bad_file\"} 1");
    ASSERT_EQ(run({"next", "--kind", "data", "--orientation", "N"}).exit_code, 0);
    write_frames(folder / "scan_004.tif", 40, 1);
    wait_frames(4);
    ASSERT_EQ(run({"stop"}).exit_code, 0);

    const auto end = reducer.until_run_end("folder-1");
    ASSERT_TRUE(end) << "no RunEnd";
    EXPECT_EQ(end->frames_sent().dark(), 1U);
    EXPECT_EQ(end->frames_sent().data_p(), 2U);
    EXPECT_EQ(end->frames_sent().data_n(), 1U);
    ASSERT_EQ(reducer.frames.size(), 4U);
    std::map<std::uint64_t, const ReceivedFrame*> by_sequence;
    for (const ReceivedFrame& frame : reducer.frames) {
        by_sequence[frame.header.sequence()] = &frame;
        EXPECT_EQ(frame.header.dtype(), pb::PIXEL_DTYPE_UINT16);
        EXPECT_EQ(frame.header.rows(), kSide);
        EXPECT_EQ(frame.payload.size(), kSide * kSide * sizeof(std::uint16_t));
    }
    ASSERT_EQ(by_sequence.size(), 4U);
    EXPECT_EQ(by_sequence[0]->header.kind(), pb::FRAME_KIND_DARK);
    EXPECT_EQ(first_pixel(*by_sequence[0]), 10);
    EXPECT_EQ(by_sequence[1]->header.orientation(), pb::ORIENTATION_P);
    EXPECT_EQ(first_pixel(*by_sequence[1]), 20);
    EXPECT_EQ(first_pixel(*by_sequence[2]), 120);
    EXPECT_EQ(by_sequence[3]->header.orientation(), pb::ORIENTATION_N);
    EXPECT_EQ(first_pixel(*by_sequence[3]), 40);
}

TEST(RunControl, AWatchedFolderWithoutRunControlIsRefusedByName) {
    cfg::IngestConfig config = base_config();
    config.mutable_source()->set_kind(cfg::SOURCE_KIND_WATCHED_FOLDER);
    config.mutable_source()->set_watch_directory(testing::scratch_dir().string());
    config.mutable_source()->set_watch_settle_ms(100);
    metrics::Registry registry;
    auto service = IngestService::create(config, registry);
    ASSERT_FALSE(service);
    EXPECT_NE(service.error().message.find("endpoints.run_control"), std::string::npos)
        << service.error().message;
    config.mutable_endpoints()->mutable_run_control()->set_address("@tcp://127.0.0.1:*");
    config.mutable_source()->set_watch_directory("/nonexistent/anisoflow-detector");
    service = IngestService::create(config, registry);
    ASSERT_FALSE(service);
    EXPECT_NE(service.error().message.find("/nonexistent/anisoflow-detector"), std::string::npos)
        << service.error().message;
}

// The state machine alone: what it refuses, and why, by name.
pb::StartRun valid_start() {
    pb::StartRun start;
    start.set_run_id("unit-1");
    pb::ExperimentConfig& c = *start.mutable_config();
    pb::PoniGeometry& g = *c.mutable_geometry();
    g.set_distance_m(0.35);
    g.set_wavelength_m(1.2398e-11);
    g.set_pixel1_m(2e-4);
    g.set_pixel2_m(2e-4);
    g.set_detector_rows(8);
    g.set_detector_cols(8);
    c.set_composition("Cu50Zr50");
    c.set_density_per_cubic_angstrom(0.06);
    c.set_nu(0.35);
    c.set_mode(pb::EXTRACTION_MODE_PN);
    c.set_normalisation(pb::NORMALISATION_HIGH_Q);
    c.set_q_max_inv_angstrom(10.0);
    c.set_n_q(10);
    c.set_n_chi(8);
    c.set_r_max_angstrom(20.0);
    c.set_n_r(100);
    c.set_r_fit_max_angstrom(15.0);
    return start;
}

pb::RunControlRequest request_of(const pb::StartRun& start) {
    pb::RunControlRequest request;
    *request.mutable_start() = start;
    return request;
}

pb::RunControlRequest request_of(pb::FrameKind kind, pb::Orientation orientation) {
    pb::RunControlRequest request;
    request.mutable_next()->set_kind(kind);
    request.mutable_next()->set_orientation(orientation);
    return request;
}

pb::FrameHeader frame_header(std::uint32_t rows, std::uint32_t cols) {
    pb::FrameHeader header;
    header.set_rows(rows);
    header.set_cols(cols);
    return header;
}

TEST(RunController, RefusesWhatCannotMakeARunAndNamesTheField) {
    RunController controller("test");
    pb::StartRun bad = valid_start();
    bad.mutable_config()->mutable_geometry()->set_distance_m(0.0);
    bad.mutable_config()->set_nu(0.7);
    auto handled = controller.handle(request_of(bad), 1);
    EXPECT_FALSE(handled.reply.ok());
    EXPECT_NE(handled.reply.error().find("geometry.distance_m is 0"), std::string::npos)
        << handled.reply.error();
    EXPECT_NE(handled.reply.error().find("nu is 0.7"), std::string::npos) << handled.reply.error();
    EXPECT_FALSE(handled.effects.start);

    pb::StartRun escape = valid_start();
    escape.set_run_id("../../etc/passwd");  // becomes a file name in the archive
    handled = controller.handle(request_of(escape), 1);
    EXPECT_FALSE(handled.reply.ok());
    EXPECT_NE(handled.reply.error().find("StartRun.run_id"), std::string::npos);

    handled = controller.handle(request_of(valid_start()), 1);
    ASSERT_TRUE(handled.reply.ok()) << handled.reply.error();
    ASSERT_TRUE(handled.effects.start);
    EXPECT_EQ(handled.effects.start->run_id(), "unit-1");

    // No state yet: frames refused, never guessed.
    pb::FrameHeader header = frame_header(8, 8);
    EXPECT_EQ(controller.tag(header), Refusal::kNoState);
    handled = controller.handle(request_of(pb::FRAME_KIND_DATA, pb::ORIENTATION_UNSPECIFIED), 2);
    EXPECT_FALSE(handled.reply.ok());
    EXPECT_NE(handled.reply.error().find("orientation"), std::string::npos);
    handled = controller.handle(request_of(pb::FRAME_KIND_DATA, pb::ORIENTATION_N), 2);
    ASSERT_TRUE(handled.reply.ok());
    EXPECT_EQ(controller.tag(header), std::nullopt);
    EXPECT_EQ(header.sequence(), 0U);
    EXPECT_EQ(header.orientation(), pb::ORIENTATION_N);
    pb::FrameHeader wrong = frame_header(8, 9);
    EXPECT_EQ(controller.tag(wrong), Refusal::kShapeMismatch);
    EXPECT_EQ(controller.status().frames_refused(), 2U);
}

TEST(RunController, ASeriesIsAnAcquisitionInsideTheRun) {
    RunController controller("test");
    ASSERT_TRUE(controller.handle(request_of(valid_start()), 1).reply.ok());
    ASSERT_TRUE(controller.handle(request_of(pb::FRAME_KIND_DARK, {}), 2).reply.ok());
    const auto t0 = RunController::Clock::now();
    pb::FrameHeader header = frame_header(8, 8);
    EXPECT_EQ(controller.tag_image(header, "s1", 0, t0), Refusal::kNoAcquisition);

    // A series of another shape is refused, and so are its images.
    RunEffects opened = controller.open_acquisition("s0", FrameShape{4, 4}, 3, t0);
    ASSERT_EQ(opened.events.size(), 1U);
    EXPECT_NE(opened.events[0].change().note().find("refused"), std::string::npos);
    EXPECT_EQ(controller.tag_image(header, "s0", 0, t0), Refusal::kShapeMismatch);

    opened = controller.open_acquisition("s1", FrameShape{8, 8}, 4, t0);
    // s0 closed first (a new series started before its end), then s1 opened.
    ASSERT_EQ(opened.events.size(), 2U);
    EXPECT_EQ(opened.events[0].change().type(), pb::STATE_CHANGE_TYPE_ACQUISITION_CLOSED);
    EXPECT_EQ(controller.tag_image(header, "s1", 0, t0), std::nullopt);
    pb::FrameHeader again = frame_header(8, 8);
    EXPECT_EQ(controller.tag_image(again, "s1", 0, t0), Refusal::kDuplicate);

    // Silence closes the acquisition, not the run.
    EXPECT_TRUE(controller.close_silent_acquisition(1000ms, 5, t0 + 500ms).events.empty());
    RunEffects silent = controller.close_silent_acquisition(1000ms, 6, t0 + 2s);
    ASSERT_EQ(silent.events.size(), 1U);
    EXPECT_NE(silent.events[0].change().note().find("cut off"), std::string::npos);
    EXPECT_FALSE(silent.end);
    EXPECT_TRUE(controller.open_run());

    RunEffects aborted = controller.abort("ingest stopped", 7);
    ASSERT_TRUE(aborted.end);
    EXPECT_EQ(aborted.end->reason, pb::RUN_END_REASON_ABORTED);
    EXPECT_EQ(aborted.end->history.back().type(), pb::STATE_CHANGE_TYPE_RUN_ENDED);
    EXPECT_FALSE(controller.open_run());
}

}  // namespace
}  // namespace anisoflow::ingest
