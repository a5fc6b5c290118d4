// anisoflow-gateway over real sockets: the test publishes runs, a run log, heartbeats and results
// on ZeroMQ PUBs as ingest and analyze do, then reads the JSON API over HTTP and the pushes over
// a WebSocket (Boost.Beast clients), and checks that the dashboard's files are served and
// nothing outside them is.

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/archive/run_archive.hpp"
#include "anisoflow/runtime/config_loader.hpp"
#include "anisoflow/testing/test_paths.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/socket.hpp"

#include "gateway_service.hpp"

namespace anisoflow::gateway {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace fs = std::filesystem;
namespace pb = ::anisoflow::stream::v1;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kPatience = 20s;  // only reached when something is broken
constexpr const char* kRunId = "2026-11-24T10:00:00Z:zr-017";

struct HttpAnswer {
    unsigned status = 0;
    std::string body;
    http::fields headers;
};

HttpAnswer request(std::uint16_t port, const std::string& target,
                   http::verb method = http::verb::get) {
    net::io_context io;
    tcp::socket socket(io);
    socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    http::request<http::empty_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(false);
    http::write(socket, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.skip(method == http::verb::head);  // a HEAD answer has a length but no body
    http::read(socket, buffer, parser);
    const auto& res = parser.get();
    return {res.result_int(), res.body(), res.base()};
}

nlohmann::json get_json(std::uint16_t port, const std::string& target) {
    const HttpAnswer answer = request(port, target);
    EXPECT_EQ(answer.status, 200U) << target << ": " << answer.body;
    return nlohmann::json::parse(answer.body, nullptr, false);
}

// The gateway on a thread of the test, with the two PUBs it subscribes to.
class RunningGateway {
  public:
    explicit RunningGateway(const fs::path& dir) {
        auto results =
            transport::open_socket(context_, zmq::socket_type::pub, "@tcp://127.0.0.1:*");
        auto control =
            transport::open_socket(context_, zmq::socket_type::pub, "@tcp://127.0.0.1:*");
        EXPECT_TRUE(results && control);
        results_ = std::move(*results);
        control_ = std::move(*control);

        cfg::GatewayConfig config;
        EXPECT_TRUE(runtime::merge_defaults(config).has_value());
        config.mutable_metrics()->set_enabled(false);
        config.mutable_http()->set_bind_address("127.0.0.1:0");
        config.mutable_http()->set_static_dir((dir / "static").string());
        config.mutable_http()->set_websocket_queue_messages(2);
        config.set_archive_dir((dir / "runs").string());
        config.set_metrics_targets_file((dir / "targets.json").string());
        config.set_scrape_interval_ms(100);
        config.mutable_endpoints()->mutable_results_in()->set_address(
            ">" + results_.get(zmq::sockopt::last_endpoint));
        config.mutable_endpoints()->mutable_control_in()->set_address(
            ">" + control_.get(zmq::sockopt::last_endpoint));
        auto stop = runtime::StopSource::create();
        EXPECT_TRUE(stop.has_value());
        stop_.emplace(*stop);
        auto service = GatewayService::create(config, registry_);
        EXPECT_TRUE(service.has_value()) << service.error().message;
        service_.emplace(std::move(*service));
        thread_ = std::thread([this] { result_ = service_->run(*stop_); });
    }
    ~RunningGateway() {
        stop_->request_stop();
        thread_.join();
        EXPECT_TRUE(result_.has_value()) << result_.error().message;
    }
    RunningGateway(const RunningGateway&) = delete;
    RunningGateway& operator=(const RunningGateway&) = delete;

    [[nodiscard]] std::uint16_t port() const { return service_->http_port(); }
    [[nodiscard]] std::string metrics() const { return registry_.serialize(); }

    void control(Result<transport::Multipart> message) { publish(control_, std::move(message)); }
    void results(Result<transport::Multipart> message) { publish(results_, std::move(message)); }

  private:
    static void publish(zmq::socket_t& socket, Result<transport::Multipart> message) {
        ASSERT_TRUE(message.has_value()) << message.error().message;
        ASSERT_TRUE(transport::try_send(socket, *message).value_or(false));
    }

    zmq::context_t context_;
    zmq::socket_t results_;
    zmq::socket_t control_;
    metrics::Registry registry_;
    std::optional<runtime::StopSource> stop_;
    std::optional<GatewayService> service_;
    std::thread thread_;
    Result<void> result_;
};

pb::RunStart run_start() {
    pb::RunStart start;
    start.set_run_id(kRunId);
    start.set_started_unix_ns(1'795'000'000'000'000'000);
    pb::ExperimentConfig& c = *start.mutable_config();
    c.set_composition("Zr52.5Cu17.9Ni14.6Al10Ti5");
    c.set_nu(0.37);
    c.set_n_q(1000);
    c.mutable_frames_expected()->set_data_p(40);
    return start;
}

// A result with S0 and g2 curves; values follow `alpha` so two results differ everywhere.
Result<transport::Multipart> result_message(double alpha, std::uint64_t frames, bool is_final) {
    pb::AnalysisResult r;
    r.set_run_id(kRunId);
    r.set_alpha(alpha);
    r.set_alpha_stderr(alpha / 50.0);
    r.set_eps_aff(alpha * 0.5);
    r.set_r_c_angstrom(11.2);
    r.set_mechanism(pb::MECHANISM_BOND_STRETCHING);
    r.set_mode(pb::EXTRACTION_MODE_PN);
    r.set_normalisation(pb::NORMALISATION_HIGH_Q);
    r.set_n_frames_p(frames);
    r.set_n_frames_n(frames);
    r.mutable_frames()->set_data_p(frames);
    r.set_is_final(is_final);
    std::vector<zmq::message_t> curves;
    for (const pb::CurveKind kind : {pb::CURVE_KIND_S0, pb::CURVE_KIND_G2}) {
        constexpr std::uint64_t kPoints = 4;
        auto* curve = r.add_curves();
        curve->set_kind(kind);
        curve->set_n_points(kPoints);
        std::vector<double> values;
        for (std::uint64_t i = 0; i < kPoints; ++i) {
            values.push_back(0.5 * static_cast<double>(i + 1));  // x
        }
        for (std::uint64_t i = 0; i < kPoints; ++i) {
            values.push_back(alpha * static_cast<double>(i));  // value
        }
        for (std::uint64_t i = 0; i < kPoints; ++i) {
            values.push_back(i == 0 ? std::nan("") : 1e-4);  // variance, unknown at the first
        }
        curves.push_back(transport::make_payload(std::move(values)));
    }
    return transport::encode_result(r, std::move(curves));
}

pb::Heartbeat heartbeat(const std::string& service) {
    pb::Heartbeat beat;
    beat.set_service(service);
    beat.set_instance(service + "-0");
    beat.set_state(pb::SERVICE_STATE_RUNNING);
    beat.set_run_id(kRunId);
    return beat;
}

TEST(Gateway, ServesRunsResultsAndPushesOverRealSockets) {
    const fs::path dir = testing::scratch_dir();
    fs::create_directories(dir / "static" / "assets");
    fs::create_directories(dir / "runs");
    std::ofstream(dir / "static" / "index.html") << "<!doctype html><title>anisoflow</title>";
    std::ofstream(dir / "static" / "assets" / "app.js") << "console.log('anisoflow');";
    std::ofstream(dir / "secret.txt") << "not for the web";
    std::ofstream(dir / "runs" / "earlier-run.nxs") << "HDF5 file stand-in";
    RunningGateway gateway(dir);
    const std::uint16_t port = gateway.port();

    // The SUBs join late (PUB/SUB slow joiner): heartbeats repeat until one is seen, as ingest's
    // do every second.
    nlohmann::json health;
    for (const auto deadline = Clock::now() + kPatience; Clock::now() < deadline;) {
        gateway.control(transport::encode_control(heartbeat("ingest")));
        health = get_json(port, "/api/health");
        if (!health["services"].empty()) {
            break;
        }
        std::this_thread::sleep_for(20ms);
    }
    ASSERT_FALSE(health["services"].empty()) << health.dump();
    EXPECT_EQ(health["status"], "ok");
    EXPECT_EQ(health["services"][0]["service"], "ingest");

    gateway.control(transport::encode_control(run_start()));
    pb::RunEvent event;
    event.set_run_id(kRunId);
    event.mutable_change()->set_type(pb::STATE_CHANGE_TYPE_STATE_SET);
    event.mutable_change()->set_kind(pb::FRAME_KIND_DATA);
    event.mutable_change()->set_orientation(pb::ORIENTATION_N);
    event.mutable_change()->set_note("sample turned");
    gateway.control(transport::encode_control(event));
    gateway.results(result_message(1.5e-3, 10, false));

    const std::string encoded_id = "2026-11-24T10%3A00%3A00Z%3Azr-017";  // ':' escaped
    nlohmann::json result;
    for (const auto deadline = Clock::now() + kPatience; Clock::now() < deadline;) {
        const HttpAnswer answer = request(port, "/api/runs/" + encoded_id + "/result");
        if (answer.status == 200) {
            result = nlohmann::json::parse(answer.body);
            break;
        }
        std::this_thread::sleep_for(20ms);
    }
    ASSERT_FALSE(result.is_null()) << "no result reached the gateway";
    EXPECT_DOUBLE_EQ(result["summary"]["alpha"].get<double>(), 1.5e-3);
    EXPECT_DOUBLE_EQ(result["summary"]["r_c_angstrom"].get<double>(), 11.2);
    EXPECT_EQ(result["summary"]["mechanism"], "bond-stretching");
    EXPECT_EQ(result["curves"]["s0"]["x"], (std::vector<double>{0.5, 1.0, 1.5, 2.0}));
    EXPECT_EQ(result["curves"]["g2"]["x_unit"], "angstrom");
    EXPECT_TRUE(result["curves"]["s0"]["variance"][0].is_null());  // NaN -> null
    EXPECT_DOUBLE_EQ(result["curves"]["g2"]["value"][3].get<double>(), 3 * 1.5e-3);

    const nlohmann::json run = get_json(port, "/api/runs/" + encoded_id);
    EXPECT_EQ(run["composition"], "Zr52.5Cu17.9Ni14.6Al10Ti5");
    EXPECT_EQ(run["config"]["n_q"], 1000);
    EXPECT_EQ(run["state"], "running");
    ASSERT_EQ(run["log"].size(), 1U);
    EXPECT_EQ(run["log"][0]["orientation"], "N");
    EXPECT_EQ(run["log"][0]["note"], "sample turned");
    ASSERT_EQ(run["history"].size(), 1U);
    EXPECT_EQ(run["history"][0]["frames_p"], 10);

    const nlohmann::json runs = get_json(port, "/api/runs");
    ASSERT_EQ(runs.size(), 2U) << runs.dump();
    EXPECT_EQ(runs[0]["run_id"], kRunId);
    EXPECT_DOUBLE_EQ(runs[0]["alpha"].get<double>(), 1.5e-3);
    EXPECT_EQ(runs[1]["run_id"], "earlier-run");
    EXPECT_EQ(runs[1]["state"], "archived");

    // A page: connected, it gets the runs, then every new result as it comes.
    net::io_context io;
    websocket::stream<tcp::socket> ws(io);
    ws.next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    ws.handshake("127.0.0.1", "/ws");
    beast::flat_buffer buffer;
    ws.read(buffer);
    const auto hello = nlohmann::json::parse(beast::buffers_to_string(buffer.data()));
    buffer.consume(buffer.size());
    EXPECT_EQ(hello["type"], "hello");
    EXPECT_EQ(hello["runs"][0]["run_id"], kRunId);
    gateway.results(result_message(2.5e-3, 40, true));
    ws.read(buffer);
    const auto push = nlohmann::json::parse(beast::buffers_to_string(buffer.data()));
    EXPECT_EQ(push["type"], "result");
    EXPECT_EQ(push["run_id"], kRunId);
    EXPECT_EQ(push["is_final"], true);
    EXPECT_DOUBLE_EQ(push["summary"]["alpha"].get<double>(), 2.5e-3);
    EXPECT_EQ(push["point"]["frames_n"], 40);
    ws.close(websocket::close_code::normal);

    // The dashboard's files, with headers that keep a read-only page safe.
    const HttpAnswer index = request(port, "/");
    EXPECT_EQ(index.status, 200U);
    EXPECT_NE(index.body.find("<title>anisoflow</title>"), std::string::npos);
    EXPECT_NE(std::string(index.headers["Content-Security-Policy"]).find("default-src 'self'"),
              std::string::npos);
    EXPECT_EQ(std::string(index.headers["X-Content-Type-Options"]), "nosniff");
    const HttpAnswer script = request(port, "/assets/app.js");
    EXPECT_EQ(script.status, 200U);
    EXPECT_EQ(std::string(script.headers[http::field::content_type]),
              "text/javascript; charset=utf-8");
    // Nothing outside static_dir, however the path is written.
    for (const char* escape : {"/../secret.txt", "/%2e%2e/secret.txt", "/assets/../../secret.txt",
                               "/%2E%2E%2Fsecret.txt"}) {
        const HttpAnswer answer = request(port, escape);
        EXPECT_EQ(answer.status, 404U) << escape;
        EXPECT_EQ(answer.body.find("not for the web"), std::string::npos) << escape;
    }
    EXPECT_EQ(request(port, "/api/runs/unknown-run").status, 404U);
    EXPECT_EQ(request(port, "/api/nothing").status, 404U);
    EXPECT_EQ(request(port, "/api/runs", http::verb::post).status, 405U);
    const HttpAnswer head = request(port, "/api/runs", http::verb::head);
    EXPECT_EQ(head.status, 200U);

    // A run's end: its state, kept for the page after the fact.
    pb::RunEnd end;
    end.set_run_id(kRunId);
    end.set_reason(pb::RUN_END_REASON_COMPLETED);
    end.mutable_frames_sent()->set_data_p(40);
    gateway.control(transport::encode_control(end));
    nlohmann::json ended;
    for (const auto deadline = Clock::now() + kPatience; Clock::now() < deadline;) {
        ended = get_json(port, "/api/runs/" + encoded_id);
        if (ended["state"] == "completed") {
            break;
        }
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(ended["state"], "completed");
    EXPECT_EQ(ended["frames_sent"]["data_p"], 40);
    EXPECT_NE(gateway.metrics().find("anisoflow_gateway_pushes_total"), std::string::npos);
}

// /api/pipeline: the services' metrics, scraped from the targets a Prometheus file_sd file
// lists, as frames per second per stage; a target that does not answer is shown down.
TEST(Gateway, ScrapesTheServicesMetricsIntoThePipelineView) {
    const fs::path dir = testing::scratch_dir();
    metrics::Registry reducer;
    auto reduced = reducer.counter("anisoflow_reduce_frames_reduced_total", "frames reduced");
    ASSERT_TRUE(reduced.has_value());
    auto server = metrics::MetricsServer::start("127.0.0.1:0", reducer);
    ASSERT_TRUE(server.has_value()) << server.error().message;
    std::ofstream(dir / "targets.json")
        << nlohmann::json::array({{{"targets", {fmt::format("127.0.0.1:{}", server->port())}},
                                   {"labels", {{"service", "reduce"}, {"instance", "reduce-0"}}}},
                                  {{"targets", {"127.0.0.1:1"}},
                                   {"labels", {{"service", "archive"}, {"instance", "archive"}}}}})
               .dump();
    RunningGateway gateway(dir);
    nlohmann::json pipeline;
    for (const auto deadline = Clock::now() + kPatience; Clock::now() < deadline;) {
        reduced->increment(5);
        pipeline = get_json(gateway.port(), "/api/pipeline");
        const auto& stages = pipeline["stages"];
        if (stages.size() == 2 && stages[1]["frames_per_s"].is_number() &&
            stages[1]["frames_per_s"].get<double>() > 0.0) {
            break;
        }
        std::this_thread::sleep_for(50ms);
    }
    ASSERT_EQ(pipeline["stages"].size(), 2U) << pipeline.dump();
    const auto& archive = pipeline["stages"][0];  // by instance name
    EXPECT_EQ(archive["instance"], "archive");
    EXPECT_EQ(archive["up"], false);
    EXPECT_FALSE(archive["error"].get<std::string>().empty());
    const auto& worker = pipeline["stages"][1];
    EXPECT_EQ(worker["instance"], "reduce-0");
    EXPECT_EQ(worker["up"], true);
    EXPECT_GT(worker["frames_total"].get<double>(), 0.0);
    EXPECT_GT(worker["frames_per_s"].get<double>(), 0.0) << pipeline.dump();
    EXPECT_EQ(pipeline["frames_lost"], 0.0);
}

// A run the gateway never saw live is read back from its file in archive_dir and shown in the
// same form: configuration, state, run log, convergence series, latest result and curves.
TEST(Gateway, ShowsAnArchivedRunFromItsFile) {
    const fs::path dir = testing::scratch_dir();
    fs::create_directories(dir / "runs");
    pb::RunStart start = run_start();
    start.set_run_id("archived-7");
    pb::ExperimentConfig& c = *start.mutable_config();
    c.mutable_geometry()->set_detector_rows(8);
    c.mutable_geometry()->set_detector_cols(8);
    c.set_n_chi(4);
    c.set_q_max_inv_angstrom(10.0);
    c.set_mode(pb::EXTRACTION_MODE_PN);
    {
        archive::ArchiveOptions options;
        options.store_raw = false;
        auto file = archive::RunArchive::create(dir / "runs" / "archived-7.nxs", start, options);
        ASSERT_TRUE(file.has_value()) << file.error().message;
        for (const double alpha : {1.0e-3, 1.25e-3}) {
            auto encoded = result_message(alpha, alpha > 1.1e-3 ? 20 : 10, alpha > 1.1e-3);
            ASSERT_TRUE(encoded.has_value());
            auto decoded = transport::decode(std::move(*encoded));
            ASSERT_TRUE(decoded.has_value());
            auto& message = std::get<transport::ResultMessage>(*decoded);
            message.header.set_run_id("archived-7");
            std::vector<std::vector<double>> columns;
            std::vector<std::span<const double>> curves;
            columns.reserve(message.curves.size());
            curves.reserve(message.curves.size());
            for (const auto& part : message.curves) {
                columns.push_back(transport::copy_values<double>(part));
            }
            for (const auto& column : columns) {
                curves.emplace_back(column);
            }
            ASSERT_TRUE(file->append_result(message.header, curves).has_value());
        }
        pb::StateChange change;
        change.set_type(pb::STATE_CHANGE_TYPE_RUN_STARTED);
        change.set_note("from the file");
        ASSERT_TRUE(file->append_state_change("archived-7", change).has_value());
        pb::RunEnd end;
        end.set_run_id("archived-7");
        end.set_reason(pb::RUN_END_REASON_ABORTED);
        end.set_detail("beam lost");
        ASSERT_TRUE(file->close(end).has_value());
    }
    {
        // A stopped archive closed this one mid-run (docs/archive.md, "Stopping mid-run").
        start.set_run_id("archived-8");
        archive::ArchiveOptions options;
        options.store_raw = false;
        auto file = archive::RunArchive::create(dir / "runs" / "archived-8.nxs", start, options);
        ASSERT_TRUE(file.has_value()) << file.error().message;
        ASSERT_TRUE(file->interrupt().has_value());
    }
    RunningGateway gateway(dir);
    const nlohmann::json runs = get_json(gateway.port(), "/api/runs");
    ASSERT_EQ(runs.size(), 2U) << runs.dump();
    EXPECT_EQ(runs[0]["state"], "archived");
    // Neither running (nothing writes it) nor ended: a later archive may still go on with it.
    EXPECT_EQ(get_json(gateway.port(), "/api/runs/archived-8")["state"], "interrupted");

    const nlohmann::json run = get_json(gateway.port(), "/api/runs/archived-7");
    EXPECT_EQ(run["state"], "aborted");
    EXPECT_EQ(run["end_detail"], "beam lost");
    EXPECT_EQ(run["composition"], "Zr52.5Cu17.9Ni14.6Al10Ti5");
    EXPECT_EQ(run["config"]["n_q"], 1000);
    ASSERT_EQ(run["history"].size(), 2U);
    EXPECT_EQ(run["history"][1]["frames_p"], 20);
    ASSERT_EQ(run["log"].size(), 1U);
    EXPECT_EQ(run["log"][0]["note"], "from the file");
    const nlohmann::json result = get_json(gateway.port(), "/api/runs/archived-7/result");
    EXPECT_DOUBLE_EQ(result["summary"]["alpha"].get<double>(), 1.25e-3);
    EXPECT_EQ(result["summary"]["mechanism"], "bond-stretching");
    EXPECT_EQ(result["is_final"], true);
    EXPECT_EQ(result["curves"]["s0"]["x"], (std::vector<double>{0.5, 1.0, 1.5, 2.0}));
    EXPECT_DOUBLE_EQ(result["curves"]["g2"]["value"][3].get<double>(), 3 * 1.25e-3);
    // Names that are not a run file's stay outside.
    EXPECT_EQ(request(gateway.port(), "/api/runs/..%2Fsecret").status, 400U);
    EXPECT_EQ(request(gateway.port(), "/api/runs/.hidden").status, 404U);
}

}  // namespace
}  // namespace anisoflow::gateway
