#include "fault_chain.hpp"

#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <unistd.h>

#include "anisoflow/testing/cli_runner.hpp"
#include "anisoflow/testing/test_paths.hpp"

namespace anisoflow::faults {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr Service kAll[] = {Service::kAnalyze, Service::kArchive, Service::kGateway,
                            Service::kIngest,  Service::kReduce0, Service::kReduce1};

// The line each service logs once its sockets are open.
const char* ready_line(Service service) {
    switch (service) {
        case Service::kIngest:
            return "ingest ready";
        case Service::kReduce0:
        case Service::kReduce1:
        case Service::kAnalyze:
        case Service::kArchive:
            return ": ready ";
        case Service::kGateway:
            return "gateway ready";
    }
    return "ready";
}

// The HTTP port the gateway logged last ("gateway ready http=127.0.0.1:PORT").
std::optional<std::uint16_t> gateway_port(const std::string& log, std::size_t from) {
    static const std::regex port(R"(gateway ready http=[^:\s]+:(\d+))");
    const std::string tail = log.size() > from ? log.substr(from) : std::string();
    std::optional<std::uint16_t> last;
    for (std::sregex_iterator it(tail.begin(), tail.end(), port), end; it != end; ++it) {
        last = static_cast<std::uint16_t>(std::stoul((*it)[1]));
    }
    return last;
}

}  // namespace

std::string service_name(Service service) {
    switch (service) {
        case Service::kIngest:
            return "ingest";
        case Service::kReduce0:
            return "reduce-0";
        case Service::kReduce1:
            return "reduce-1";
        case Service::kAnalyze:
            return "analyze";
        case Service::kArchive:
            return "archive";
        case Service::kGateway:
            return "gateway";
    }
    return "?";
}

std::vector<std::uint64_t> SimulatedRun::data_sequences() const {
    std::vector<std::uint64_t> sequences;
    for (std::uint64_t s = darks + 1; s < frame_count(); ++s) {
        sequences.push_back(s);
    }
    return sequences;
}

std::vector<std::string> SimulatedRun::frame_options() const {
    return {"--rows",     std::to_string(rows),
            "--cols",     std::to_string(cols),
            "--frames",   std::to_string(frames_per_orientation),
            "--darks",    std::to_string(darks),
            "--distance", "0.08",
            "--seed",     std::to_string(seed)};
}

FaultChain::FaultChain(std::string name)
    : name_(std::move(name)),
      dir_(testing::scratch_dir()),
      // ipc paths are limited to ~100 characters: keep the sockets in a short directory.
      sockets_(std::filesystem::temp_directory_path() /
               ("aff-" + std::to_string(::getpid()) + "-" + name_)) {
    std::filesystem::create_directories(sockets_);
    std::filesystem::create_directories(runs_dir());
    const auto endpoint = [](const std::string& key, const std::string& address) {
        return std::vector<std::string>{"--set", "endpoints." + key + ".address=" + address};
    };
    const auto option = [](const std::string& key, const std::string& value) {
        return std::vector<std::string>{"--set", key + "=" + value};
    };
    using testing::concat;
    // Short timeouts: a dead peer is noticed, and a run drained, within a round's seconds
    // (longer under a sanitizer, where everything is slower).
    const auto ms = [](std::chrono::milliseconds limit) {
        return std::to_string(stretched(limit).count());
    };
    std::vector<std::string> ingest = concat(option("source.kind", "anisoflow_stream"),
                                             option("source.stream_address", "@" + ipc("source")));
    ingest = concat(ingest, endpoint("frames_out", "@" + ipc("frames")));
    ingest = concat(ingest, endpoint("control_out", "@" + ipc("control")));
    ingest = concat(ingest, endpoint("raw_out", "@" + ipc("raw")));
    // Every message to archive is kept until archive has stored it and sent again to a
    // restarted archive (docs/protocol.md, "Archive receipts"): what kill-archive must not lose.
    ingest = concat(ingest, endpoint("receipts_in", ">" + ipc("receipts")));
    ingest = concat(ingest, option("worker_timeout_ms", ms(1000ms)));
    ingest = concat(ingest, option("heartbeat_interval_ms", "200"));
    ingest = concat(ingest, option("run_start_republish_interval_ms", "200"));
    ingest = concat(ingest, option("drain_timeout_ms", ms(4000ms)));
    ingest = concat(ingest, option("send_timeout_ms", "500"));
    ingest = concat(ingest, option("source.series_timeout_ms", ms(3000ms)));
    ingest = concat(ingest, option("metrics.bind_address", "127.0.0.1:0"));
    // The run open at the source, for a restarted ingest to resume (docs/faults.md).
    ingest = concat(ingest, option("state_dir", (dir_ / "ingest-state").string()));
    services_[Service::kIngest] = Spec{ANISOFLOW_INGEST, ingest, {}, {}, nullptr};

    for (const Service reducer : {Service::kReduce0, Service::kReduce1}) {
        std::vector<std::string> reduce = concat(option("instance", service_name(reducer)),
                                                 endpoint("frames_in", ">" + ipc("frames")));
        reduce = concat(reduce, endpoint("control_in", ">" + ipc("control")));
        reduce = concat(reduce, endpoint("reduced_out", ">" + ipc("reduced")));
        reduce = concat(reduce, option("heartbeat_interval_ms", "200"));
        reduce = concat(reduce, option("threads", "1"));
        reduce = concat(reduce, option("queue_capacity_frames", "2"));
        reduce = concat(reduce, option("metrics.bind_address", "127.0.0.1:0"));
        services_[reducer] = Spec{ANISOFLOW_REDUCE, reduce, {}, {}, nullptr};
    }

    std::vector<std::string> analyze = concat(endpoint("reduced_in", "@" + ipc("reduced")),
                                              endpoint("control_in", ">" + ipc("control")));
    analyze = concat(analyze, endpoint("results_out", "@" + ipc("results")));
    analyze = concat(analyze, endpoint("archive_out", "@" + ipc("archive")));
    analyze = concat(analyze, endpoint("receipts_in", ">" + ipc("receipts")));
    analyze = concat(analyze, option("recompute_interval_ms", "200"));
    analyze = concat(analyze, option("drain_timeout_ms", ms(4000ms)));
    // Ingest re-publishes RunStart every 200 ms: a run unannounced for 3 s lost its ingest.
    analyze = concat(analyze, option("run_orphan_timeout_ms", ms(3000ms)));
    analyze = concat(analyze, option("metrics.bind_address", "127.0.0.1:0"));
    services_[Service::kAnalyze] = Spec{ANISOFLOW_ANALYZE, analyze, {}, {}, nullptr};

    std::vector<std::string> archive =
        concat(endpoint("archive_in", ">" + ipc("archive")), endpoint("raw_in", ">" + ipc("raw")));
    archive = concat(archive, endpoint("results_in", ">" + ipc("results")));
    archive = concat(archive, endpoint("control_in", ">" + ipc("control")));
    archive = concat(archive, endpoint("receipts_out", "@" + ipc("receipts")));
    archive = concat(archive, option("archive_dir", runs_dir().string()));
    archive = concat(archive, option("raw_drain_timeout_ms", ms(4000ms)));
    archive = concat(archive, option("analyze_end_timeout_ms", ms(10000ms)));
    archive = concat(archive, option("flush_interval_ms", "200"));
    archive = concat(archive, option("metrics.bind_address", "127.0.0.1:0"));
    services_[Service::kArchive] = Spec{ANISOFLOW_ARCHIVE, archive, {}, {}, nullptr};

    std::vector<std::string> gateway = concat(endpoint("results_in", ">" + ipc("results")),
                                              endpoint("control_in", ">" + ipc("control")));
    gateway = concat(gateway, option("archive_dir", runs_dir().string()));
    gateway = concat(gateway, option("http.bind_address", "127.0.0.1:0"));
    gateway = concat(gateway, option("metrics.bind_address", "127.0.0.1:0"));
    services_[Service::kGateway] = Spec{ANISOFLOW_GATEWAY, gateway, {}, {}, nullptr};
}

FaultChain::~FaultChain() {
    simulator_.reset();
    for (auto& [service, spec] : services_) {
        spec.process.reset();
    }
    std::error_code ignored;
    std::filesystem::remove_all(sockets_, ignored);
}

FaultChain::Spec& FaultChain::spec(Service service) { return services_.at(service); }
const FaultChain::Spec& FaultChain::spec(Service service) const { return services_.at(service); }

void FaultChain::set(Service service, const std::string& key, const std::string& value) {
    spec(service).args.push_back("--set");
    spec(service).args.push_back(key + "=" + value);
}

void FaultChain::set_env(Service service, const std::string& key, const std::string& value) {
    spec(service).env[key] = value;
}

void FaultChain::set_prefix(Service service, std::vector<std::string> prefix) {
    spec(service).prefix = std::move(prefix);
}

void FaultChain::start(Service service) {
    Spec& s = spec(service);
    s.process.reset();
    if (s.prefix.empty()) {
        s.process = std::make_unique<testing::ChildProcess>(s.binary, s.args,
                                                            log(service_name(service)), s.env);
    } else {
        std::vector<std::string> args(s.prefix.begin() + 1, s.prefix.end());
        args.push_back(s.binary);
        args.insert(args.end(), s.args.begin(), s.args.end());
        s.process = std::make_unique<testing::ChildProcess>(s.prefix.front(), args,
                                                            log(service_name(service)), s.env);
    }
}

bool FaultChain::start(std::chrono::milliseconds patience) {
    // The binders first (analyze, ingest), though ZeroMQ reconnects either way.
    for (const Service service : kAll) {
        start(service);
    }
    const auto since = Clock::now();
    for (const Service service : kAll) {
        if (!wait_rejoined(service, since, patience)) {
            ADD_FAILURE() << service_name(service) << " did not come up\n" << logs();
            return false;
        }
    }
    return true;
}

void FaultChain::kill(Service service) {
    for (const Service any : kAll) {
        kill_offsets_[any] = log_size(any);
    }
    spec(service).process->kill_hard();
}

int FaultChain::stop(Service service) {
    for (const Service any : kAll) {
        kill_offsets_[any] = log_size(any);
    }
    return spec(service).process->terminate();
}

std::optional<double> FaultChain::wait_rejoined(Service service, Clock::time_point since,
                                                std::chrono::milliseconds patience) {
    // Lines written since the service was last killed (the whole log before any kill).
    const auto offset = [&](Service of) {
        const auto found = kill_offsets_.find(of);
        return found == kill_offsets_.end() ? std::size_t{0} : found->second;
    };
    const std::size_t log_offset = offset(service);
    const auto deadline = since + patience;
    const auto left = [&] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    };
    if (!testing::wait_for_text(log(service_name(service)), ready_line(service), left(),
                                log_offset)) {
        return std::nullopt;
    }
    switch (service) {
        case Service::kReduce0:
        case Service::kReduce1:
            // Ingest has it among its workers again (a new session under its name).
            if (!testing::wait_for_text(log("ingest"),
                                        "worker joined worker=" + service_name(service), left(),
                                        offset(Service::kIngest))) {
                return std::nullopt;
            }
            break;
        case Service::kIngest: {
            const std::size_t from = log_offset;
            for (const Service worker : {Service::kReduce0, Service::kReduce1}) {
                if (!testing::wait_for_text(log("ingest"),
                                            "worker joined worker=" + service_name(worker), left(),
                                            from)) {
                    return std::nullopt;
                }
            }
            break;
        }
        case Service::kGateway: {
            const auto port = gateway_port(child(service).log(), log_offset);
            if (!port) {
                return std::nullopt;
            }
            while (testing::http_get(*port, "/api/health").find(" 200 ") == std::string::npos) {
                if (Clock::now() > deadline) {
                    return std::nullopt;
                }
                std::this_thread::sleep_for(20ms);
            }
            break;
        }
        case Service::kAnalyze:
        case Service::kArchive:
            break;
    }
    return std::chrono::duration<double>(Clock::now() - since).count();
}

void FaultChain::start_simulator(const SimulatedRun& run) {
    std::vector<std::string> args = {
        "simulate", "--stream", ">" + ipc("source"), "--fps", std::to_string(run.fps),
        "--run-id", run.run_id};
    args = testing::concat(args, run.frame_options());
    simulator_ = std::make_unique<testing::ChildProcess>(ANISOFLOW_CLI, args, log("simulate"));
}

testing::ChildProcess& FaultChain::child(Service service) { return *spec(service).process; }

std::size_t FaultChain::log_size(Service service) const {
    std::error_code error;
    const auto size = std::filesystem::file_size(log(service_name(service)), error);
    return error ? 0 : static_cast<std::size_t>(size);
}

std::optional<std::uint16_t> FaultChain::metrics_port(Service service) {
    // The port of the running process: the last one its log names.
    return testing::logged_metrics_port(child(service), stretched(10s));
}

std::string FaultChain::metrics(Service service) {
    const auto port = metrics_port(service);
    return port ? testing::http_get(*port, "/metrics") : std::string();
}

std::map<std::string, int> FaultChain::stop_all() {
    std::map<std::string, int> codes;
    for (const Service service : {Service::kGateway, Service::kIngest, Service::kReduce0,
                                  Service::kReduce1, Service::kAnalyze, Service::kArchive}) {
        Spec& s = spec(service);
        if (s.process && s.process->running()) {
            codes[service_name(service)] = s.process->terminate();
        }
    }
    return codes;
}

std::string FaultChain::ipc(const std::string& name) const {
    return "ipc://" + (sockets_ / name).string();
}

std::filesystem::path FaultChain::log(const std::string& name) const {
    return dir_ / (name + ".log");
}

std::string FaultChain::logs() const {
    std::string text;
    for (const std::string name :
         {"simulate", "ingest", "reduce-0", "reduce-1", "analyze", "archive", "gateway"}) {
        text += "=== " + name + "\n" + testing::read_text(log(name));
    }
    return text;
}

}  // namespace anisoflow::faults
