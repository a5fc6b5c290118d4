// CURVE on a real ingest (docs/security.md): ingest's tcp sockets are CURVE servers; a reduce
// worker holding a listed certificate gets every frame and the control messages, while a plain
// peer and a peer whose certificate is not listed get nothing. The simulator's stream comes over
// ipc://, which stays plain (it never leaves the host).

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
