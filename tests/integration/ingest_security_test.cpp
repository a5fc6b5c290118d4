// CURVE on a real ingest (docs/security.md): ingest's tcp sockets are CURVE servers; a reduce
// worker holding a listed certificate gets every frame and the control messages, while a plain
// peer and a peer whose certificate is not listed get nothing. The simulator's stream comes over
// ipc://, which stays plain (it never leaves the host), except in the test of the clients an
// operator runs from other hosts (run control, the simulator's tcp stream).

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "anisoflow/testing/cli_runner.hpp"
#include "anisoflow/transport/curve.hpp"
#include "anisoflow/transport/socket_security.hpp"

#include "ingest_harness.hpp"

namespace anisoflow::ingest {
namespace {

using namespace harness;

// Certificates written by the real `anisoflow keys`: secret ones in `dir`, the trusted public
// ones copied into dir/public (what an operator distributes).
void make_certificates(const std::filesystem::path& dir, const std::vector<std::string>& trusted,
                       const std::vector<std::string>& untrusted) {
    std::vector<std::string> args = {"keys", dir.string()};
    args.insert(args.end(), trusted.begin(), trusted.end());
    args.insert(args.end(), untrusted.begin(), untrusted.end());
    const testing::CliRun run = testing::run_cli(ANISOFLOW_CLI, dir, args);
    ASSERT_EQ(run.exit_code, 0) << testing::describe(run);
    std::filesystem::create_directories(dir / "public");
    for (const std::string& name : trusted) {
        std::filesystem::copy_file(dir / (name + ".key"), dir / "public" / (name + ".key"));
    }
}

transport::SocketSecurity security_of(const std::filesystem::path& dir, const std::string& name) {
    cfg::Security config;
    config.set_curve_certificate((dir / (name + ".key_secret")).string());
    config.set_curve_public_keys_dir((dir / "public").string());
    auto security = transport::SocketSecurity::load(config);
    EXPECT_TRUE(security) << security.error().message;
    return security ? std::move(*security) : transport::SocketSecurity();
}

TEST(IngestSecurity, OnlyAListedWorkerReceivesFramesOverCurve) {
    const auto dir = testing::scratch_dir();
    // Clients find the server's certificate by the host they connect to: ">tcp://127.0.0.1:..."
    // -> public/127.0.0.1.key.
    // "stranger" knows the server's key but is not listed.
    make_certificates(dir, {"127.0.0.1", "reduce-0"}, {"stranger"});

    cfg::IngestConfig config = base_config();
    config.mutable_security()->set_curve_certificate((dir / "127.0.0.1.key_secret").string());
    config.mutable_security()->set_curve_public_keys_dir((dir / "public").string());
    config.mutable_source()->set_kind(cfg::SOURCE_KIND_ANISOFLOW_STREAM);
    config.mutable_source()->set_stream_address("@ipc://" + (dir / "stream.ipc").string());
    RunningIngest ingest(config);

    zmq::context_t context;
    const transport::SocketSecurity worker_keys = security_of(dir, "reduce-0");
    FakeReducer reducer(context, ingest.endpoints(), worker_keys, "reduce-0");
    // Intruders: a plain worker, and one with CURVE keys ingest was not told about.
    zmq::context_t intruders;
    FakeReducer plain(intruders, ingest.endpoints(), {}, "plain");
    cfg::Security stranger_config;
    stranger_config.set_curve_certificate((dir / "stranger.key_secret").string());
    stranger_config.set_curve_public_keys_dir((dir / "public").string());
    auto stranger_keys = transport::SocketSecurity::load(stranger_config);
    ASSERT_TRUE(stranger_keys) << stranger_keys.error().message;
    FakeReducer stranger(intruders, ingest.endpoints(), *stranger_keys, "stranger");

    testing::CliRun run;
    std::thread simulator([&] {
        run = testing::run_cli(ANISOFLOW_CLI, dir,
                               {"simulate", "--stream", ">ipc://" + (dir / "stream.ipc").string(),
                                "--fps", "200", "--rows", "32", "--cols", "32", "--frames", "3",
                                "--darks", "1", "--run-id", "curve-run", "--distance", "0.05"});
    });
    const auto end = reducer.until_run_end("curve-run");
    simulator.join();
    ASSERT_EQ(run.exit_code, 0) << testing::describe(run);
    ASSERT_TRUE(end) << "the listed worker saw no RunEnd over CURVE";
    EXPECT_EQ(reducer.frames.size(), 1U + 1U + 3U + 3U);  // dark, flat, P, N
    EXPECT_TRUE(reducer.control_starts.contains("curve-run"));

    for (FakeReducer* intruder : {&plain, &stranger}) {
        intruder->serve(200ms);
        intruder->read_control();
        EXPECT_TRUE(intruder->frames.empty());
        EXPECT_TRUE(intruder->starts.empty());
        EXPECT_TRUE(intruder->control_starts.empty());
        EXPECT_TRUE(intruder->ends.empty());
    }
}

// The two clients an operator runs from other hosts, `anisoflow run` (run control) and the
// simulator standing in for a detector (`simulate --stream`), over tcp to a CURVE ingest.
TEST(IngestSecurity, RunControlOverCurveNeedsATrustedCertificate) {
    // Run control drives a detector's stream; the detector itself stays silent here.
    // (dectris_config writes its run file into a fresh scratch directory: first.)
    zmq::context_t context;
    FakeDetector detector(context);
    cfg::IngestConfig config = dectris_config(detector.endpoint, dectris::Protocol::kStreamV2);
    const auto dir = testing::scratch_dir() / "keys";
    std::filesystem::create_directories(dir);
    make_certificates(dir, {"127.0.0.1", "operator"}, {"stranger"});
    const std::string public_dir = (dir / "public").string();
    const auto secret = [&](const std::string& name) {
        return (dir / (name + ".key_secret")).string();
    };
    config.mutable_security()->set_curve_certificate(secret("127.0.0.1"));
    config.mutable_security()->set_curve_public_keys_dir(public_dir);
    config.mutable_endpoints()->mutable_run_control()->set_address("@tcp://127.0.0.1:*");
    RunningIngest ingest(config);
    ASSERT_FALSE(ingest.endpoints().run_control.empty());

    const auto run = [&](const std::vector<std::string>& args) {
        return testing::run_cli(ANISOFLOW_CLI, dir,
                                testing::concat({"run", "--address", ingest.endpoints().run_control,
                                                 "--timeout-ms", "1500"},
                                                args));
    };
    const testing::CliRun trusted = run({"--curve-certificate", secret("operator"),
                                         "--curve-public-keys-dir", public_dir, "status"});
    EXPECT_EQ(trusted.exit_code, 0) << testing::describe(trusted);
    // Not listed, or plain: ingest refuses the handshake, so no reply ever comes.
    const testing::CliRun stranger = run({"--curve-certificate", secret("stranger"),
                                          "--curve-public-keys-dir", public_dir, "status"});
    EXPECT_EQ(stranger.exit_code, 1) << testing::describe(stranger);
    EXPECT_NE(stranger.err.find("no reply"), std::string::npos) << stranger.err;
    const testing::CliRun plain = run({"status"});
    EXPECT_EQ(plain.exit_code, 1) << testing::describe(plain);
    // A public certificate given as the secret one is refused by name, before any socket.
    const testing::CliRun swapped = run({"--curve-certificate", (dir / "operator.key").string(),
                                         "--curve-public-keys-dir", public_dir, "status"});
    EXPECT_EQ(swapped.exit_code, 1) << testing::describe(swapped);
    EXPECT_NE(swapped.err.find("--curve-certificate"), std::string::npos) << swapped.err;
    EXPECT_NE(swapped.err.find("operator.key"), std::string::npos) << swapped.err;
}

TEST(IngestSecurity, TheSimulatorsStreamOverCurveReachesAListedWorker) {
    const auto dir = testing::scratch_dir();
    make_certificates(dir, {"127.0.0.1", "detector", "reduce-0"}, {});
    cfg::IngestConfig config = base_config();
    config.mutable_security()->set_curve_certificate((dir / "127.0.0.1.key_secret").string());
    config.mutable_security()->set_curve_public_keys_dir((dir / "public").string());
    config.mutable_source()->set_kind(cfg::SOURCE_KIND_ANISOFLOW_STREAM);
    config.mutable_source()->set_stream_address("@tcp://127.0.0.1:*");
    RunningIngest ingest(config);

    zmq::context_t context;
    const transport::SocketSecurity worker_keys = security_of(dir, "reduce-0");
    FakeReducer reducer(context, ingest.endpoints(), worker_keys, "reduce-0");
    const testing::CliRun simulated = testing::run_cli(ANISOFLOW_CLI, dir,
                                                       {"simulate",
                                                        "--stream",
                                                        ">" + ingest.endpoints().source,
                                                        "--curve-certificate",
                                                        (dir / "detector.key_secret").string(),
                                                        "--curve-public-keys-dir",
                                                        (dir / "public").string(),
                                                        "--fps",
                                                        "200",
                                                        "--rows",
                                                        "32",
                                                        "--cols",
                                                        "32",
                                                        "--frames",
                                                        "2",
                                                        "--darks",
                                                        "1",
                                                        "--run-id",
                                                        "curve-stream",
                                                        "--distance",
                                                        "0.05"});
    ASSERT_EQ(simulated.exit_code, 0) << testing::describe(simulated);
    ASSERT_TRUE(reducer.until_run_end("curve-stream")) << "no RunEnd from a CURVE stream";
    EXPECT_EQ(reducer.frames.size(), 1U + 1U + 2U + 2U);  // dark, flat, P, N
}

TEST(IngestSecurity, HalfAConfigurationOrAMissingCertificateIsRefusedByName) {
    const auto dir = testing::scratch_dir();
    cfg::IngestConfig config = base_config();
    config.mutable_source()->set_kind(cfg::SOURCE_KIND_ANISOFLOW_STREAM);
    config.mutable_source()->set_stream_address("@tcp://127.0.0.1:*");
    config.mutable_security()->set_curve_certificate((dir / "missing.key_secret").string());
    metrics::Registry registry;
    auto half = IngestService::create(config, registry);
    ASSERT_FALSE(half);
    EXPECT_NE(half.error().message.find("curve_public_keys_dir"), std::string::npos)
        << half.error().message;
    config.mutable_security()->set_curve_public_keys_dir(dir.string());
    auto missing = IngestService::create(config, registry);
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("security.curve_certificate"), std::string::npos)
        << missing.error().message;
    EXPECT_NE(missing.error().message.find("missing.key_secret"), std::string::npos);
}

}  // namespace
}  // namespace anisoflow::ingest
