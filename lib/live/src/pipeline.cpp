#include "anisoflow/live/pipeline.hpp"

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>

namespace anisoflow::live {

namespace {

// Which counter says "frames through this stage", which gauge its queue, per service
// (the names the services register; docs/monitoring.md).
struct StageMetrics {
    std::string_view service;
    std::string_view frames;
    std::string_view queue;
    std::string_view lost;
};

constexpr StageMetrics kStages[] = {
    {"ingest", "anisoflow_ingest_frames_received_total", "anisoflow_ingest_queue_depth_frames", ""},
    {"reduce", "anisoflow_reduce_frames_reduced_total", "", ""},
    {"analyze", "anisoflow_analyze_frames_merged_total", "", "anisoflow_analyze_frames_lost_total"},
    {"archive", "anisoflow_archive_reduced_frames_written_total", "", ""},
};

const StageMetrics* stage_metrics(std::string_view service) {
    for (const StageMetrics& stage : kStages) {
        if (stage.service == service) {
            return &stage;
        }
    }
    return nullptr;
}

std::optional<double> sample(const StageSample& s, std::string_view name) {
    if (name.empty()) {
        return std::nullopt;
    }
    const auto found = s.samples.find(std::string(name));
    return found == s.samples.end() ? std::nullopt : std::optional<double>(found->second);
}

nlohmann::json value_or_null(std::optional<double> value) {
    return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

}  // namespace

void PipelineMonitor::update(std::vector<StageSample> scrape) {
    const std::lock_guard lock(mutex_);
    std::map<std::string, Stage> next;
    for (StageSample& s : scrape) {
        scraped_unix_ns_ = std::max(scraped_unix_ns_, s.unix_ns);
        Stage stage;
        if (auto old = stages_.find(s.instance); old != stages_.end() && old->second.now.up) {
            stage.before = std::move(old->second.now);
            stage.has_before = true;
        }
        stage.now = std::move(s);
        next[stage.now.instance] = std::move(stage);
    }
    stages_ = std::move(next);
}

nlohmann::json PipelineMonitor::json() const {
    const std::lock_guard lock(mutex_);
    nlohmann::json stages = nlohmann::json::array();
    double lost_total = 0.0;
    for (const auto& [instance, stage] : stages_) {
        const StageSample& now = stage.now;
        const StageMetrics* names = stage_metrics(now.service);
        std::optional<double> frames;
        std::optional<double> rate;
        std::optional<double> queue;
        std::optional<double> lost;
        if (names != nullptr && now.up) {
            frames = sample(now, names->frames);
            queue = sample(now, names->queue);
            lost = sample(now, names->lost);
            const std::optional<double> earlier =
                stage.has_before ? sample(stage.before, names->frames) : std::nullopt;
            const double seconds = static_cast<double>(now.unix_ns - stage.before.unix_ns) * 1e-9;
            if (frames && earlier && seconds > 0.0 && *frames >= *earlier) {
                rate = (*frames - *earlier) / seconds;
            }
        }
        lost_total += lost.value_or(0.0);
        stages.push_back({{"service", now.service},
                          {"instance", now.instance},
                          {"address", now.address},
                          {"up", now.up},
                          {"error", now.error},
                          {"frames_total", value_or_null(frames)},
                          {"frames_per_s", value_or_null(rate)},
                          {"queue_depth", value_or_null(queue)},
                          {"lost_frames", value_or_null(lost)}});
    }
    return {{"stages", std::move(stages)},
            {"frames_lost", lost_total},
            {"scraped_unix_ns", scraped_unix_ns_}};
}

}  // namespace anisoflow::live
