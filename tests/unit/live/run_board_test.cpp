// RunBoard: a run's state from its messages in any order the feeds deliver them, repeats
// ignored, the log completed from RunEnd, old runs forgotten, stale services reported.

#include "anisoflow/live/run_board.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "anisoflow/live/result_json.hpp"
#include "anisoflow/transport/payload.hpp"

namespace anisoflow::live {
namespace {

constexpr std::int64_t kSecond = 1'000'000'000;

pb::RunStart start_of(const std::string& run_id) {
    pb::RunStart start;
    start.set_run_id(run_id);
    start.mutable_config()->set_composition("Cu50Zr50");
    start.set_started_unix_ns(5 * kSecond);
    return start;
}

pb::RunEnd end_of(const std::string& run_id, pb::RunEndReason reason) {
    pb::RunEnd end;
    end.set_run_id(run_id);
    end.set_reason(reason);
    end.set_ended_unix_ns(9 * kSecond);
    return end;
}

pb::StateChange change(std::uint32_t index, pb::StateChangeType type) {
    pb::StateChange c;
    c.set_index(index);
    c.set_type(type);
    return c;
}

transport::ResultMessage result_of(const std::string& run_id, double alpha, bool with_nan) {
    transport::ResultMessage message;
    message.header.set_run_id(run_id);
    message.header.set_alpha(alpha);
    message.header.set_n_frames_p(3);
    message.header.set_mechanism(pb::MECHANISM_BOND_ROTATION);
    auto* curve = message.header.add_curves();
    curve->set_kind(pb::CURVE_KIND_EPS_R);
    curve->set_n_points(2);
    message.curves.push_back(transport::make_payload(
        std::vector<double>{4.0, 5.0, 0.01, 0.02, with_nan ? std::nan("") : 1e-6, 1e-6}));
    return message;
}

TEST(RunBoard, FoldsARunsMessagesIntoOneView) {
    RunBoard board(10);
    board.on_run_start(start_of("a"), 1);
    board.on_run_start(start_of("a"), 2);  // repeated every second: changes nothing
    pb::RunEvent event;
    event.set_run_id("a");
    *event.mutable_change() = change(0, pb::STATE_CHANGE_TYPE_RUN_STARTED);
    board.on_run_event(event);
    board.on_run_event(event);  // a repeat is not logged twice
    const nlohmann::json push = board.on_result(result_of("a", 0.002, true), 7 * kSecond);
    EXPECT_EQ(push["type"], "result");
    EXPECT_EQ(push["summary"]["mechanism"], "bond-rotation");
    EXPECT_EQ(push["point"]["frames_p"], 3);

    // RunEnd carries the whole log: what the live events missed is filled in.
    pb::RunEnd end = end_of("a", pb::RUN_END_REASON_ABORTED);
    *end.add_state_changes() = change(0, pb::STATE_CHANGE_TYPE_RUN_STARTED);
    *end.add_state_changes() = change(1, pb::STATE_CHANGE_TYPE_RUN_ENDED);
    board.on_run_end(end, 10 * kSecond);
    board.on_run_end(end_of("a", pb::RUN_END_REASON_COMPLETED), 11 * kSecond);  // a repeat

    const auto run = board.run("a");
    ASSERT_TRUE(run);
    EXPECT_EQ((*run)["state"], "aborted");
    EXPECT_EQ((*run)["started_unix_ns"], 5 * kSecond);
    EXPECT_EQ((*run)["ended_unix_ns"], 9 * kSecond);
    EXPECT_EQ((*run)["composition"], "Cu50Zr50");
    ASSERT_EQ((*run)["log"].size(), 2U);
    EXPECT_EQ((*run)["log"][1]["change"], "run_ended");
    ASSERT_EQ((*run)["history"].size(), 1U);

    const auto result = board.result("a");
    ASSERT_TRUE(result);
    EXPECT_EQ((*result)["curves"]["eps_r"]["x"], (std::vector<double>{4.0, 5.0}));
    EXPECT_EQ((*result)["curves"]["eps_r"]["value"], (std::vector<double>{0.01, 0.02}));
    EXPECT_TRUE((*result)["curves"]["eps_r"]["variance"][0].is_null());  // NaN: unknown
    EXPECT_EQ((*result)["curves"]["eps_r"]["x_name"], "r");
    EXPECT_FALSE(board.result("never-seen"));
    EXPECT_FALSE(board.run("never-seen"));
}

TEST(RunBoard, KeepsTheConvergenceSeriesThinnedToItsLimit) {
    RunBoard board(2);
    board.on_run_start(start_of("a"), 1);
    for (std::size_t i = 0; i < kMaxHistoryPoints + 1; ++i) {
        board.on_result(result_of("a", static_cast<double>(i), false),
                        static_cast<std::int64_t>(i));
    }
    const auto run = board.run("a");
    ASSERT_TRUE(run);
    const nlohmann::json& history = (*run)["history"];
    // Full at kMaxHistoryPoints: every other point kept, then the newest appended.
    ASSERT_EQ(history.size(), kMaxHistoryPoints / 2 + 1);
    EXPECT_EQ(history[0]["alpha"], 0.0);
    EXPECT_EQ(history[1]["alpha"], 2.0);
    EXPECT_EQ(history.back()["alpha"], static_cast<double>(kMaxHistoryPoints));
    EXPECT_EQ(history.back()["unix_ns"], static_cast<std::int64_t>(kMaxHistoryPoints));
    EXPECT_EQ(history.back()["frames_p"], 3);
    EXPECT_EQ(history.back()["frames_n"], 0);
    EXPECT_EQ(history.back().size(), 7U);  // frames_p/n, alpha, eps_aff (each with stderr), unix_ns
}

TEST(RunBoard, ForgetsTheOldestEndedRunFirstAndListsNewestFirst) {
    RunBoard board(2);
    board.on_run_start(start_of("first"), 1);
    board.on_run_start(start_of("second"), 2);
    board.on_run_end(end_of("second", pb::RUN_END_REASON_COMPLETED), 3);
    board.on_run_start(start_of("third"), 4);  // "first" still runs: "second" goes
    const nlohmann::json runs = board.runs();
    ASSERT_EQ(runs.size(), 2U);
    EXPECT_EQ(runs[0]["run_id"], "third");
    EXPECT_EQ(runs[1]["run_id"], "first");
    EXPECT_TRUE(runs[0]["alpha"].is_null());  // no result yet
}

TEST(RunBoard, HealthReportsStaleAndDegradedServices) {
    RunBoard board(1);
    EXPECT_EQ(board.health(0)["status"], "ok");
    pb::Heartbeat beat;
    beat.set_service("reduce");
    beat.set_instance("reduce-0");
    beat.set_state(pb::SERVICE_STATE_RUNNING);
    board.on_heartbeat(beat, 100 * kSecond);
    EXPECT_EQ(board.health(101 * kSecond)["status"], "ok");
    const nlohmann::json late = board.health(100 * kSecond + 11 * kSecond);
    EXPECT_EQ(late["status"], "degraded");
    EXPECT_EQ(late["services"][0]["stale"], true);
    beat.set_state(pb::SERVICE_STATE_DEGRADED);
    board.on_heartbeat(beat, 200 * kSecond);
    EXPECT_EQ(board.health(200 * kSecond)["status"], "degraded");
}

TEST(ResultJson, UsesTheSummaryKeysOfTheOfflineCommand) {
    pb::AnalysisResult r;
    r.set_alpha(0.001);
    r.set_normalisation(pb::NORMALISATION_ADHOC);
    const nlohmann::json summary = summary_json(r);
    EXPECT_TRUE(summary["r_c_angstrom"].is_null());  // absent: JSON null (SPEC 8)
    EXPECT_EQ(summary["normalisation"], "adhoc");
    EXPECT_EQ(summary["mode"], "pn");
    for (const char* key : {"alpha", "alpha_stderr", "eps_aff", "eps_aff_stderr", "mechanism",
                            "corr_stretching", "corr_rotation", "s2_chi2", "n_frames_p"}) {
        EXPECT_TRUE(summary.contains(key)) << key;
    }
}

}  // namespace
}  // namespace anisoflow::live
