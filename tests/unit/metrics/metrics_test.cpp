// lib/metrics: a real exposer on an ephemeral port, scraped over real HTTP by metrics::scrape and
// read back with metrics::parse_exposition.

#include "anisoflow/metrics/metrics.hpp"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "anisoflow/metrics/scrape.hpp"

namespace anisoflow::metrics {
namespace {

using namespace std::chrono_literals;
constexpr auto kPatience = 5s;  // only reached when the server is broken

// One server for the scrape tests: stopping a civetweb server takes about 2 s (its listener polls
// with a 2 s quantum), so the suite starts it once. Each test uses its own metric names.
class Scrape : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        shared_registry =
            new Registry();  // NOLINT(cppcoreguidelines-owning-memory): suite lifetime
        auto server = MetricsServer::start("127.0.0.1:0", *shared_registry);
        ASSERT_TRUE(server) << server.error().message;
        shared_server =
            new MetricsServer(std::move(*server));  // NOLINT(cppcoreguidelines-owning-memory)
    }
    static void TearDownTestSuite() {
        delete shared_server;    // NOLINT(cppcoreguidelines-owning-memory)
        delete shared_registry;  // NOLINT(cppcoreguidelines-owning-memory)
        shared_server = nullptr;
        shared_registry = nullptr;
    }
    static std::map<std::string, double> scrape() {
        const auto body = metrics::scrape("127.0.0.1", shared_server->port(), kPatience);
        EXPECT_TRUE(body) << body.error().message;
        auto samples = body ? parse_exposition(*body) : std::map<std::string, double>{};
        EXPECT_TRUE(samples) << samples.error().message;
        return samples ? *samples : std::map<std::string, double>{};
    }
    static inline Registry* shared_registry = nullptr;
    static inline MetricsServer* shared_server = nullptr;
};

TEST_F(Scrape, ServesCountersGaugesAndHistogramsOverHttp) {
    Registry& registry = *shared_registry;
    auto frames = registry.counter("anisoflow_test_frames_sent_total", "Frames sent");
    auto depth =
        registry.gauge("anisoflow_test_queue_depth_frames", "Frames queued", {{"queue", "frames"}});
    auto latency =
        registry.histogram("anisoflow_test_frame_latency_seconds", "Latency", {0.001, 0.01, 0.1});
    ASSERT_TRUE(frames && depth && latency);
    frames->increment();
    frames->increment(2.0);
    depth->set(7.0);
    depth->decrement();
    latency->observe(0.005);
    latency->observe(0.05);
    latency->observe(5.0);

    ASSERT_GT(shared_server->port(), 0);

    const auto body = metrics::scrape("127.0.0.1", shared_server->port(), kPatience);
    ASSERT_TRUE(body) << body.error().message;
    const auto parsed = parse_exposition(*body);
    ASSERT_TRUE(parsed) << parsed.error().message;
    const auto& samples = *parsed;
    EXPECT_EQ(samples.at("anisoflow_test_frames_sent_total"), 3.0);
    EXPECT_EQ(samples.at("anisoflow_test_queue_depth_frames{queue=\"frames\"}"), 6.0);
    EXPECT_EQ(samples.at("anisoflow_test_frame_latency_seconds_count"), 3.0);
    EXPECT_EQ(samples.at("anisoflow_test_frame_latency_seconds_bucket{le=\"0.001\"}"), 0.0);
    EXPECT_EQ(samples.at("anisoflow_test_frame_latency_seconds_bucket{le=\"0.01\"}"), 1.0);
    EXPECT_EQ(samples.at("anisoflow_test_frame_latency_seconds_bucket{le=\"0.1\"}"), 2.0);
    EXPECT_EQ(samples.at("anisoflow_test_frame_latency_seconds_bucket{le=\"+Inf\"}"), 3.0);
    EXPECT_DOUBLE_EQ(samples.at("anisoflow_test_frame_latency_seconds_sum"), 5.055);
    EXPECT_NE(body->find("# HELP anisoflow_test_frames_sent_total Frames sent"), std::string::npos);
    EXPECT_NE(body->find("# TYPE anisoflow_test_frames_sent_total counter"), std::string::npos);

    // A scrape reads live values, not a snapshot taken at start.
    frames->increment(10.0);
    EXPECT_EQ(scrape().at("anisoflow_test_frames_sent_total"), 13.0);
}

TEST_F(Scrape, ExposesBuildInfoWithVersionAndGitSha) {
    const std::string key = "anisoflow_build_info{git_sha=\"" + std::string(build_git_sha()) +
                            "\",version=\"" + std::string(build_version()) + "\"}";
    const auto samples = scrape();
    ASSERT_TRUE(samples.contains(key)) << key;
    EXPECT_EQ(samples.at(key), 1.0);
    EXPECT_FALSE(build_version().empty());
    EXPECT_FALSE(build_git_sha().empty());
}

TEST_F(Scrape, RejectionReasonsAreOneLabelledFamilyStartingAtZero) {
    auto rejected =
        shared_registry->counter_family("anisoflow_ingest_frames_rejected_total", "Frames rejected",
                                        "reason", {"payload_size_mismatch", "absurd_shape"});
    ASSERT_TRUE(rejected) << rejected.error().message;
    rejected->with("payload_size_mismatch").increment();
    rejected->with("payload_size_mismatch").increment();
    rejected->with("malformed_header").increment();

    const auto samples = scrape();
    EXPECT_EQ(
        samples.at("anisoflow_ingest_frames_rejected_total{reason=\"payload_size_mismatch\"}"),
        2.0);
    EXPECT_EQ(samples.at("anisoflow_ingest_frames_rejected_total{reason=\"absurd_shape\"}"), 0.0);
    EXPECT_EQ(samples.at("anisoflow_ingest_frames_rejected_total{reason=\"malformed_header\"}"),
              1.0);
}

TEST_F(Scrape, ABusyPortIsAnErrorNamingTheAddress) {
    Registry registry;
    const std::string busy = "127.0.0.1:" + std::to_string(shared_server->port());
    auto clash = MetricsServer::start(busy, registry);
    ASSERT_FALSE(clash);
    EXPECT_NE(clash.error().message.find(busy), std::string::npos) << clash.error().message;
}

TEST(MetricsServer, RejectsAnAddressWithoutPort) {
    Registry registry;
    auto server = MetricsServer::start("localhost", registry);
    ASSERT_FALSE(server);
    EXPECT_NE(server.error().message.find("'localhost'"), std::string::npos);
}

TEST(Registry, RefusesNamesOutsideTheHouseShape) {
    Registry registry;
    EXPECT_FALSE(registry.counter("frames_total", "no prefix"));
    EXPECT_FALSE(registry.counter("anisoflow_ingest_frames", "counter without _total"));
    EXPECT_FALSE(registry.gauge("anisoflow_ingest_depth_total", "gauge with _total"));
    EXPECT_FALSE(registry.gauge("anisoflow_Ingest_depth", "upper case"));
    EXPECT_FALSE(registry.histogram("anisoflow_x_seconds", "unsorted", {0.1, 0.01}));
    auto bad = registry.counter("anisoflow_ingest_frames", "counter without _total");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("_total"), std::string::npos);
    EXPECT_TRUE(registry.gauge("anisoflow_ingest_queue_depth_frames", "fine"));
}

TEST(Registry, ANameRegisteredAgainReturnsTheSameSeriesButAnotherTypeIsRefused) {
    Registry registry;
    auto a = registry.counter("anisoflow_test_events_total", "Events");
    auto b = registry.counter("anisoflow_test_events_total", "Events");
    ASSERT_TRUE(a && b);
    a->increment(4.0);
    EXPECT_EQ(b->value(), 4.0);

    auto g = registry.gauge("anisoflow_test_level_bytes", "Level");
    ASSERT_TRUE(g);
    auto clash = registry.histogram("anisoflow_test_level_bytes", "Level", {1.0});
    EXPECT_FALSE(clash);
}

TEST(Registry, HandlesAreSafeToIncrementFromManyThreads) {
    Registry registry;
    auto counter = registry.counter("anisoflow_test_hits_total", "Hits");
    ASSERT_TRUE(counter);
    constexpr int kThreads = 4;
    constexpr int kPerThread = 10000;
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([c = *counter]() mutable {
            for (int i = 0; i < kPerThread; ++i) {
                c.increment();
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    EXPECT_EQ(counter->value(), double{kThreads} * kPerThread);
    EXPECT_NE(registry.serialize().find("anisoflow_test_hits_total 40000"), std::string::npos);
}

TEST(ScrapeClient, NoListenerIsAnErrorNamingTheUrl) {
    // Port 1 on loopback: nothing listens there without root.
    const auto body = metrics::scrape("127.0.0.1", 1, kPatience);
    ASSERT_FALSE(body);
    EXPECT_NE(body.error().message.find("http://127.0.0.1:1/metrics"), std::string::npos)
        << body.error().message;
}

TEST(ParseExposition, ReadsLabelsSpecialValuesAndTimestamps) {
    const auto samples = parse_exposition(
        "# HELP a_total things\n# TYPE a_total counter\na_total 3\n"
        "b_seconds_bucket{le=\"+Inf\"} 7\nc{reason=\"two words\"} 2.5 1700000000000\n"
        "d NaN\ne -Inf\r\n");
    ASSERT_TRUE(samples) << samples.error().message;
    EXPECT_EQ(samples->at("a_total"), 3.0);
    EXPECT_EQ(samples->at("b_seconds_bucket{le=\"+Inf\"}"), 7.0);
    EXPECT_EQ(samples->at("c{reason=\"two words\"}"), 2.5);
    EXPECT_TRUE(std::isnan(samples->at("d")));
    EXPECT_TRUE(std::isinf(samples->at("e")));
    EXPECT_EQ(samples->size(), 5U);
}

TEST(ParseExposition, ALineWithoutANumberIsNamed) {
    const auto samples = parse_exposition("a_total 3\nb_total three\n");
    ASSERT_FALSE(samples);
    EXPECT_NE(samples.error().message.find("line 2"), std::string::npos) << samples.error().message;
}

}  // namespace
}  // namespace anisoflow::metrics
