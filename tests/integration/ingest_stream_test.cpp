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
#include "ingest_service.hpp"

namespace anisoflow::ingest {
namespace {

namespace pb = ::anisoflow::stream::v1;
namespace emu = ::anisoflow::dectris::emulator;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Only reached when something is broken; a passing test never waits this long.
constexpr auto kPatience = 20s;

cfg::IngestConfig base_config() {
    cfg::IngestConfig config;
    EXPECT_TRUE(runtime::merge_defaults(config));
    config.mutable_endpoints()->mutable_frames_out()->set_address("@tcp://127.0.0.1:*");
    config.mutable_endpoints()->mutable_control_out()->set_address("@tcp://127.0.0.1:*");
    config.set_heartbeat_interval_ms(100);
    config.set_run_start_republish_interval_ms(100);
    config.set_queue_capacity_frames(4);
    config.set_drain_timeout_ms(5000);
    config.mutable_metrics()->set_enabled(false);
    return config;
}

// The service on its own thread, stopped and joined on destruction.
class RunningIngest {
  public:
    explicit RunningIngest(const cfg::IngestConfig& config) {
        auto stop = runtime::StopSource::create();
        EXPECT_TRUE(stop);
        stop_.emplace(*stop);
        auto service = IngestService::create(config, registry_);
        EXPECT_TRUE(service) << service.error().message;
        service_.emplace(std::move(*service));
        thread_ = std::thread([this] { result_ = service_->run(*stop_); });
    }
    ~RunningIngest() {
        stop_->request_stop();
        thread_.join();
        EXPECT_TRUE(result_) << result_.error().message;
    }
    RunningIngest(const RunningIngest&) = delete;
    RunningIngest& operator=(const RunningIngest&) = delete;

    [[nodiscard]] const IngestEndpoints& endpoints() const { return service_->endpoints(); }
    [[nodiscard]] std::string metrics() const { return registry_.serialize(); }

  private:
    metrics::Registry registry_;
    std::optional<runtime::StopSource> stop_;
    std::optional<IngestService> service_;
    std::thread thread_;
    Result<void> result_;
};

struct ReceivedFrame {
    pb::FrameHeader header;
    std::vector<std::byte> payload;
};

// A reduce worker that acknowledges every data frame, and a control subscriber.
struct FakeReducer {
    FakeReducer(zmq::context_t& context, const IngestEndpoints& endpoints) {
        auto link = transport::WorkerLink::open(context, ">" + endpoints.frames, "reduce-test", 3);
        EXPECT_TRUE(link) << link.error().message;
        link_.emplace(std::move(*link));
        auto sub = transport::open_socket(context, zmq::socket_type::sub, ">" + endpoints.control);
        EXPECT_TRUE(sub) << sub.error().message;
        control_ = std::move(*sub);
    }

    // Serves frames and reads control until a RunEnd of `run_id` (or any run, if empty) came.
    std::optional<pb::RunEnd> until_run_end(const std::string& run_id = "") {
        const auto deadline = Clock::now() + kPatience;
        while (Clock::now() < deadline) {
            serve(10ms);
            while (true) {
                auto received = transport::receive(control_, 0ms);
                EXPECT_TRUE(received);
                if (!received || !*received) {
                    break;
                }
                auto decoded = transport::decode(std::move(**received));
                EXPECT_TRUE(decoded);
                if (!decoded) {
                    continue;
                }
                if (auto* start = std::get_if<transport::RunStartMessage>(&*decoded)) {
                    control_starts[start->start.run_id()] = start->start;
                } else if (auto* end = std::get_if<transport::RunEndMessage>(&*decoded)) {
                    ends.push_back(end->end);
                    if (run_id.empty() || end->end.run_id() == run_id) {
                        return end->end;
                    }
                }
            }
        }
        return std::nullopt;
    }

    void serve(std::chrono::milliseconds timeout) {
        auto received = link_->receive(timeout);
        ASSERT_TRUE(received) << received.error().message;
        if (!*received) {
            return;
        }
        ASSERT_TRUE(**received) << (*received)->error().error.message;
        if (auto* start = std::get_if<transport::RunStartMessage>(&***received)) {
            order.push_back("start:" + start->start.run_id());
            starts[start->start.run_id()] = start->start;
        } else if (auto* frame = std::get_if<transport::FrameMessage>(&***received)) {
            order.push_back("frame:" + std::to_string(frame->header.sequence()));
            const auto bytes = transport::bytes_of(frame->payload);
            frames.push_back({frame->header, {bytes.begin(), bytes.end()}});
            if (frame->header.kind() == pb::FRAME_KIND_DATA) {
                // Reduced, then analyze's receipt relayed: this fake stands in for both.
                ASSERT_TRUE(link_->ack(frame->header.run_id(), frame->header.sequence(),
                                       pb::ACK_STATUS_REDUCED));
                ASSERT_TRUE(link_->ack(frame->header.run_id(), frame->header.sequence(),
                                       pb::ACK_STATUS_RECEIVED));
            }
        }
    }

    std::optional<transport::WorkerLink> link_;
    zmq::socket_t control_;
    std::vector<std::string> order;
    std::map<std::string, pb::RunStart> starts;
    std::map<std::string, pb::RunStart> control_starts;
    std::vector<ReceivedFrame> frames;
    std::vector<pb::RunEnd> ends;
};

// A bound PUSH standing in for the detector's stream socket.
struct FakeDetector {
    explicit FakeDetector(zmq::context_t& context) {
        transport::SocketOptions options;
        options.linger = 1000ms;
        auto push =
            transport::open_socket(context, zmq::socket_type::push, "@tcp://127.0.0.1:*", options);
        EXPECT_TRUE(push) << push.error().message;
        socket = std::move(*push);
        endpoint = socket.get(zmq::sockopt::last_endpoint);
    }
    void send(const emu::Multipart& message) {
        transport::Multipart parts;
        for (const auto& part : message) {
            parts.emplace_back(part.data(), part.size());
        }
        auto sent = transport::send(socket, parts, kPatience);
        ASSERT_TRUE(sent && *sent);
    }
    zmq::socket_t socket;
    std::string endpoint;
};

cfg::IngestConfig dectris_config(const std::string& endpoint, dectris::Protocol protocol) {
    cfg::IngestConfig config = base_config();
    cfg::IngestSource& source = *config.mutable_source();
    source.set_kind(cfg::SOURCE_KIND_DECTRIS_STREAM);
    source.set_dectris_address(">" + endpoint);
    source.set_dectris_protocol(protocol == dectris::Protocol::kStreamV1
                                    ? cfg::DECTRIS_PROTOCOL_STREAM_V1
                                    : cfg::DECTRIS_PROTOCOL_STREAM_V2);
    // The run description as a site writes it (docs/configuration.md, source.dectris_run_file).
    const auto file = testing::scratch_dir() / "dectris_run.toml";
    std::ofstream(file) << "dark_images = 1\nflat_images = 1\ndata_p_images = 2\n"
                           "run_id_prefix = \"test-\"\n[experiment]\ncomposition = \"Cu50Zr50\"\n"
                           "mode = \"pn\"\n";
    source.set_dectris_run_file(file.string());
    return config;
}

emu::SeriesSettings tiny_series() {
    emu::SeriesSettings settings;
    settings.width_px = 64;
    settings.height_px = 64;
    settings.number_of_images = 6;  // dark, flat, P, P, N, N
    return settings;
}

// The messages of a series, as the detector would send them, whatever the protocol.
std::vector<emu::Multipart> series_messages(dectris::Protocol protocol,
                                            const emu::SeriesSettings& settings,
                                            emu::WireEncoding encoding) {
    std::vector<emu::Multipart> messages;
    if (protocol == dectris::Protocol::kStreamV1) {
        return emu::v1_series(settings, encoding);
    }
    for (auto& part : emu::v2_series(settings, encoding)) {
        messages.push_back({std::move(part)});
    }
    return messages;
}

// The payload bytes of image `n` as the decoder sees them (what ingest must forward untouched).
std::vector<std::byte> sent_payload(dectris::Protocol protocol, const emu::Multipart& message) {
    std::vector<dectris::ByteSpan> spans;
    for (const auto& part : message) {
        spans.emplace_back(part);
    }
    auto decoded = protocol == dectris::Protocol::kStreamV1 ? dectris::decode_v1(spans)
                                                            : dectris::decode_v2(spans.front());
    EXPECT_TRUE(decoded);
    return std::get<dectris::Image>(*decoded).channels.front().payload;
}

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
