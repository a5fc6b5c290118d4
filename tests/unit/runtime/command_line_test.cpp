// The command line every service shares and the effective configuration it produces.

#include "anisoflow/runtime/command_line.hpp"

#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "anisoflow/runtime/service_config.hpp"
#include "anisoflow/testing/test_paths.hpp"

namespace anisoflow::runtime {
namespace {

TEST(ParseCommandLine, ReadsEveryOption) {
    auto parsed = parse_command_line(
        "reduce", {"--config", "site.toml", "--check-config", "--log-level", "debug", "--set",
                   "threads=8", "--set", "endpoints.frames_in.address=>tcp://h:1"});
    ASSERT_TRUE(parsed) << parsed.error().message;
    EXPECT_EQ(parsed->config_path, "site.toml");
    EXPECT_TRUE(parsed->check_config);
    EXPECT_EQ(parsed->log_level, "debug");
    ASSERT_EQ(parsed->overrides.size(), 2U);
    EXPECT_EQ(parsed->overrides[0], "threads=8");
    EXPECT_EQ(parsed->overrides[1], "endpoints.frames_in.address=>tcp://h:1");
    EXPECT_FALSE(parsed->early_exit);
}

TEST(ParseCommandLine, NothingGivenMeansDefaults) {
    auto parsed = parse_command_line("ingest", {});
    ASSERT_TRUE(parsed);
    EXPECT_TRUE(parsed->config_path.empty());
    EXPECT_FALSE(parsed->check_config);
    EXPECT_TRUE(parsed->overrides.empty());
}

TEST(ParseCommandLine, VersionAndHelpExitEarlyWithTheirText) {
    auto version = parse_command_line("archive", {"--version"});
    ASSERT_TRUE(version);
    ASSERT_TRUE(version->early_exit);
    EXPECT_EQ(*version->early_exit, 0);
    EXPECT_NE(version->early_exit_text.find("anisoflow-archive 0."), std::string::npos)
        << version->early_exit_text;
    EXPECT_NE(version->early_exit_text.find("(git "), std::string::npos);

    auto help = parse_command_line("archive", {"--help"});
    ASSERT_TRUE(help);
    ASSERT_TRUE(help->early_exit);
    EXPECT_EQ(*help->early_exit, 0);
    EXPECT_NE(help->early_exit_text.find("--check-config"), std::string::npos);
    EXPECT_NE(help->early_exit_text.find("--set"), std::string::npos);
}

TEST(ParseCommandLine, RejectsUnknownOptionsAndMissingValues) {
    auto unknown = parse_command_line("ingest", {"--threads", "4"});
    ASSERT_FALSE(unknown);
    EXPECT_NE(unknown.error().message.find("--threads"), std::string::npos)
        << unknown.error().message;
    EXPECT_FALSE(parse_command_line("ingest", {"--config"}));
    EXPECT_FALSE(parse_command_line("ingest", {"--set"}));
    EXPECT_FALSE(parse_command_line("ingest", {"stray"}));
}

TEST(LoadEffectiveConfig, LayersDefaultsFileLogLevelAndOverridesInThatOrder) {
    const auto file = testing::scratch_dir() / "site.toml";
    std::ofstream(file) << "threads = 2\nqueue_capacity_frames = 5\n[logging]\nlevel = \"warn\"\n";
    auto parsed = parse_command_line(
        "reduce", {"--config", file.string(), "--log-level", "debug", "--set", "threads=8", "--set",
                   "endpoints.reduced_out.address=>tcp://a:7"});
    ASSERT_TRUE(parsed);
    cfg::ReduceConfig config;
    auto loaded = load_effective_config(config, *parsed);
    ASSERT_TRUE(loaded) << loaded.error().message;
    EXPECT_EQ(config.threads(), 8U);                            // --set beats the file
    EXPECT_EQ(config.queue_capacity_frames(), 5U);              // the file beats the defaults
    EXPECT_EQ(config.pending_frames_max(), 64U);                // the built-in default
    EXPECT_EQ(config.logging().level(), cfg::LOG_LEVEL_DEBUG);  // --log-level beats the file
    EXPECT_EQ(config.endpoints().reduced_out().address(), ">tcp://a:7");
}

TEST(LoadEffectiveConfig, NamesTheBadPartOfTheCommandLine) {
    cfg::ReduceConfig config;
    auto bad_set = parse_command_line("reduce", {"--set", "thread=8"});
    ASSERT_TRUE(bad_set);
    auto loaded = load_effective_config(config, *bad_set);
    ASSERT_FALSE(loaded);
    EXPECT_NE(loaded.error().message.find("--set thread=8: thread: unknown key"), std::string::npos)
        << loaded.error().message;

    auto bad_level = parse_command_line("reduce", {"--log-level", "loud"});
    ASSERT_TRUE(bad_level);
    auto level = load_effective_config(config, *bad_level);
    ASSERT_FALSE(level);
    EXPECT_NE(level.error().message.find("--log-level loud"), std::string::npos);

    auto missing = parse_command_line("reduce", {"--config", "/nonexistent/reduce.toml"});
    ASSERT_TRUE(missing);
    auto file = load_effective_config(config, *missing);
    ASSERT_FALSE(file);
    EXPECT_NE(file.error().message.find("/nonexistent/reduce.toml"), std::string::npos);
}

}  // namespace
}  // namespace anisoflow::runtime
