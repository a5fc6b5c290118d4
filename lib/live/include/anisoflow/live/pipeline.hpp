#pragma once
// The pipeline's health as the dashboard shows it (docs/gateway.md, /api/pipeline): each
// service's metrics, scraped as Prometheus would, turned into frames per second, queue depth and
// lost frames per stage. The gateway scrapes; this class only remembers and computes.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace anisoflow::live {

/// One scrape of one service.
struct StageSample {
    std::string service;   ///< "ingest", "reduce", "analyze", "archive", "gateway"
    std::string instance;  ///< "reduce-0"
    std::string address;   ///< host:port scraped
    std::int64_t unix_ns = 0;
    bool up = false;
    std::string error;                      ///< why not, when not up
    std::map<std::string, double> samples;  ///< metrics::parse_exposition()
};

class PipelineMonitor {
  public:
    /// The newest scrape of every service (those absent from it are forgotten).
    void update(std::vector<StageSample> scrape);

    /// {"stages": [{service, instance, address, up, error, frames_per_s, frames_total,
    ///   queue_depth, lost_frames}], "frames_lost": n, "scraped_unix_ns": t}. frames_per_s is
    /// over the last two scrapes (null after the first); queue_depth and lost_frames are null
    /// for stages that have none.
    [[nodiscard]] nlohmann::json json() const;

  private:
    struct Stage {
        StageSample now;
        StageSample before;
        bool has_before = false;
    };
    mutable std::mutex mutex_;
    std::map<std::string, Stage> stages_;  // by instance
    std::int64_t scraped_unix_ns_ = 0;
};

}  // namespace anisoflow::live
