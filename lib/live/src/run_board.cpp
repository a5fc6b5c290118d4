#include "anisoflow/live/run_board.hpp"

#include <algorithm>
#include <utility>

#include <google/protobuf/util/json_util.h>

#include "anisoflow/live/result_json.hpp"

namespace anisoflow::live {

namespace {

constexpr double kNsPerSecond = 1e9;

nlohmann::json counts_json(const pb::FrameCounts& c) {
    return {{"data_p", c.data_p()},
            {"data_n", c.data_n()},
            {"dark", c.dark()},
            {"flat", c.flat()},
            {"background", c.background()}};
}

std::string_view change_name(pb::StateChangeType type) {
    switch (type) {
        case pb::STATE_CHANGE_TYPE_RUN_STARTED:
            return "run_started";
        case pb::STATE_CHANGE_TYPE_STATE_SET:
            return "state_set";
        case pb::STATE_CHANGE_TYPE_ACQUISITION_OPENED:
            return "acquisition_opened";
        case pb::STATE_CHANGE_TYPE_ACQUISITION_CLOSED:
            return "acquisition_closed";
        case pb::STATE_CHANGE_TYPE_RUN_ENDED:
            return "run_ended";
        default:
            return "unspecified";
    }
}

std::string_view service_state_name(pb::ServiceState state) {
    switch (state) {
        case pb::SERVICE_STATE_STARTING:
            return "starting";
        case pb::SERVICE_STATE_IDLE:
            return "idle";
        case pb::SERVICE_STATE_RUNNING:
            return "running";
        case pb::SERVICE_STATE_DRAINING:
            return "draining";
        case pb::SERVICE_STATE_DEGRADED:
            return "degraded";
        default:
            return "unspecified";
    }
}

// The ExperimentConfig with its .proto field names (Protobuf's own JSON mapping).
nlohmann::json config_json(const pb::ExperimentConfig& config) {
    std::string text;
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    options.always_print_primitive_fields = true;
    if (!google::protobuf::util::MessageToJsonString(config, &text, options).ok()) {
        return nullptr;
    }
    return nlohmann::json::parse(text, nullptr, false);
}

}  // namespace

nlohmann::json RunBoard::point_json(const HistoryPoint& point) {
    return {{"frames_p", point.frames_p}, {"frames_n", point.frames_n},
            {"alpha", point.alpha},       {"alpha_stderr", point.alpha_stderr},
            {"eps_aff", point.eps_aff},   {"eps_aff_stderr", point.eps_aff_stderr},
            {"unix_ns", point.unix_ns}};
}

RunBoard::RunBoard(std::size_t runs_kept) : runs_kept_(std::max<std::size_t>(1, runs_kept)) {}

RunBoard::Run& RunBoard::run_of(const std::string& run_id) {
    auto [it, inserted] = runs_.try_emplace(run_id);
    if (inserted) {
        it->second.order = next_order_++;
        forget_old_runs();
    }
    return runs_.at(run_id);
}

void RunBoard::forget_old_runs() {
    while (runs_.size() > runs_kept_) {
        auto oldest = runs_.end();
        for (auto it = runs_.begin(); it != runs_.end(); ++it) {
            if (it->second.state != "running" &&
                (oldest == runs_.end() || it->second.order < oldest->second.order)) {
                oldest = it;
            }
        }
        if (oldest == runs_.end()) {
            return;  // every run is still running: keep them all
        }
        runs_.erase(oldest);
    }
}

void RunBoard::on_run_start(const pb::RunStart& start, std::int64_t now_unix_ns) {
    const std::lock_guard lock(mutex_);
    Run& run = run_of(start.run_id());
    if (!run.start) {
        run.start = start;
        run.started_unix_ns = start.started_unix_ns() != 0 ? start.started_unix_ns() : now_unix_ns;
    }
}

void RunBoard::on_run_event(const pb::RunEvent& event) {
    const std::lock_guard lock(mutex_);
    Run& run = run_of(event.run_id());
    if (event.change().index() == run.log.size()) {  // repeats and gaps are not logged twice
        run.log.push_back(event.change());
    }
}

void RunBoard::on_run_end(const pb::RunEnd& end, std::int64_t now_unix_ns) {
    const std::lock_guard lock(mutex_);
    Run& run = run_of(end.run_id());
    if (run.end) {
        return;  // RunEnd is repeated for late subscribers
    }
    run.end = end;
    run.state = end.reason() == pb::RUN_END_REASON_ABORTED ? "aborted" : "completed";
    run.ended_unix_ns = end.ended_unix_ns() != 0 ? end.ended_unix_ns() : now_unix_ns;
    for (const pb::StateChange& change : end.state_changes()) {  // the whole log, if missed
        if (change.index() == run.log.size()) {
            run.log.push_back(change);
        }
    }
}

void RunBoard::on_run_interrupted(const std::string& run_id) {
    const std::lock_guard lock(mutex_);
    Run& run = run_of(run_id);
    if (!run.end) {
        run.state = "interrupted";
    }
}

nlohmann::json RunBoard::on_result(const transport::ResultMessage& message,
                                   std::int64_t now_unix_ns) {
    const pb::AnalysisResult& r = message.header;
    const HistoryPoint point{r.n_frames_p(), r.n_frames_n(),     r.alpha(),  r.alpha_stderr(),
                             r.eps_aff(),    r.eps_aff_stderr(), now_unix_ns};
    nlohmann::json curves = curves_json(message);
    nlohmann::json image = image_json(message);
    nlohmann::json summary = summary_json(r);
    const std::lock_guard lock(mutex_);
    Run& run = run_of(r.run_id());
    run.latest = r;
    run.latest_curves = std::move(curves);
    if (!image.is_null()) {
        run.latest_image = std::move(image);
    }
    run.latest_unix_ns = now_unix_ns;
    ++run.results;
    if (run.history.size() >= kMaxHistoryPoints) {  // keep every other point: the shape stays
        std::size_t kept = 0;
        for (std::size_t i = 0; i < run.history.size(); i += 2) {
            run.history[kept++] = run.history[i];
        }
        run.history.resize(kept);
    }
    run.history.push_back(point);
    return {{"type", "result"},
            {"run_id", r.run_id()},
            {"is_final", r.is_final()},
            {"has_image", !run.latest_image.is_null()},
            {"summary", std::move(summary)},
            {"point", point_json(point)}};
}

void RunBoard::on_heartbeat(const pb::Heartbeat& heartbeat, std::int64_t now_unix_ns) {
    const std::lock_guard lock(mutex_);
    Service& service = services_[heartbeat.service() + "/" + heartbeat.instance()];
    service.heartbeat = heartbeat;
    service.seen_unix_ns = now_unix_ns;
}

nlohmann::json RunBoard::list_entry(const std::string& run_id, const Run& run) const {
    nlohmann::json entry = {
        {"run_id", run_id},
        {"state", run.state},
        {"composition", run.start ? run.start->config().composition() : std::string()},
        {"started_unix_ns", run.started_unix_ns},
        {"ended_unix_ns", run.ended_unix_ns},
        {"results", run.results},
        {"has_image", !run.latest_image.is_null()},
        {"alpha", run.latest ? nlohmann::json(run.latest->alpha()) : nlohmann::json(nullptr)},
        {"alpha_stderr",
         run.latest ? nlohmann::json(run.latest->alpha_stderr()) : nlohmann::json(nullptr)},
        {"frames", run.latest ? counts_json(run.latest->frames()) : nlohmann::json(nullptr)},
    };
    return entry;
}

nlohmann::json RunBoard::runs() const {
    const std::lock_guard lock(mutex_);
    std::vector<std::pair<std::uint64_t, const std::string*>> order;
    order.reserve(runs_.size());
    for (const auto& [id, run] : runs_) {
        order.emplace_back(run.order, &id);
    }
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a > b; });
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [rank, id] : order) {
        list.push_back(list_entry(*id, runs_.find(*id)->second));
    }
    return list;
}

std::optional<nlohmann::json> RunBoard::run(std::string_view run_id) const {
    const std::lock_guard lock(mutex_);
    const auto found = runs_.find(run_id);
    if (found == runs_.end()) {
        return std::nullopt;
    }
    const Run& run = found->second;
    nlohmann::json out = list_entry(found->first, run);
    out["config"] = run.start ? config_json(run.start->config()) : nlohmann::json(nullptr);
    out["frames_expected"] =
        run.start ? counts_json(run.start->config().frames_expected()) : nlohmann::json(nullptr);
    out["frames_sent"] = run.end ? counts_json(run.end->frames_sent()) : nlohmann::json(nullptr);
    out["end_detail"] = run.end ? run.end->detail() : std::string();
    nlohmann::json log = nlohmann::json::array();
    for (const pb::StateChange& c : run.log) {
        log.push_back({{"index", c.index()},
                       {"change", std::string(change_name(c.type()))},
                       {"unix_ns", c.changed_unix_ns()},
                       {"kind", std::string(transport::frame_kind_name(c.kind()))},
                       {"orientation", std::string(transport::orientation_name(c.orientation()))},
                       {"next_sequence", c.next_sequence()},
                       {"note", c.note()}});
    }
    out["log"] = std::move(log);
    nlohmann::json history = nlohmann::json::array();
    for (const HistoryPoint& point : run.history) {
        history.push_back(point_json(point));
    }
    out["history"] = std::move(history);
    return out;
}

std::optional<nlohmann::json> RunBoard::result(std::string_view run_id) const {
    const std::lock_guard lock(mutex_);
    const auto found = runs_.find(run_id);
    if (found == runs_.end() || !found->second.latest) {
        return std::nullopt;
    }
    const Run& run = found->second;
    return nlohmann::json{{"run_id", found->first},
                          {"is_final", run.latest->is_final()},
                          {"unix_ns", run.latest_unix_ns},
                          {"summary", summary_json(*run.latest)},
                          {"curves", run.latest_curves}};
}

std::optional<nlohmann::json> RunBoard::image(std::string_view run_id) const {
    const std::lock_guard lock(mutex_);
    const auto found = runs_.find(run_id);
    if (found == runs_.end() || found->second.latest_image.is_null()) {
        return std::nullopt;
    }
    nlohmann::json out = found->second.latest_image;
    out["run_id"] = found->first;
    return out;
}

nlohmann::json RunBoard::health(std::int64_t now_unix_ns) const {
    const std::lock_guard lock(mutex_);
    bool ok = true;
    nlohmann::json services = nlohmann::json::array();
    for (const auto& [key, service] : services_) {
        const double age_s = static_cast<double>(now_unix_ns - service.seen_unix_ns) / kNsPerSecond;
        const bool stale = age_s > kHeartbeatStaleSeconds;
        const bool degraded = service.heartbeat.state() == pb::SERVICE_STATE_DEGRADED;
        ok = ok && !stale && !degraded;
        services.push_back({{"service", service.heartbeat.service()},
                            {"instance", service.heartbeat.instance()},
                            {"state", std::string(service_state_name(service.heartbeat.state()))},
                            {"run_id", service.heartbeat.run_id()},
                            {"age_s", age_s},
                            {"stale", stale}});
    }
    return {{"status", ok ? "ok" : "degraded"}, {"services", std::move(services)}};
}

}  // namespace anisoflow::live
