// service_main() end to end, in process: --check-config, invalid configurations, bad command
// lines, and a service loop that runs until SIGTERM.

#include "anisoflow/runtime/service_main.hpp"

#include <csignal>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

namespace anisoflow::runtime {
namespace {

// Runs service_main<ReduceConfig>("reduce", ...) with `arguments` after the program name.
int run_reduce(std::vector<std::string> arguments, const ServiceLoop<cfg::ReduceConfig>& loop) {
    arguments.insert(arguments.begin(), "anisoflow-reduce");
    std::vector<char*> argv;
    argv.reserve(arguments.size());
    for (std::string& argument : arguments) {
        argv.push_back(argument.data());
    }
    return service_main<cfg::ReduceConfig>("reduce", static_cast<int>(argv.size()), argv.data(),
                                           loop);
}

Result<void> never_called(const cfg::ReduceConfig& /*config*/, ServiceContext& /*context*/) {
    ADD_FAILURE() << "the service loop must not run";
    return {};
}

TEST(ServiceMain, CheckConfigPrintsTheEffectiveConfigurationAndExitsZero) {
    ::testing::internal::CaptureStdout();
    const int code = run_reduce({"--check-config", "--set", "threads=3"}, never_called);
    const std::string out = ::testing::internal::GetCapturedStdout();
    EXPECT_EQ(code, 0);
    EXPECT_NE(out.find("threads = 3"), std::string::npos) << out;
    EXPECT_NE(out.find("pending_frames_max = 64"), std::string::npos) << out;
    EXPECT_NE(out.find("[endpoints.frames_in]"), std::string::npos) << out;
    // What it prints loads back into the same configuration.
    cfg::ReduceConfig printed;
    ASSERT_TRUE(merge_toml(printed, out, "printed"));
    EXPECT_EQ(printed.threads(), 3U);
    EXPECT_TRUE(validate(printed).empty());
}

TEST(ServiceMain, AnEmptyInstanceIsNamedAfterTheHostAndProcess) {
    // docker compose --scale reduce=N starts N workers from one configuration.
    ::testing::internal::CaptureStdout();
    const int code = run_reduce({"--check-config", "--set", "instance="}, never_called);
    const std::string out = ::testing::internal::GetCapturedStdout();
    EXPECT_EQ(code, 0);
    cfg::ReduceConfig printed;
    ASSERT_TRUE(merge_toml(printed, out, "printed"));
    EXPECT_EQ(printed.instance(), detail::default_instance_name("reduce"));
    EXPECT_EQ(printed.instance().rfind("reduce-", 0), 0U) << printed.instance();
    EXPECT_NE(printed.instance().find("-" + std::to_string(::getpid())), std::string::npos)
        << printed.instance();
}

TEST(ServiceMain, AnInvalidConfigurationListsEveryProblemAndExitsOne) {
    ::testing::internal::CaptureStderr();
    const int code = run_reduce(
        {"--check-config", "--set", "threads=0", "--set", "endpoints.frames_in.address="},
        never_called);
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(code, 1);
    EXPECT_NE(err.find("anisoflow-reduce: threads: 0"), std::string::npos) << err;
    EXPECT_NE(err.find("anisoflow-reduce: endpoints.frames_in.address: empty"), std::string::npos)
        << err;
}

TEST(ServiceMain, AnUnknownKeyExitsOneAndABadCommandLineTwo) {
    ::testing::internal::CaptureStderr();
    EXPECT_EQ(run_reduce({"--set", "threads_max=3"}, never_called), 1);
    EXPECT_EQ(run_reduce({"--frobnicate"}, never_called), 2);
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("threads_max: unknown key"), std::string::npos) << err;
    EXPECT_NE(err.find("--frobnicate"), std::string::npos) << err;
}

TEST(ServiceMain, VersionPrintsAndExitsZero) {
    ::testing::internal::CaptureStdout();
    EXPECT_EQ(run_reduce({"--version"}, never_called), 0);
    EXPECT_NE(::testing::internal::GetCapturedStdout().find("anisoflow-reduce"), std::string::npos);
}

TEST(ServiceMain, RunsTheLoopWithMetricsUntilSigterm) {
    int runs = 0;
    const int code = run_reduce(
        {"--set", "metrics.bind_address=127.0.0.1:0", "--log-level", "warn", "--set", "threads=2"},
        [&](const cfg::ReduceConfig& config, ServiceContext& context) -> Result<void> {
            ++runs;
            EXPECT_EQ(config.threads(), 2U);
            EXPECT_EQ(context.service, "reduce");
            EXPECT_GT(context.metrics_port, 0);
            auto frames = context.metrics.counter("anisoflow_reduce_frames_total", "Frames");
            EXPECT_TRUE(frames);
            EXPECT_FALSE(context.stop.stop_requested());
            std::raise(SIGTERM);  // what `kill` or Kubernetes would send
            if (!context.stop.token().wait_for(std::chrono::milliseconds(10000))) {
                return fail(ErrorCode::kIo, "SIGTERM did not request stop");
            }
            return {};
        });
    EXPECT_EQ(code, 0);
    EXPECT_EQ(runs, 1);
}

TEST(ServiceMain, AFailingOrThrowingLoopExitsOne) {
    EXPECT_EQ(run_reduce({"--set", "metrics.enabled=false", "--log-level", "off"},
                         [](const cfg::ReduceConfig&, ServiceContext&) -> Result<void> {
                             return fail(ErrorCode::kIo, "socket gone");
                         }),
              1);
    EXPECT_EQ(run_reduce({"--set", "metrics.enabled=false", "--log-level", "off"},
                         [](const cfg::ReduceConfig&, ServiceContext&) -> Result<void> {
                             throw std::runtime_error("uncaught");
                         }),
              1);
}

}  // namespace
}  // namespace anisoflow::runtime
