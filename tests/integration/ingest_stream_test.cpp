// anisoflow-ingest end to end over real tcp sockets: the DECTRIS emulator (Stream v1 and v2, raw,
// lz4 and bslz4 payloads) or `anisoflow simulate --stream` feed a running IngestService; a fake
// reduce worker (WorkerLink) must get every frame exactly once with the bytes that were sent,
// and the control PUB must close each run with the right RunEnd.

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/dectris/decode.hpp"
#include "anisoflow/runtime/config_loader.hpp"
#include "anisoflow/testing/cli_runner.hpp"
#include "anisoflow/testing/test_paths.hpp"
#include "anisoflow/transport/dispatch.hpp"
#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/socket.hpp"

#include "dectris_emulator.hpp"
#include "ingest_harness.hpp"
#include "ingest_service.hpp"

namespace anisoflow::ingest {
namespace {

using namespace harness;  // NOLINT(google-build-using-namespace): the test's vocabulary
namespace pb = ::anisoflow::stream::v1;
namespace emu = ::anisoflow::dectris::emulator;
using namespace std::chrono_literals;

struct DectrisCase {
    const char* name;
    dectris::Protocol protocol;
    emu::WireEncoding encoding;
    pb::Encoding expected_encoding;
};

class IngestDectris : public ::testing::TestWithParam<DectrisCase> {};

TEST_P(IngestDectris, EveryImageReachesTheWorkerOnceWithItsBytes) {
    const DectrisCase& c = GetParam();
    zmq::context_t context;
    FakeDetector detector(context);
    RunningIngest ingest(dectris_config(detector.endpoint, c.protocol));
    FakeReducer reducer(context, ingest.endpoints());
    const emu::SeriesSettings settings = tiny_series();
    const auto messages = series_messages(c.protocol, settings, c.encoding);
    ASSERT_EQ(messages.size(), 8U);
    for (std::size_t i = 0; i < messages.size(); ++i) {
        detector.send(messages[i]);
        if (i == 3) {
            detector.send(messages[i]);  // image 2 twice: a duplicate, dropped and counted
        }
    }
    const std::string run_id = "test-" + settings.series_unique_id;
    const auto end = reducer.until_run_end(c.protocol == dectris::Protocol::kStreamV1
                                               ? "test-series-" + std::to_string(settings.series_id)
                                               : run_id);
    ASSERT_TRUE(end) << "no RunEnd";
    EXPECT_EQ(end->reason(), pb::RUN_END_REASON_COMPLETED);
    EXPECT_EQ(end->frames_sent().dark(), 1U);
    EXPECT_EQ(end->frames_sent().flat(), 1U);
    EXPECT_EQ(end->frames_sent().data_p(), 2U);
    EXPECT_EQ(end->frames_sent().data_n(), 2U);

    ASSERT_EQ(reducer.frames.size(), settings.number_of_images);
    ASSERT_FALSE(reducer.order.empty());
    EXPECT_EQ(reducer.order.front(), "start:" + end->run_id());
    const pb::RunStart& start = reducer.starts.at(end->run_id());
    EXPECT_EQ(start.config().composition(), "Cu50Zr50");
    EXPECT_EQ(start.config().geometry().detector_rows(), 64U);
    EXPECT_NEAR(start.config().geometry().distance_m(), settings.detector_distance_m, 1e-12);
    EXPECT_EQ(start.config().frames_expected().data_n(), 2U);
    std::map<std::uint64_t, int> seen;
    for (const ReceivedFrame& frame : reducer.frames) {
        const std::uint64_t n = frame.header.sequence();
        ++seen[n];
        ASSERT_LT(n, settings.number_of_images);
        EXPECT_EQ(frame.header.encoding(), c.expected_encoding);
        EXPECT_EQ(frame.header.dtype(), pb::PIXEL_DTYPE_UINT16);
        EXPECT_EQ(frame.payload, sent_payload(c.protocol, messages[n + 1])) << "image " << n;
        const pb::FrameKind kind = n == 0   ? pb::FRAME_KIND_DARK
                                   : n == 1 ? pb::FRAME_KIND_FLAT
                                            : pb::FRAME_KIND_DATA;
        EXPECT_EQ(frame.header.kind(), kind) << "image " << n;
        if (kind == pb::FRAME_KIND_DATA) {
            EXPECT_EQ(frame.header.orientation(), n < 4 ? pb::ORIENTATION_P : pb::ORIENTATION_N);
        }
    }
    for (std::uint64_t n = 0; n < settings.number_of_images; ++n) {
        EXPECT_EQ(seen[n], 1) << "image " << n;
    }
    EXPECT_NE(
        ingest.metrics().find("anisoflow_ingest_frames_rejected_total{reason=\"duplicate\"} 1"),
        std::string::npos)
        << ingest.metrics();
    EXPECT_NE(ingest.metrics().find("anisoflow_ingest_frames_received_total 7"), std::string::npos)
        << ingest.metrics();

    // A subscriber that joins after the RunEnd still gets it (run_end_repeats, 100 ms apart).
    FakeReducer latecomer(context, ingest.endpoints());
    const auto repeated = latecomer.until_run_end(end->run_id());
    ASSERT_TRUE(repeated) << "RunEnd was not repeated";
    EXPECT_EQ(repeated->frames_sent().data_n(), 2U);
}

INSTANTIATE_TEST_SUITE_P(
    Streams, IngestDectris,
    ::testing::Values(DectrisCase{"v1_raw", dectris::Protocol::kStreamV1, emu::WireEncoding::kRaw,
                                  pb::ENCODING_RAW},
                      DectrisCase{"v1_lz4", dectris::Protocol::kStreamV1, emu::WireEncoding::kLz4,
                                  pb::ENCODING_LZ4},
                      DectrisCase{"v1_bslz4", dectris::Protocol::kStreamV1,
                                  emu::WireEncoding::kBslz4, pb::ENCODING_BSLZ4},
                      DectrisCase{"v2_raw", dectris::Protocol::kStreamV2, emu::WireEncoding::kRaw,
                                  pb::ENCODING_RAW},
                      DectrisCase{"v2_lz4", dectris::Protocol::kStreamV2, emu::WireEncoding::kLz4,
                                  pb::ENCODING_LZ4_HDF5},
                      DectrisCase{"v2_bslz4", dectris::Protocol::kStreamV2,
                                  emu::WireEncoding::kBslz4, pb::ENCODING_BSLZ4}),
    [](const ::testing::TestParamInfo<DectrisCase>& param) { return param.param.name; });

TEST(IngestDectrisAbort, ASilentOrRestartedSeriesEndsAborted) {
    zmq::context_t context;
    FakeDetector detector(context);
    cfg::IngestConfig config = dectris_config(detector.endpoint, dectris::Protocol::kStreamV2);
    config.mutable_source()->set_series_timeout_ms(300);
    RunningIngest ingest(config);
    FakeReducer reducer(context, ingest.endpoints());

    // A new start before the end: the first series is aborted with what it had.
    emu::SeriesSettings first = tiny_series();
    first.series_id = 1;
    first.series_unique_id = "first";
    const auto first_messages =
        series_messages(dectris::Protocol::kStreamV2, first, emu::WireEncoding::kBslz4);
    for (std::size_t i = 0; i < 4; ++i) {  // start, dark, flat, one P image
        detector.send(first_messages[i]);
    }
    emu::SeriesSettings second = tiny_series();
    second.series_id = 2;
    second.series_unique_id = "second";
    const auto second_messages =
        series_messages(dectris::Protocol::kStreamV2, second, emu::WireEncoding::kRaw);
    detector.send(second_messages[0]);
    detector.send(second_messages[1]);
    const auto first_end = reducer.until_run_end("test-first");
    ASSERT_TRUE(first_end);
    EXPECT_EQ(first_end->reason(), pb::RUN_END_REASON_ABORTED);
    EXPECT_EQ(first_end->frames_sent().data_p(), 1U);
    EXPECT_EQ(first_end->frames_sent().dark(), 1U);

    // No end message: the second series is closed after series_timeout_ms.
    const auto second_end = reducer.until_run_end("test-second");
    ASSERT_TRUE(second_end);
    EXPECT_EQ(second_end->reason(), pb::RUN_END_REASON_ABORTED);
    EXPECT_NE(second_end->detail().find("no message"), std::string::npos) << second_end->detail();
    EXPECT_EQ(second_end->frames_sent().dark(), 1U);
    EXPECT_EQ(second_end->frames_sent().data_p(), 0U);
    EXPECT_NE(ingest.metrics().find("anisoflow_ingest_runs_ended_total{reason=\"aborted\"} 2"),
              std::string::npos)
        << ingest.metrics();
}

TEST(IngestSimulatorStream, SimulateStreamDeliversEveryFrame) {
    cfg::IngestConfig config = base_config();
    config.mutable_source()->set_kind(cfg::SOURCE_KIND_ANISOFLOW_STREAM);
    config.mutable_source()->set_stream_address("@tcp://127.0.0.1:*");
    RunningIngest ingest(config);
    zmq::context_t context;
    FakeReducer reducer(context, ingest.endpoints());

    const auto dir = testing::scratch_dir();
    testing::CliRun run;
    std::thread simulator([&] {
        run = testing::run_cli(ANISOFLOW_CLI, dir,
                               {"simulate", "--stream", ">" + ingest.endpoints().source, "--fps",
                                "200", "--rows", "64", "--cols", "64", "--frames", "3", "--darks",
                                "2", "--run-id", "sim-stream-test", "--distance", "0.05"});
    });
    const auto end = reducer.until_run_end("sim-stream-test");
    simulator.join();
    ASSERT_EQ(run.exit_code, 0) << testing::describe(run);
    ASSERT_TRUE(end) << "no RunEnd";
    EXPECT_EQ(end->reason(), pb::RUN_END_REASON_COMPLETED);
    EXPECT_EQ(end->frames_sent().dark(), 2U);
    EXPECT_EQ(end->frames_sent().flat(), 1U);
    EXPECT_EQ(end->frames_sent().data_p(), 3U);
    EXPECT_EQ(end->frames_sent().data_n(), 3U);
    ASSERT_EQ(reducer.frames.size(), 9U);
    EXPECT_EQ(reducer.order.front(), "start:sim-stream-test");
    const pb::RunStart& start = reducer.starts.at("sim-stream-test");
    EXPECT_EQ(start.config().geometry().detector_cols(), 64U);
    EXPECT_EQ(start.config().frames_expected().data_p(), 3U);
    for (std::size_t i = 0; i < reducer.frames.size(); ++i) {
        const ReceivedFrame& frame = reducer.frames[i];
        EXPECT_EQ(frame.header.sequence(), i);  // one worker, in order
        const bool flat = frame.header.kind() == pb::FRAME_KIND_FLAT;
        EXPECT_EQ(frame.header.dtype(), flat ? pb::PIXEL_DTYPE_FLOAT32 : pb::PIXEL_DTYPE_UINT16);
        EXPECT_EQ(frame.payload.size(), 64U * 64U * (flat ? 4U : 2U));
    }
    EXPECT_EQ(reducer.frames[0].header.kind(), pb::FRAME_KIND_DARK);
    EXPECT_EQ(reducer.frames[2].header.kind(), pb::FRAME_KIND_FLAT);
    EXPECT_EQ(reducer.frames[3].header.orientation(), pb::ORIENTATION_P);
    EXPECT_EQ(reducer.frames[8].header.orientation(), pb::ORIENTATION_N);
    // The control PUB re-published the configuration while the run lasted.
    EXPECT_TRUE(reducer.control_starts.contains("sim-stream-test"));
}

}  // namespace
}  // namespace anisoflow::ingest
