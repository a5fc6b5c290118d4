// lib/metrics: a real exposer on an ephemeral port, scraped over real HTTP (a blocking GET over a
// POSIX socket) and read back from the Prometheus text exposition format.

#include "anisoflow/metrics/metrics.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

namespace anisoflow::metrics {
namespace {

// The body of GET http://127.0.0.1:<port><path>, or nullopt when the request failed.
std::optional<std::string> http_get(std::uint16_t port, const std::string& path) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return std::nullopt;
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the POSIX sockets API
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
        ::close(fd);
        return std::nullopt;
    }
    // HTTP/1.0: the server closes the connection after the response, so EOF ends the body.
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    std::size_t sent = 0;
    while (sent < request.size()) {
        const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, 0);
        if (n <= 0) {
            ::close(fd);
            return std::nullopt;
        }
        sent += static_cast<std::size_t>(n);
    }
    std::string response;
    std::vector<char> buffer(4096);
    while (true) {
        const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
        if (n < 0) {
            ::close(fd);
            return std::nullopt;
        }
        if (n == 0) {
            break;
        }
        response.append(buffer.data(), static_cast<std::size_t>(n));
    }
    ::close(fd);
    if (response.rfind("HTTP/1.", 0) != 0 || response.find(" 200 ") == std::string::npos) {
        return std::nullopt;
    }
    const auto body = response.find("\r\n\r\n");
    if (body == std::string::npos) {
        return std::nullopt;
    }
    return response.substr(body + 4);
}

// Samples of a text exposition: "name{labels}" (exactly as written) -> value.
std::map<std::string, double> parse_exposition(const std::string& text) {
    std::map<std::string, double> samples;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.empty() || line.front() == '#') {
            continue;
        }
        const auto space = line.rfind(' ');
        if (space == std::string::npos) {
            ADD_FAILURE() << "unparseable exposition line: " << line;
            continue;
        }
        samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
    }
    return samples;
}

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
        const auto body = http_get(shared_server->port(), "/metrics");
        EXPECT_TRUE(body.has_value());
        return body ? parse_exposition(*body) : std::map<std::string, double>{};
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

    const auto body = http_get(shared_server->port(), "/metrics");
    ASSERT_TRUE(body.has_value());
    const auto samples = parse_exposition(*body);
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

}  // namespace
}  // namespace anisoflow::metrics
