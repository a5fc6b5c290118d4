#pragma once
// The runs as the gateway shows them (docs/gateway.md): every RunStart, RunEvent, RunEnd,
// AnalysisResult and Heartbeat seen on the feeds folded into one view per run, queried as JSON.
// Thread-safe: the feed thread writes, the HTTP threads read.

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/transport/message.hpp"

namespace anisoflow::live {

namespace pb = ::anisoflow::stream::v1;

/// A service's heartbeat older than this is reported as stale by health(), seconds.
inline constexpr double kHeartbeatStaleSeconds = 10.0;
/// Points of a run's convergence series kept (one per result); older ones are thinned.
inline constexpr std::size_t kMaxHistoryPoints = 20000;

class RunBoard {
  public:
    /// `runs_kept`: runs remembered; past it the oldest ended run is forgotten.
    explicit RunBoard(std::size_t runs_kept);

    void on_run_start(const pb::RunStart& start, std::int64_t now_unix_ns);
    void on_run_event(const pb::RunEvent& event);
    void on_run_end(const pb::RunEnd& end, std::int64_t now_unix_ns);
    /// An archived run whose file a stopped archive closed mid-run (docs/archive.md, "Stopping
    /// mid-run"): "interrupted", not running (nothing is writing it) nor ended, until a RunEnd
    /// comes. Like an ended run it may be forgotten.
    void on_run_interrupted(const std::string& run_id);
    /// Stores the result as its run's latest and returns what pages are pushed:
    /// {"type": "result", "run_id", "is_final", "summary", "point"} (curves are fetched from
    /// /api/runs/{id}/result, so a push stays small at 10 updates/s).
    nlohmann::json on_result(const transport::ResultMessage& message, std::int64_t now_unix_ns);
    void on_heartbeat(const pb::Heartbeat& heartbeat, std::int64_t now_unix_ns);

    /// [{run_id, state, composition, started_unix_ns, ended_unix_ns, frames, alpha,
    ///   alpha_stderr, results}], newest first.
    [[nodiscard]] nlohmann::json runs() const;
    /// One run: the list's fields plus its configuration, frames sent, run log and convergence
    /// series; nullopt for a run never seen.
    [[nodiscard]] std::optional<nlohmann::json> run(std::string_view run_id) const;
    /// The latest result with its curves; nullopt before the first (or for an unknown run).
    [[nodiscard]] std::optional<nlohmann::json> result(std::string_view run_id) const;
    /// The latest result's P - N image (image_json()); nullopt when none came.
    [[nodiscard]] std::optional<nlohmann::json> image(std::string_view run_id) const;
    /// {"status": "ok" | "degraded", "services": [{service, instance, state, age_s, run_id}]}
    /// ("degraded": a service's heartbeat is stale or reports DEGRADED).
    [[nodiscard]] nlohmann::json health(std::int64_t now_unix_ns) const;

  private:
    // One point of a run's convergence series (one per result).
    struct HistoryPoint {
        std::uint64_t frames_p = 0;
        std::uint64_t frames_n = 0;
        double alpha = 0.0;
        double alpha_stderr = 0.0;
        double eps_aff = 0.0;
        double eps_aff_stderr = 0.0;
        std::int64_t unix_ns = 0;
    };
    struct Run {
        std::optional<pb::RunStart> start;
        std::string state = "running";  // "running", "interrupted", "completed", "aborted"
        std::int64_t started_unix_ns = 0;
        std::int64_t ended_unix_ns = 0;
        std::optional<pb::RunEnd> end;
        std::vector<pb::StateChange> log;
        std::optional<pb::AnalysisResult> latest;
        nlohmann::json latest_curves;
        nlohmann::json latest_image;  // null until a result carries one
        std::int64_t latest_unix_ns = 0;
        std::vector<HistoryPoint> history;  // as numbers: a JSON object a point took ~700 bytes
        std::uint64_t results = 0;
        std::uint64_t order = 0;  // when first seen, for newest-first listing
    };
    struct Service {
        pb::Heartbeat heartbeat;
        std::int64_t seen_unix_ns = 0;
    };

    Run& run_of(const std::string& run_id);
    void forget_old_runs();
    [[nodiscard]] nlohmann::json list_entry(const std::string& run_id, const Run& run) const;
    [[nodiscard]] static nlohmann::json point_json(const HistoryPoint& point);

    std::size_t runs_kept_;
    mutable std::mutex mutex_;
    std::map<std::string, Run, std::less<>> runs_;
    std::map<std::string, Service, std::less<>> services_;  // by "service/instance"
    std::uint64_t next_order_ = 0;
};

}  // namespace anisoflow::live
