// Fault tolerance of the streaming chain with the REAL service binaries (issue 4 acceptance):
// anisoflow-ingest (anisoflow stream source), reduce workers, anisoflow-analyze and
// anisoflow-archive run as child processes on ipc:// sockets in a short scratch directory, and
// `anisoflow simulate --stream` feeds a small P/N run at a modest frame rate.
//  - One of two reducers is killed with SIGKILL the moment its reduced-frames counter moves (its
//    last cake possibly still in its ZeroMQ queue): ingest keeps every frame until analyze has
//    its cake, so it re-dispatches the dead worker's unconfirmed frames to the survivor, the
//    final AnalysisResult counts every data frame and the run file holds every cake once.
//  - The only reducer is killed: ingest holds the frames (workers_alive 0, a repeated warning)
//    until another reducer starts, which gets the run's start, darks and flat, then the frames.
//  - Frames that never reach a worker are counted missing after the drain timeouts.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <gtest/gtest.h>
#include <hdf5.h>
#include <signal.h>  // NOLINT(modernize-deprecated-headers): kill() and SIGKILL are POSIX
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.hpp>

#include "anisoflow/testing/child_process.hpp"
#include "anisoflow/testing/cli_runner.hpp"
#include "anisoflow/testing/hdf5_values.hpp"
#include "anisoflow/testing/test_paths.hpp"
#include "anisoflow/transport/dispatch.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/socket.hpp"

namespace anisoflow {
namespace {

using anisoflow::testing::read_fixed_string;
using anisoflow::testing::read_u64;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Only reached when something is broken; a passing test takes a few seconds.
constexpr auto kPatience = 30s;

constexpr std::size_t kDarks = 2;
constexpr std::size_t kFramesPerOrientation = 6;
constexpr const char* kFps = "5";  // 15 frames over ~3 s: the kill lands mid-run

using Child = testing::ChildProcess;

std::string http_metrics(std::uint16_t port) { return testing::http_get(port, "/metrics"); }

using testing::metric_value;

std::optional<std::uint16_t> logged_metrics_port(const Child& child) {
    return testing::logged_metrics_port(child, kPatience);
}

// Waits until `text` appears in the child's log.
bool wait_for_log(const Child& child, const std::string& text) {
    const auto deadline = Clock::now() + kPatience;
    while (Clock::now() < deadline) {
        if (child.log().find(text) != std::string::npos) {
            return true;
        }
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

// The chain's sockets, logs and archive in a scratch directory; every service is started by
// start_services() and is a child of the test.
class FaultChain {
  public:
    explicit FaultChain(const std::string& run_id)
        : run_id_(run_id),
          dir_(testing::scratch_dir()),
          // ipc paths are limited to ~100 characters: keep the sockets in a short directory.
          sockets_(std::filesystem::temp_directory_path() /
                   ("aff-" + std::to_string(::getpid()) + "-" + run_id)) {
        std::filesystem::create_directories(sockets_);
    }
    ~FaultChain() { std::filesystem::remove_all(sockets_); }
    FaultChain(const FaultChain&) = delete;
    FaultChain& operator=(const FaultChain&) = delete;
    FaultChain(FaultChain&&) = delete;
    FaultChain& operator=(FaultChain&&) = delete;

    [[nodiscard]] std::string ipc(const char* name) const {
        return "ipc://" + (sockets_ / name).string();
    }
    [[nodiscard]] std::filesystem::path log(const std::string& name) const {
        return dir_ / (name + ".log");
    }
    [[nodiscard]] std::filesystem::path run_file() const {
        return dir_ / "runs" / (run_id_ + ".nxs");
    }

    // Analyze and archive first, then ingest, then the reducers (which connect to both).
    // Without ingest (ingest_drain_ms < 0) the test binds the frames and control sockets itself.
    void start_services(std::size_t reducers, int ingest_drain_ms, int analyze_drain_ms) {
        const auto set = [](const std::string& key, const std::string& value) {
            return std::vector<std::string>{"--set", key + "=" + value};
        };
        std::vector<std::string> analyze =
            testing::concat(set("endpoints.reduced_in.address", "@" + ipc("reduced")),
                            set("endpoints.control_in.address", ">" + ipc("control")));
        analyze =
            testing::concat(analyze, set("endpoints.results_out.address", "@" + ipc("results")));
        analyze =
            testing::concat(analyze, set("endpoints.archive_out.address", "@" + ipc("archive")));
        analyze = testing::concat(analyze, set("recompute_interval_ms", "200"));
        analyze =
            testing::concat(analyze, set("drain_timeout_ms", std::to_string(analyze_drain_ms)));
        analyze = testing::concat(analyze, set("metrics.bind_address", "127.0.0.1:0"));
        analyze_.emplace(ANISOFLOW_ANALYZE, analyze, log("analyze"));

        std::vector<std::string> archive =
            testing::concat(set("endpoints.archive_in.address", ">" + ipc("archive")),
                            set("archive_dir", (dir_ / "runs").string()));
        archive = testing::concat(archive, set("metrics.enabled", "false"));
        archive_.emplace(ANISOFLOW_ARCHIVE, archive, log("archive"));

        if (ingest_drain_ms >= 0) {
            std::vector<std::string> ingest =
                testing::concat(set("source.kind", "anisoflow_stream"),
                                set("source.stream_address", "@" + ipc("source")));
            ingest =
                testing::concat(ingest, set("endpoints.frames_out.address", "@" + ipc("frames")));
            ingest =
                testing::concat(ingest, set("endpoints.control_out.address", "@" + ipc("control")));
            ingest = testing::concat(ingest, set("worker_timeout_ms", "1000"));
            ingest = testing::concat(ingest, set("heartbeat_interval_ms", "200"));
            ingest = testing::concat(ingest, set("run_start_republish_interval_ms", "200"));
            ingest =
                testing::concat(ingest, set("drain_timeout_ms", std::to_string(ingest_drain_ms)));
            // The warning about held frames repeats every send_timeout_ms.
            ingest = testing::concat(ingest, set("send_timeout_ms", "500"));
            ingest = testing::concat(ingest, set("metrics.bind_address", "127.0.0.1:0"));
            ingest_.emplace(ANISOFLOW_INGEST, ingest, log("ingest"));
        }

        for (std::size_t i = 0; i < reducers; ++i) {
            start_reducer("reduce-" + std::to_string(i));
        }
        for (std::size_t i = 0; ingest_ && i < reducers_.size(); ++i) {
            EXPECT_TRUE(wait_for_log(*ingest_, "worker joined")) << ingest_->describe();
        }
    }

    // One more reduce worker named `name` (its log: <name>.log, or <name>-<n>.log when the name
    // was used before).
    Child& start_reducer(const std::string& name) {
        const auto set = [](const std::string& key, const std::string& value) {
            return std::vector<std::string>{"--set", key + "=" + value};
        };
        std::vector<std::string> reduce = testing::concat(
            set("instance", name), set("endpoints.frames_in.address", ">" + ipc("frames")));
        reduce = testing::concat(reduce, set("endpoints.control_in.address", ">" + ipc("control")));
        reduce =
            testing::concat(reduce, set("endpoints.reduced_out.address", ">" + ipc("reduced")));
        reduce = testing::concat(reduce, set("heartbeat_interval_ms", "200"));
        reduce = testing::concat(reduce, set("threads", "1"));
        reduce = testing::concat(reduce, set("queue_capacity_frames", "2"));
        // The test reads the workers' frames_reduced_total to time the kill.
        reduce = testing::concat(reduce, set("metrics.bind_address", "127.0.0.1:0"));
        std::string log_name = name;
        for (int n = 1;
             std::find(reducer_logs_.begin(), reducer_logs_.end(), log_name) != reducer_logs_.end();
             ++n) {
            log_name = name + "-" + std::to_string(n);
        }
        reducer_logs_.push_back(log_name);
        reducers_.push_back(std::make_unique<Child>(ANISOFLOW_REDUCE, reduce, log(log_name)));
        return *reducers_.back();
    }

    void start_simulator() {
        simulator_.emplace(
            ANISOFLOW_CLI,
            std::vector<std::string>{
                "simulate", "--stream", ">" + ipc("source"), "--fps", kFps, "--rows", "128",
                "--cols", "128", "--frames", std::to_string(kFramesPerOrientation), "--darks",
                std::to_string(kDarks), "--run-id", run_id_, "--distance", "0.08", "--seed", "11"},
            log("simulate"));
    }

    // Kills reducer `index` with SIGKILL the moment its metrics show `frames` reduced: its last
    // cake may still sit in its ZeroMQ queue, its REDUCED ack already with ingest (the window
    // that lost a frame when a worker's ack closed the frame). Returns what they showed.
    double kill_reducer_after(std::size_t index, double frames) {
        Child& victim = *reducers_.at(index);
        const auto port = logged_metrics_port(victim);
        EXPECT_TRUE(port.has_value()) << victim.describe();
        if (!port) {
            return std::nan("");
        }
        const auto deadline = Clock::now() + kPatience;
        double reduced = 0.0;
        while (Clock::now() < deadline) {
            reduced = metric_value(http_metrics(*port), "anisoflow_reduce_frames_reduced_total");
            if (reduced >= frames) {
                break;
            }
            std::this_thread::sleep_for(1ms);
        }
        victim.signal(SIGKILL);
        EXPECT_TRUE(victim.wait_for(5s).has_value());
        return reduced;
    }

    Child& analyze() { return *analyze_; }
    Child& archive() { return *archive_; }
    Child& ingest() { return *ingest_; }
    Child& reducer(std::size_t i) { return *reducers_.at(i); }
    Child& simulator() { return *simulator_; }
    [[nodiscard]] std::string logs() const {
        std::string text;
        std::vector<std::string> names{"simulate", "ingest"};
        names.insert(names.end(), reducer_logs_.begin(), reducer_logs_.end());
        names.insert(names.end(), {"analyze", "archive"});
        for (const std::string& name : names) {
            text += "=== " + name + "\n" + testing::read_text(log(name));
        }
        return text;
    }

  private:
    std::string run_id_;
    std::filesystem::path dir_;
    std::filesystem::path sockets_;
    std::optional<Child> analyze_;
    std::optional<Child> archive_;
    std::optional<Child> ingest_;
    std::vector<std::unique_ptr<Child>> reducers_;
    std::vector<std::string> reducer_logs_;
    std::optional<Child> simulator_;
};

// The final AnalysisResult of `run_id` on analyze's results PUB, within kPatience.
std::optional<stream::v1::AnalysisResult> final_result_of(zmq::socket_t& results,
                                                          const std::string& run_id) {
    const auto deadline = Clock::now() + kPatience;
    while (Clock::now() < deadline) {
        auto received = transport::receive(results, 200ms);
        if (!received || !*received) {
            continue;
        }
        auto decoded = transport::decode(std::move(**received));
        if (!decoded) {
            continue;
        }
        if (auto* result = std::get_if<transport::ResultMessage>(&*decoded);
            result != nullptr && result->header.run_id() == run_id && result->header.is_final()) {
            return result->header;
        }
    }
    return std::nullopt;
}

// The data sequences of the run: after the darks and the one flat.
std::vector<std::uint64_t> data_sequences() {
    std::vector<std::uint64_t> sequences;
    for (std::uint64_t s = kDarks + 1; s < kDarks + 1 + 2 * kFramesPerOrientation; ++s) {
        sequences.push_back(s);
    }
    return sequences;
}

TEST(ServicesFault, AReducerKilledMidRunLosesNoFrame) {
    const std::string run_id = "fault-kill";
    FaultChain chain(run_id);
    zmq::context_t context;
    chain.start_services(2, 15000, 15000);
    auto results = transport::open_socket(context, zmq::socket_type::sub,
                                          ">" + chain.ipc("results"), transport::SocketOptions{});
    ASSERT_TRUE(results.has_value()) << results.error().message;
    std::this_thread::sleep_for(200ms);  // the SUB is connected before any result
    chain.start_simulator();

    // reduce-0 has just reduced its first, second or third frame (a different moment on each
    // repetition): kill it mid-run, no quiet spell.
    const double kill_after = 1.0 + static_cast<double>(std::random_device{}() % 3);
    SCOPED_TRACE(::testing::Message() << "killed after " << kill_after << " frames");
    const double reduced_at_kill = chain.kill_reducer_after(0, kill_after);
    EXPECT_GE(reduced_at_kill, kill_after) << chain.logs();
    EXPECT_TRUE(chain.simulator().running())
        << "the kill did not land mid-run (the stream had ended)\n"
        << chain.logs();

    const auto final_result = final_result_of(*results, run_id);
    ASSERT_TRUE(final_result.has_value()) << "no final result\n" << chain.logs();
    EXPECT_EQ(final_result->n_frames_p(), kFramesPerOrientation) << chain.logs();
    EXPECT_EQ(final_result->n_frames_n(), kFramesPerOrientation) << chain.logs();
    EXPECT_EQ(final_result->frames().data_p(), kFramesPerOrientation);
    EXPECT_EQ(final_result->frames().data_n(), kFramesPerOrientation);
    EXPECT_TRUE(std::isfinite(final_result->alpha()));

    const auto simulated = chain.simulator().wait_for(kPatience);
    ASSERT_TRUE(simulated.has_value());
    EXPECT_TRUE(WIFEXITED(*simulated) && WEXITSTATUS(*simulated) == 0) << chain.logs();
    // ingest saw the worker go (after worker_timeout_ms: when the dead worker held no frame the
    // run may complete first) and sent its unconfirmed frames, if any, to the survivor.
    EXPECT_TRUE(wait_for_log(chain.ingest(), "worker lost worker=reduce-0")) << chain.logs();
    EXPECT_EQ(chain.analyze().log().find("run incomplete"), std::string::npos) << chain.logs();

    // The archive closes the run once analyze forwarded RunEnd.
    EXPECT_TRUE(wait_for_log(chain.archive(), "run file closed")) << chain.logs();

    // The metrics every service exports over HTTP: traffic, stage latencies, no frame lost.
    const auto analyze_port = logged_metrics_port(chain.analyze());
    const auto ingest_port = logged_metrics_port(chain.ingest());
    const auto survivor_port = logged_metrics_port(chain.reducer(1));
    ASSERT_TRUE(analyze_port && ingest_port && survivor_port) << chain.logs();
    const std::string analyze_text = http_metrics(*analyze_port);
    const std::string ingest_text = http_metrics(*ingest_port);
    const std::string reduce_text = http_metrics(*survivor_port);
    constexpr double kDataFrames = 2.0 * kFramesPerOrientation;
    constexpr double kAllFrames = kDataFrames + kDarks + 1.0;  // and the one flat
    EXPECT_EQ(metric_value(analyze_text, "anisoflow_analyze_frames_lost_total"), 0.0)
        << analyze_text;
    // Each merged cake is observed once, when the first result that holds it goes out.
    EXPECT_EQ(metric_value(analyze_text, "anisoflow_analyze_result_latency_seconds_count"),
              kDataFrames)
        << analyze_text;
    EXPECT_EQ(metric_value(analyze_text, "anisoflow_analyze_frame_to_result_seconds_count"),
              kDataFrames)
        << analyze_text;
    EXPECT_GT(metric_value(analyze_text, "anisoflow_analyze_bytes_received_total"), 0.0);
    EXPECT_GT(metric_value(analyze_text, "anisoflow_analyze_bytes_sent_total"), 0.0);
    EXPECT_EQ(metric_value(ingest_text, "anisoflow_ingest_dispatch_latency_seconds_count"),
              kAllFrames)
        << ingest_text;
    EXPECT_EQ(metric_value(ingest_text, "anisoflow_ingest_frames_confirmed_total"), kDataFrames)
        << ingest_text;
    // Frames of 128 x 128 pixels went in and out: more than their pixels' worth.
    constexpr double kFrameBytes = 128.0 * 128.0 * 2.0;
    EXPECT_GT(metric_value(ingest_text, "anisoflow_ingest_bytes_received_total"),
              kAllFrames * kFrameBytes)
        << ingest_text;
    EXPECT_GT(metric_value(ingest_text, "anisoflow_ingest_bytes_sent_total"),
              kAllFrames * kFrameBytes)
        << ingest_text;
    EXPECT_GT(metric_value(reduce_text, "anisoflow_reduce_bytes_received_total"), kFrameBytes)
        << reduce_text;
    EXPECT_GT(metric_value(reduce_text, "anisoflow_reduce_bytes_sent_total"), 0.0) << reduce_text;
    EXPECT_GE(metric_value(reduce_text, "anisoflow_reduce_frame_latency_seconds_count"), 1.0)
        << reduce_text;

    EXPECT_EQ(chain.reducer(1).terminate(), 0) << chain.logs();
    EXPECT_EQ(chain.ingest().terminate(), 0) << chain.logs();
    EXPECT_EQ(chain.analyze().terminate(), 0) << chain.logs();
    EXPECT_EQ(chain.archive().terminate(), 0) << chain.logs();

    const hid_t h5 = H5Fopen(chain.run_file().c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(h5, 0) << chain.run_file() << "\n" << chain.logs();
    EXPECT_EQ(read_fixed_string(h5, "/entry/run_state"), "completed");
    // Every cake exactly once: a cake the killed worker sent before its ack is not stored twice.
    auto sequences = read_u64(h5, "/entry/reduced/sequence");
    std::sort(sequences.begin(), sequences.end());
    EXPECT_EQ(sequences, data_sequences());
    const auto finals = read_u64(h5, "/entry/results/is_final");
    ASSERT_FALSE(finals.empty());
    EXPECT_EQ(finals.back(), 1U);
    H5Fclose(h5);
}

// Every reducer dead mid-run: ingest holds the frames (workers_alive 0, the warning repeated),
// nothing is dropped, and a reducer started later under the same name gets the run's RunStart,
// darks and flat, then every frame left; the result and the archive hold every data frame.
TEST(ServicesFault, FramesWaitForAReducerWhenNoneIsLeft) {
    const std::string run_id = "fault-none-left";
    FaultChain chain(run_id);
    zmq::context_t context;
    chain.start_services(1, 30000, 30000);
    const auto ingest_port = logged_metrics_port(chain.ingest());
    ASSERT_TRUE(ingest_port.has_value()) << chain.logs();
    auto results = transport::open_socket(context, zmq::socket_type::sub,
                                          ">" + chain.ipc("results"), transport::SocketOptions{});
    ASSERT_TRUE(results.has_value()) << results.error().message;
    std::this_thread::sleep_for(200ms);  // the SUB is connected before any result
    chain.start_simulator();

    EXPECT_GE(chain.kill_reducer_after(0, 2.0), 2.0) << chain.logs();
    ASSERT_TRUE(wait_for_log(chain.ingest(), "worker lost worker=reduce-0")) << chain.logs();
    // Held, not dropped: the warning comes (and repeats) while the frames wait.
    ASSERT_TRUE(wait_for_log(chain.ingest(), "no reduce worker")) << chain.logs();
    std::this_thread::sleep_for(1200ms);  // a second warning, send_timeout_ms (500 ms) later
    // Scraped only now: ingest exports its gauges after it logs, in the same loop turn, and a
    // scrape right after the first warning fell in between under ThreadSanitizer.
    const std::string held = http_metrics(*ingest_port);
    EXPECT_EQ(metric_value(held, "anisoflow_ingest_workers_alive"), 0.0) << held;
    EXPECT_GT(metric_value(held, "anisoflow_ingest_frames_in_flight"), 0.0) << held;
    const std::string ingest_log = chain.ingest().log();
    std::size_t warnings = 0;
    for (auto at = ingest_log.find("no reduce worker"); at != std::string::npos;
         at = ingest_log.find("no reduce worker", at + 1)) {
        ++warnings;
    }
    EXPECT_GE(warnings, 2U) << ingest_log;

    chain.start_reducer("reduce-0");
    const auto final_result = final_result_of(*results, run_id);
    ASSERT_TRUE(final_result.has_value()) << "no final result\n" << chain.logs();
    EXPECT_EQ(final_result->n_frames_p(), kFramesPerOrientation) << chain.logs();
    EXPECT_EQ(final_result->n_frames_n(), kFramesPerOrientation) << chain.logs();
    EXPECT_EQ(chain.analyze().log().find("run incomplete"), std::string::npos) << chain.logs();
    const auto simulated = chain.simulator().wait_for(kPatience);
    ASSERT_TRUE(simulated.has_value());
    EXPECT_TRUE(WIFEXITED(*simulated) && WEXITSTATUS(*simulated) == 0) << chain.logs();
    EXPECT_TRUE(wait_for_log(chain.archive(), "run file closed")) << chain.logs();
    // The new worker was primed: it averaged the run's darks and flat before its data frames.
    EXPECT_NE(chain.reducer(1).log().find("run started run=" + run_id), std::string::npos)
        << chain.logs();
    const std::string done = http_metrics(*ingest_port);
    EXPECT_EQ(metric_value(done, "anisoflow_ingest_workers_alive"), 1.0) << done;
    EXPECT_EQ(chain.reducer(1).terminate(), 0) << chain.logs();
    EXPECT_EQ(chain.ingest().terminate(), 0) << chain.logs();
    EXPECT_EQ(chain.analyze().terminate(), 0) << chain.logs();
    EXPECT_EQ(chain.archive().terminate(), 0) << chain.logs();

    const hid_t h5 = H5Fopen(chain.run_file().c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(h5, 0) << chain.run_file() << "\n" << chain.logs();
    EXPECT_EQ(read_fixed_string(h5, "/entry/run_state"), "completed");
    auto sequences = read_u64(h5, "/entry/reduced/sequence");
    std::sort(sequences.begin(), sequences.end());
    EXPECT_EQ(sequences, data_sequences());
    H5Fclose(h5);
}

// No reducer at all and a run that ends: ingest takes the whole (short) run from the source,
// holds its frames, and after its drain timeout publishes RunEnd with every frame counted as
// sent and a detail that says they were never dispatched.
TEST(ServicesFault, ARunEndedWithNoReducerSaysItsFramesWereNeverDispatched) {
    const std::string run_id = "fault-no-reducer";
    FaultChain chain(run_id);
    zmq::context_t context;
    chain.start_services(0, 1000, 1000);
    auto control = transport::open_socket(context, zmq::socket_type::sub,
                                          ">" + chain.ipc("control"), transport::SocketOptions{});
    ASSERT_TRUE(control.has_value()) << control.error().message;
    std::this_thread::sleep_for(200ms);  // the SUB is connected before the run
    chain.start_simulator();

    std::optional<stream::v1::RunEnd> end;
    const auto deadline = Clock::now() + kPatience;
    while (!end && Clock::now() < deadline) {
        auto received = transport::receive(*control, 200ms);
        ASSERT_TRUE(received.has_value());
        if (!*received) {
            continue;
        }
        auto decoded = transport::decode(std::move(**received));
        if (auto* run_end = decoded ? std::get_if<transport::RunEndMessage>(&*decoded) : nullptr;
            run_end != nullptr && run_end->end.run_id() == run_id) {
            end = run_end->end;
        }
    }
    ASSERT_TRUE(end.has_value()) << "no RunEnd\n" << chain.logs();
    // Counts stay honest: every frame the source sent is counted, none reached analyze.
    EXPECT_EQ(end->frames_sent().data_p(), kFramesPerOrientation);
    EXPECT_EQ(end->frames_sent().data_n(), kFramesPerOrientation);
    EXPECT_EQ(end->frames_sent().dark(), kDarks);
    EXPECT_NE(end->detail().find("12 frames never reached analyze (12 never dispatched"),
              std::string::npos)
        << end->detail();
    EXPECT_NE(end->detail().find("workers alive 0"), std::string::npos) << end->detail();
    EXPECT_NE(chain.ingest().log().find("no reduce worker"), std::string::npos) << chain.logs();
    EXPECT_TRUE(wait_for_log(chain.analyze(), "missing_data_frames=12")) << chain.logs();
    EXPECT_EQ(chain.ingest().terminate(), 0) << chain.logs();
    EXPECT_EQ(chain.analyze().terminate(), 0) << chain.logs();
    EXPECT_EQ(chain.archive().terminate(), 0) << chain.logs();
}

// The test is ingest (the real Dispatcher and a control PUB) between `anisoflow simulate --stream`
// and the real reduce, analyze and archive binaries, and drops one P and one N data frame: the
// RunEnd still says 6 N were sent, and names the dropped P frame by sequences_end only, as a
// resumed ingest does. Analyze finalises after its drain timeout with what it got and counts the
// two missing frames; the archive closes the run.
TEST(ServicesFault, FramesThatNeverArriveAreCountedMissingAfterTheDrainTimeout) {
    const std::string run_id = "fault-missing";
    const std::vector<std::uint64_t> dropped = {kDarks + 2, kDarks + 1 + kFramesPerOrientation + 3};
    FaultChain chain(run_id);
    zmq::context_t context;
    auto dispatcher = transport::Dispatcher::open(context, "@" + chain.ipc("frames"));
    ASSERT_TRUE(dispatcher.has_value()) << dispatcher.error().message;
    auto control =
        transport::open_socket(context, zmq::socket_type::pub, "@" + chain.ipc("control"));
    ASSERT_TRUE(control.has_value()) << control.error().message;
    auto source =
        transport::open_socket(context, zmq::socket_type::pull, "@" + chain.ipc("source"));
    ASSERT_TRUE(source.has_value()) << source.error().message;
    chain.start_services(1, -1, 1000);
    auto results = transport::open_socket(context, zmq::socket_type::sub,
                                          ">" + chain.ipc("results"), transport::SocketOptions{});
    ASSERT_TRUE(results.has_value()) << results.error().message;
    const auto deadline = Clock::now() + kPatience;
    while (dispatcher->workers_alive() < 1 && Clock::now() < deadline) {
        ASSERT_TRUE(dispatcher->poll(10ms).has_value());
    }
    ASSERT_EQ(dispatcher->workers_alive(), 1U) << chain.logs();
    std::this_thread::sleep_for(200ms);  // the SUBs are connected before the run
    chain.start_simulator();

    const auto publish = [&](const auto& message) {
        auto parts = transport::encode_control(message);
        ASSERT_TRUE(parts.has_value());
        ASSERT_TRUE(transport::try_send(*control, *parts).has_value());
    };
    std::optional<stream::v1::RunStart> start;
    std::optional<stream::v1::RunEnd> end;
    std::size_t data_dispatched = 0;
    while (!end && Clock::now() < deadline) {
        ASSERT_TRUE(dispatcher->poll(1ms).has_value());
        if (!dispatcher->has_credit()) {
            continue;  // as ingest: the next frame waits for a worker's credit
        }
        auto received = transport::receive(*source, 10ms);
        ASSERT_TRUE(received.has_value()) << received.error().message;
        if (!*received) {
            continue;
        }
        auto decoded = transport::decode(std::move(**received));
        ASSERT_TRUE(decoded.has_value()) << decoded.error().error.message;
        if (auto* run_start = std::get_if<transport::RunStartMessage>(&*decoded)) {
            start = run_start->start;
            ASSERT_TRUE(dispatcher->start_run(*start).has_value());
            publish(*start);
        } else if (auto* frame = std::get_if<transport::FrameMessage>(&*decoded)) {
            ASSERT_TRUE(start.has_value());
            publish(*start);  // re-published during the run, as ingest does
            if (std::find(dropped.begin(), dropped.end(), frame->header.sequence()) !=
                dropped.end()) {
                continue;
            }
            data_dispatched += frame->header.kind() == stream::v1::FRAME_KIND_DATA ? 1 : 0;
            ASSERT_TRUE(dispatcher->dispatch(frame->header, std::move(frame->payload)).has_value());
        } else if (auto* run_end = std::get_if<transport::RunEndMessage>(&*decoded)) {
            end = run_end->end;
        }
    }
    ASSERT_TRUE(end.has_value()) << "no RunEnd from the simulator\n" << chain.logs();
    EXPECT_EQ(end->frames_sent().data_p(), kFramesPerOrientation);
    EXPECT_EQ(end->frames_sent().data_n(), kFramesPerOrientation);
    EXPECT_EQ(data_dispatched, 2 * kFramesPerOrientation - dropped.size());
    while (!dispatcher->drained(run_id) && Clock::now() < deadline) {
        ASSERT_TRUE(dispatcher->poll(10ms).has_value());
    }
    ASSERT_TRUE(dispatcher->drained(run_id)) << chain.logs();
    // The dropped P frame ends as a resumed ingest ends one its killed predecessor had taken and
    // never sent: left out of the counts, only sequences_end covers it (docs/adr/0007). The
    // dropped N frame stays in the counts. Analyze must count both missing.
    end->mutable_frames_sent()->set_data_p(kFramesPerOrientation - 1);
    end->set_sequences_end(kDarks + 1 + 2 * kFramesPerOrientation);
    publish(*end);  // the SUB has been connected for the whole run: one RunEnd is enough

    const auto final_result = final_result_of(*results, run_id);
    ASSERT_TRUE(final_result.has_value()) << "no final result\n" << chain.logs();
    EXPECT_EQ(final_result->n_frames_p(), kFramesPerOrientation - 1) << chain.logs();
    EXPECT_EQ(final_result->n_frames_n(), kFramesPerOrientation - 1) << chain.logs();
    EXPECT_TRUE(wait_for_log(chain.analyze(), "missing_data_frames=2")) << chain.logs();
    // The unseen sequences are named (with the dark and flat ones, which analyze never sees).
    EXPECT_NE(chain.analyze().log().find("unseen_sequences=[0,1,2,4,12]"), std::string::npos)
        << chain.logs();
    // Both count as lost from the final result (alert AnisoflowFramesLost), also the P frame
    // that only sequences_end names. Counted before the run's last log line.
    EXPECT_TRUE(wait_for_log(chain.analyze(), "run ended run=" + run_id)) << chain.logs();
    const auto analyze_port = logged_metrics_port(chain.analyze());
    ASSERT_TRUE(analyze_port.has_value()) << chain.logs();
    const std::string analyze_text = http_metrics(*analyze_port);
    EXPECT_EQ(metric_value(analyze_text, "anisoflow_analyze_frames_lost_total"),
              static_cast<double>(dropped.size()))
        << analyze_text;
    EXPECT_EQ(metric_value(analyze_text, "anisoflow_analyze_frames_missing_total"),
              static_cast<double>(dropped.size()))
        << analyze_text;
    EXPECT_TRUE(wait_for_log(chain.archive(), "run file closed")) << chain.logs();
    EXPECT_EQ(chain.reducer(0).terminate(), 0) << chain.logs();
    EXPECT_EQ(chain.analyze().terminate(), 0) << chain.logs();
    EXPECT_EQ(chain.archive().terminate(), 0) << chain.logs();
    const auto simulated = chain.simulator().wait_for(kPatience);
    ASSERT_TRUE(simulated.has_value());
    EXPECT_TRUE(WIFEXITED(*simulated) && WEXITSTATUS(*simulated) == 0) << chain.logs();

    const hid_t h5 = H5Fopen(chain.run_file().c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(h5, 0) << chain.run_file() << "\n" << chain.logs();
    EXPECT_EQ(read_fixed_string(h5, "/entry/run_state"), "completed");
    auto sequences = read_u64(h5, "/entry/reduced/sequence");
    std::sort(sequences.begin(), sequences.end());
    std::vector<std::uint64_t> expected;
    for (const std::uint64_t s : data_sequences()) {
        if (std::find(dropped.begin(), dropped.end(), s) == dropped.end()) {
            expected.push_back(s);
        }
    }
    EXPECT_EQ(sequences, expected);
    H5Fclose(h5);
}

}  // namespace
}  // namespace anisoflow
