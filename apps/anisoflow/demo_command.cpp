#include "demo_command.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <fcntl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "anisoflow/core/result.hpp"
#include "anisoflow/live/result_json.hpp"
#include "anisoflow/metrics/scrape.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/socket.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX, for posix_spawn

namespace anisoflow::app {

namespace {

namespace fs = std::filesystem;
namespace pb = ::anisoflow::stream::v1;
using Clock = std::chrono::steady_clock;

// ipc:// endpoints are Unix socket paths: at most 107 bytes on Linux, less a margin.
constexpr std::size_t kMaxIpcPath = 100;
constexpr auto kPoll = std::chrono::milliseconds(200);
constexpr auto kFinalGrace = std::chrono::seconds(3);
constexpr auto kScrapeTimeout = std::chrono::milliseconds(5000);

std::atomic<int> g_signal{0};  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)

extern "C" void on_signal(int signal) { g_signal.store(signal); }

int report(const Error& error) {
    std::fprintf(stderr, "anisoflow demo: %s\n", error.message.c_str());
    return 1;
}

// One child process: a service or the simulator, its stdout and stderr in `log`.
struct Child {
    std::string name;
    fs::path log;
    pid_t pid = -1;
    bool exited = false;
    int status = 0;

    // True when it ended (and records how); false while it runs.
    bool poll() {
        if (exited || pid <= 0) {
            return exited;
        }
        int wstatus = 0;
        const pid_t got = ::waitpid(pid, &wstatus, WNOHANG);
        if (got == pid) {
            exited = true;
            status = wstatus;
        }
        return exited;
    }
    [[nodiscard]] bool succeeded() const {
        return exited && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    [[nodiscard]] std::string how() const {
        if (!exited) {
            return "running";
        }
        if (WIFEXITED(status)) {
            return fmt::format("exit status {}", WEXITSTATUS(status));
        }
        if (WIFSIGNALED(status)) {
            return fmt::format("killed by signal {}", WTERMSIG(status));
        }
        return "ended";
    }
};

Result<Child> spawn(const std::string& name, const fs::path& program,
                    const std::vector<std::string>& arguments, const fs::path& log) {
    std::vector<std::string> argv_strings;
    argv_strings.push_back(program.string());
    argv_strings.insert(argv_strings.end(), arguments.begin(), arguments.end());
    std::vector<char*> argv;
    argv.reserve(argv_strings.size() + 1);
    for (std::string& argument : argv_strings) {
        argv.push_back(argument.data());
    }
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    // The children handle SIGINT and SIGTERM themselves: start them with the default actions and
    // nothing blocked, whatever the demo has set.
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

    Child child{name, log};
    const int error =
        ::posix_spawn(&child.pid, program.c_str(), &actions, &attributes, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (error != 0) {
        return fail(ErrorCode::kIo, "cannot start {} ({}): {}", name, program.string(),
                    std::generic_category().message(error));
    }
    return child;
}

// SIGTERM to every running child, then SIGKILL to those still running after `timeout`.
void stop_all(std::vector<Child>& children, std::chrono::duration<double> timeout) {
    for (Child& child : children) {
        if (!child.poll()) {
            ::kill(child.pid, SIGTERM);
        }
    }
    const auto deadline = Clock::now() + timeout;
    bool running = true;
    while (running && Clock::now() < deadline) {
        running = false;
        for (Child& child : children) {
            running = !child.poll() || running;
        }
        if (running) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    for (Child& child : children) {
        if (!child.poll()) {
            std::fprintf(stderr, "anisoflow demo: %s did not stop on SIGTERM, sending SIGKILL\n",
                         child.name.c_str());
            ::kill(child.pid, SIGKILL);
            int wstatus = 0;
            ::waitpid(child.pid, &wstatus, 0);
            child.exited = true;
            child.status = wstatus;
        }
    }
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool log_contains(const Child& child, const std::string& text) {
    return read_file(child.log).find(text) != std::string::npos;
}

// The last warning or error line of a log, for a failure message.
std::string last_warning(const fs::path& log) {
    std::istringstream in(read_file(log));
    std::string found = "no warning in its log";
    for (std::string line; std::getline(in, line);) {
        if (line.find(" warning ") != std::string::npos ||
            line.find(" error ") != std::string::npos) {
            found = line;
        }
    }
    return found;
}

// The number after `key` in a child's log, searched from `after` ("http=" then ":" for the
// gateway's "http=127.0.0.1:8080"), or 0.
std::uint16_t port_in_log(const Child& child, const std::string& key, const std::string& after) {
    const std::string log = read_file(child.log);
    const auto from = log.find(after);
    const auto at = from == std::string::npos ? from : log.find(key, from + after.size());
    if (at == std::string::npos) {
        return 0;
    }
    const unsigned long port = std::strtoul(log.c_str() + at + key.size(), nullptr, 10);
    return port > 0 && port <= 65535 ? static_cast<std::uint16_t>(port) : 0;
}

// The port a service's metrics listen on, from its log's `starting ... metrics_port=N` line
// (runtime::service_main); the demo asks for port 0, so only the log knows it.
Result<std::uint16_t> metrics_port(const Child& child) {
    const std::uint16_t port = port_in_log(child, "metrics_port=", "");
    if (port == 0) {
        return fail(ErrorCode::kNotFound,
                    "{}: no metrics_port in {} (metrics off, or the port is unreadable)",
                    child.name, child.log.string());
    }
    return port;
}

using live::mechanism_name;
using live::summary_json;

// The binary of one service: --services-dir, else next to this program (an install), else the
// CMake build tree (<build>/apps/anisoflow/anisoflow -> <build>/services/<name>/).
Result<fs::path> service_binary(const DemoOptions& o, const fs::path& self_dir,
                                const std::string& service) {
    const std::string file = "anisoflow-" + service;
    std::vector<fs::path> candidates;
    if (!o.services_dir.empty()) {
        candidates.push_back(fs::path(o.services_dir) / file);
    } else {
        candidates.push_back(self_dir / file);
        candidates.push_back(self_dir / ".." / ".." / "services" / service / file);
    }
    for (const fs::path& candidate : candidates) {
        if (::access(candidate.c_str(), X_OK) == 0) {
            return candidate.lexically_normal();
        }
    }
    std::string tried;
    for (const fs::path& candidate : candidates) {
        tried += (tried.empty() ? "" : ", ") + candidate.lexically_normal().string();
    }
    return fail(ErrorCode::kNotFound, "{} not found (tried {}); build it or give --services-dir",
                file, tried);
}

// The dashboard's built files: --dashboard-dir, else an install's share/anisoflow/dashboard, else
// the build tree's web/dist; empty (the gateway then serves the API only) when none has one.
fs::path find_dashboard(const DemoOptions& o, const fs::path& self_dir) {
    if (!o.dashboard_dir.empty()) {
        return fs::absolute(o.dashboard_dir).lexically_normal();
    }
    for (const fs::path& candidate : {self_dir / ".." / "share" / "anisoflow" / "dashboard",
                                      self_dir / ".." / ".." / "web" / "dist"}) {
        std::error_code ec;
        if (fs::is_regular_file(candidate / "index.html", ec)) {
            return fs::absolute(candidate).lexically_normal();
        }
    }
    return {};
}

// The TOML quoting of a string value (paths here hold no control characters).
std::string quoted(const std::string& text) {
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
        }
        out.push_back(c);
    }
    return out + "\"";
}

Result<void> write_text(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::trunc);
    out << text;
    out.close();
    if (!out) {
        return fail(ErrorCode::kIo, "cannot write {}", path.string());
    }
    return {};
}

struct Endpoints {
    std::string stream, frames, control, reduced, results, archive, raw, receipts;
};

std::string common_toml(const std::string& instance) {
    // Metrics on any free port of the loopback: several demos (or tests) never clash.
    return fmt::format(
        "instance = {}\n\n[logging]\nlevel = \"info\"\n\n[metrics]\nenabled = true\n"
        "bind_address = \"127.0.0.1:0\"\n\n",
        quoted(instance));
}

std::string endpoint_toml(const std::string& name, const std::string& address) {
    return fmt::format("[endpoints.{}]\naddress = {}\n\n", name, quoted(address));
}

// Writes DIR/config/<service>.toml; each file names only what differs from
// deploy/config/<service>.toml.
Result<std::vector<std::pair<std::string, fs::path>>> write_configs(const DemoOptions& o,
                                                                    const fs::path& config_dir,
                                                                    const fs::path& runs_dir,
                                                                    const fs::path& dashboard_dir,
                                                                    const Endpoints& e) {
    std::vector<std::pair<std::string, fs::path>> configs;
    const auto add = [&](const std::string& service, const std::string& instance,
                         const std::string& text) -> Result<void> {
        const fs::path path = config_dir / (instance + ".toml");
        if (auto written = write_text(path, "# written by `anisoflow demo`\n" + text); !written) {
            return written;
        }
        configs.emplace_back(service, path);
        return {};
    };
    std::string ingest = common_toml("ingest");
    ingest += fmt::format("[source]\nkind = \"anisoflow_stream\"\nstream_address = {}\n\n",
                          quoted("@" + e.stream));
    ingest += endpoint_toml("frames_out", "@" + e.frames);
    ingest += endpoint_toml("control_out", "@" + e.control);
    const bool raw = o.raw_compression != "off";
    if (raw) {
        ingest += endpoint_toml("raw_out", "@" + e.raw);
        // Raw frames are kept until archive has stored them (docs/protocol.md, "Archive
        // receipts"), as are analyze's messages to archive.
        ingest += endpoint_toml("receipts_in", ">" + e.receipts);
    }
    if (auto added = add("ingest", "ingest", ingest); !added) {
        return tl::unexpected(added.error());
    }
    for (std::size_t i = 0; i < o.reducers; ++i) {
        const std::string instance = fmt::format("reduce-{}", i);
        std::string reduce = common_toml(instance);
        reduce.insert(0, fmt::format("threads = {}\n", o.reduce_threads));
        reduce += endpoint_toml("frames_in", ">" + e.frames);
        reduce += endpoint_toml("control_in", ">" + e.control);
        reduce += endpoint_toml("reduced_out", ">" + e.reduced);
        if (auto added = add("reduce", instance, reduce); !added) {
            return tl::unexpected(added.error());
        }
    }
    std::string analyze =
        fmt::format("recompute_interval_ms = {}\n", o.recompute_ms) + common_toml("analyze");
    analyze += endpoint_toml("reduced_in", "@" + e.reduced);
    analyze += endpoint_toml("control_in", ">" + e.control);
    analyze += endpoint_toml("results_out", "@" + e.results);
    analyze += endpoint_toml("archive_out", "@" + e.archive);
    analyze += endpoint_toml("receipts_in", ">" + e.receipts);
    if (auto added = add("analyze", "analyze", analyze); !added) {
        return tl::unexpected(added.error());
    }
    std::string archive =
        fmt::format("archive_dir = {}\n", quoted(runs_dir.string())) +
        (raw ? fmt::format("raw_compression = {}\n", quoted(o.raw_compression)) : "") +
        common_toml("archive");
    archive += endpoint_toml("results_in", ">" + e.results);
    archive += endpoint_toml("control_in", ">" + e.control);
    archive += endpoint_toml("archive_in", ">" + e.archive);
    archive += endpoint_toml("receipts_out", "@" + e.receipts);
    if (raw) {
        archive += endpoint_toml("raw_in", ">" + e.raw);
    }
    if (auto added = add("archive", "archive", archive); !added) {
        return tl::unexpected(added.error());
    }
    // The gateway's pipeline view scrapes what the demo lists for Prometheus (step 3).
    std::string gateway =
        fmt::format("archive_dir = {}\nmetrics_targets_file = {}\n", quoted(runs_dir.string()),
                    quoted((config_dir.parent_path() / "prometheus" / "targets.json").string())) +
        common_toml("gateway") +
        fmt::format("[http]\nbind_address = {}\nstatic_dir = {}\n\n", quoted(o.http),
                    quoted(dashboard_dir.string()));
    gateway += endpoint_toml("results_in", ">" + e.results);
    gateway += endpoint_toml("control_in", ">" + e.control);
    if (auto added = add("gateway", "gateway", gateway); !added) {
        return tl::unexpected(added.error());
    }
    return configs;
}

// One line per result: what the README and docs/demo.md show.
std::string result_line(const pb::AnalysisResult& r, std::size_t frames_per_orientation) {
    const std::string r_c =
        r.has_r_c_angstrom() ? fmt::format("{:.2f} A", r.r_c_angstrom()) : std::string("none");
    return fmt::format(
        "{:<6} frames P {}/{} N {}/{}  alpha = {:.4e} +- {:.1e}  eps_aff = {:.4e} +- {:.1e}  "
        "r_c = {}  mechanism = {}",
        r.is_final() ? "final" : "update", r.n_frames_p(), frames_per_orientation, r.n_frames_n(),
        frames_per_orientation, r.alpha(), r.alpha_stderr(), r.eps_aff(), r.eps_aff_stderr(), r_c,
        mechanism_name(r.mechanism()));
}

struct Sockets {
    zmq::context_t context;
    zmq::socket_t control;  // ingest's control PUB: its heartbeats say it is up
    zmq::socket_t results;  // analyze's results PUB: heartbeats, then the run's results
};

Result<void> open_sockets(Sockets& s, const Endpoints& e) {
    transport::SocketOptions options;
    options.receive_hwm = 1000;
    auto control =
        transport::open_socket(s.context, zmq::socket_type::sub, ">" + e.control, options);
    if (!control) {
        return tl::unexpected(control.error());
    }
    auto results =
        transport::open_socket(s.context, zmq::socket_type::sub, ">" + e.results, options);
    if (!results) {
        return tl::unexpected(results.error());
    }
    s.control = std::move(*control);
    s.results = std::move(*results);
    return {};
}

// Reads what `socket` has queued, without waiting; true when a heartbeat was among it.
Result<bool> heartbeat_seen(zmq::socket_t& socket) {
    bool seen = false;
    while (true) {
        auto received = transport::receive(socket, std::chrono::milliseconds(0));
        if (!received) {
            return tl::unexpected(received.error());
        }
        if (!*received) {
            return seen;
        }
        auto decoded = transport::decode(std::move(**received));
        seen = seen || (decoded && std::holds_alternative<transport::HeartbeatMessage>(*decoded));
    }
}

// The first child that has ended, if any.
const Child* ended_child(std::vector<Child>& children) {
    for (Child& child : children) {
        if (child.poll()) {
            return &child;
        }
    }
    return nullptr;
}

class Demo {
  public:
    explicit Demo(const DemoOptions& o) : o_(o) {}

    int run() {
        const int status = run_until_result();
        if (!children_.empty()) {
            std::fprintf(stderr, "anisoflow demo: stopping the services\n");
            stop_all(children_, std::chrono::duration<double>(o_.stop_timeout_s));
        }
        bool children_ok = true;
        for (const Child& child : children_) {
            if (!child.succeeded()) {
                std::fprintf(stderr, "anisoflow demo: %s failed (%s), log %s\n", child.name.c_str(),
                             child.how().c_str(), child.log.c_str());
                children_ok = false;
            }
        }
        if (status == 0 && children_ok) {
            std::printf("archive: %s\n", archive_file_.c_str());
            std::printf("logs: %s\n", logs_dir_.c_str());
        }
        std::fflush(stdout);
        return status == 0 && children_ok ? 0 : 1;
    }

  private:
    int run_until_result() {
        auto prepared = prepare();
        if (!prepared) {
            return report(prepared.error());
        }
        if (auto started = start_services(); !started) {
            return report(started.error());
        }
        if (auto up = wait_until_up(); !up) {
            return report(up.error());
        }
        if (auto targets = write_prometheus_targets(); !targets) {
            return report(targets.error());
        }
        if (auto streamed = start_simulator(); !streamed) {
            return report(streamed.error());
        }
        auto final_result = follow_results();
        if (!final_result) {
            return report(final_result.error());
        }
        if (auto archived = wait_for_archive(); !archived) {
            return report(archived.error());
        }
        auto counted = record_metrics();
        if (!counted) {
            return report(counted.error());
        }
        if (!o_.json_path.empty()) {
            if (auto written = write_json(*final_result, *counted); !written) {
                return report(written.error());
            }
        }
        linger();
        return 0;
    }

    // --linger-s: the chain stays up for the dashboard or a Prometheus server; a signal ends it.
    void linger() const {
        if (!(o_.linger_s > 0.0)) {
            return;
        }
        std::printf("services stay up for %.0f s (Ctrl-C ends sooner)%s%s\n", o_.linger_s,
                    dashboard_url_.empty() ? "" : "; dashboard: ", dashboard_url_.c_str());
        std::fflush(stdout);
        const auto deadline = Clock::now() + std::chrono::duration<double>(o_.linger_s);
        while (Clock::now() < deadline && g_signal.load() == 0) {
            std::this_thread::sleep_for(kPoll);
        }
    }

    // DIR/prometheus/targets.json, Prometheus' file_sd format: where every service's metrics
    // are, so a Prometheus server can scrape the demo (docs/monitoring.md).
    Result<void> write_prometheus_targets() {
        nlohmann::json targets = nlohmann::json::array();
        for (const Child& child : children_) {
            if (child.name == "simulate") {
                continue;
            }
            auto port = metrics_port(child);
            if (!port) {
                return tl::unexpected(port.error());
            }
            const std::string service = child.name.substr(0, child.name.find('-'));
            targets.push_back({{"targets", {fmt::format("127.0.0.1:{}", *port)}},
                               {"labels", {{"service", service}, {"instance", child.name}}}});
        }
        const fs::path dir = config_dir_.parent_path() / "prometheus";
        std::error_code ec;
        fs::create_directories(dir, ec);
        // Written whole, then renamed: Prometheus never reads half a file.
        if (auto written = write_text(dir / "targets.json.tmp", targets.dump(2) + "\n"); !written) {
            return written;
        }
        fs::rename(dir / "targets.json.tmp", dir / "targets.json", ec);
        if (ec) {
            return fail(ErrorCode::kIo, "{}: {}", (dir / "targets.json").string(), ec.message());
        }
        for (const Child& child : children_) {
            if (child.name == "gateway") {
                const std::uint16_t http = port_in_log(child, ":", "http=");
                if (http != 0) {
                    dashboard_url_ = fmt::format("http://127.0.0.1:{}/", http);
                    std::printf("dashboard: %s%s\n", dashboard_url_.c_str(),
                                dashboard_dir_.empty() ? " (API only: no dashboard built)" : "");
                    std::fflush(stdout);
                }
            }
        }
        return {};
    }

    // What every service counted, read over HTTP as Prometheus would, before they are stopped:
    // DIR/metrics/<instance>.prom as served, and parsed for --json.
    Result<nlohmann::json> record_metrics() {
        std::error_code ec;
        fs::create_directories(metrics_dir_, ec);
        if (ec) {
            return fail(ErrorCode::kIo, "{}: {}", metrics_dir_.string(), ec.message());
        }
        nlohmann::json all = nlohmann::json::object();
        for (const Child& child : children_) {
            if (child.name == "simulate") {
                continue;
            }
            auto port = metrics_port(child);
            if (!port) {
                return tl::unexpected(port.error());
            }
            auto body = metrics::scrape("127.0.0.1", *port, kScrapeTimeout);
            if (!body) {
                return tl::unexpected(body.error().with_context(child.name + " metrics"));
            }
            std::ofstream(metrics_dir_ / (child.name + ".prom")) << *body;
            auto samples = metrics::parse_exposition(*body);
            if (!samples) {
                return tl::unexpected(samples.error().with_context(child.name + " metrics"));
            }
            all[child.name] = *samples;
        }
        return all;
    }

    Result<void> write_json(const pb::AnalysisResult& final_result, nlohmann::json metrics) {
        nlohmann::json document = summary_json(final_result);
        document["run_id"] = run_id_;
        document["archive"] = archive_file_.string();
        document["metrics"] = std::move(metrics);
        std::ofstream out(o_.json_path);
        out << document.dump(2) << "\n";
        if (!out) {
            return fail(ErrorCode::kIo, "--json {}: cannot write", o_.json_path);
        }
        return {};
    }

    Result<void> prepare() {
        if (o_.raw_compression != "off" && o_.raw_compression != "none" &&
            o_.raw_compression != "lz4" && o_.raw_compression != "bslz4") {
            return fail(ErrorCode::kInvalidArgument,
                        "--raw-compression {}: use bslz4, lz4, none or off", o_.raw_compression);
        }
        if (o_.reducers == 0 || o_.reduce_threads == 0 || o_.frames_per_orientation == 0) {
            return fail(ErrorCode::kInvalidArgument,
                        "--reducers, --reduce-threads and --frames must be at least 1");
        }
        if (!(o_.fps >= 0.0)) {
            return fail(ErrorCode::kInvalidArgument, "--fps {} is negative", o_.fps);
        }
        std::error_code ec;
        self_ = fs::read_symlink("/proc/self/exe", ec);
        if (ec) {
            return fail(ErrorCode::kIo, "/proc/self/exe: {}", ec.message());
        }
        for (const char* service : {"ingest", "reduce", "analyze", "archive", "gateway"}) {
            auto binary = service_binary(o_, self_.parent_path(), service);
            if (!binary) {
                return tl::unexpected(binary.error());
            }
            binaries_.emplace_back(service, std::move(*binary));
        }
        const fs::path dir = fs::absolute(o_.out_dir, ec).lexically_normal();
        config_dir_ = dir / "config";
        logs_dir_ = dir / "logs";
        runs_dir_ = dir / "runs";
        metrics_dir_ = dir / "metrics";
        const fs::path sock_dir = dir / "sock";
        for (const fs::path& sub : {config_dir_, logs_dir_, runs_dir_, sock_dir}) {
            fs::create_directories(sub, ec);
            if (ec) {
                return fail(ErrorCode::kIo, "--out-dir {}: {}", sub.string(), ec.message());
            }
        }
        const auto ipc = [&](const char* name) {
            const fs::path path = sock_dir / name;
            fs::remove(path, ec);  // a socket file left by an earlier demo
            return "ipc://" + path.string();
        };
        endpoints_ = Endpoints{ipc("stream"),  ipc("frames"),  ipc("control"), ipc("reduced"),
                               ipc("results"), ipc("archive"), ipc("raw"),     ipc("receipts")};
        if ((sock_dir / "reduced").string().size() > kMaxIpcPath) {
            return fail(ErrorCode::kInvalidArgument,
                        "--out-dir {} is too long for ipc:// socket paths (at most {} bytes with "
                        "sock/reduced); choose a shorter directory",
                        dir.string(), kMaxIpcPath);
        }
        run_id_ = fmt::format("demo-{}", std::chrono::duration_cast<std::chrono::seconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
        // The run id holds only [A-Za-z0-9-]: archive names the file <run id>.nxs.
        archive_file_ = runs_dir_ / (run_id_ + ".nxs");
        dashboard_dir_ = find_dashboard(o_, self_.parent_path());
        auto configs = write_configs(o_, config_dir_, runs_dir_, dashboard_dir_, endpoints_);
        if (!configs) {
            return tl::unexpected(configs.error());
        }
        configs_ = std::move(*configs);
        return open_sockets(sockets_, endpoints_);
    }

    [[nodiscard]] const fs::path& binary(const std::string& service) const {
        for (const auto& [name, path] : binaries_) {
            if (name == service) {
                return path;
            }
        }
        return binaries_.front().second;  // not reached: every service is found in prepare()
    }

    Result<void> start_services() {
        for (const auto& [service, config] : configs_) {
            const std::string instance = config.stem().string();
            auto child = spawn(instance, binary(service), {"--config", config.string()},
                               logs_dir_ / (instance + ".log"));
            if (!child) {
                return tl::unexpected(child.error());
            }
            std::fprintf(stderr, "anisoflow demo: started %s pid %d (%s)\n", instance.c_str(),
                         child->pid, binary(service).c_str());
            children_.push_back(std::move(*child));
        }
        return {};
    }

    Result<void> check_children() {
        if (g_signal.load() != 0) {
            return fail(ErrorCode::kIo, "interrupted by signal {}", g_signal.load());
        }
        if (const Child* ended = ended_child(children_); ended != nullptr) {
            if (ended->name == "simulate" && ended->succeeded()) {
                return {};  // the simulator ends when it has streamed the run
            }
            return fail(ErrorCode::kIo, "{} ended early ({}); see {}", ended->name, ended->how(),
                        ended->log.string());
        }
        return {};
    }

    // Up: ingest and analyze send heartbeats, the reduce workers and archive logged "ready".
    Result<void> wait_until_up() {
        const auto deadline = Clock::now() + std::chrono::duration<double>(o_.startup_timeout_s);
        bool ingest_up = false;
        bool analyze_up = false;
        while (true) {
            if (auto ok = check_children(); !ok) {
                return ok;
            }
            for (auto [socket, up] : {std::pair{&sockets_.control, &ingest_up},
                                      std::pair{&sockets_.results, &analyze_up}}) {
                auto seen = heartbeat_seen(*socket);
                if (!seen) {
                    return tl::unexpected(seen.error());
                }
                *up = *up || *seen;
            }
            bool others_up = true;
            for (const Child& child : children_) {
                if (child.name != "ingest" && child.name != "analyze") {
                    others_up = others_up && log_contains(child, "ready");
                }
            }
            if (ingest_up && analyze_up && others_up) {
                std::fprintf(stderr, "anisoflow demo: %zu services up\n", children_.size());
                return {};
            }
            if (Clock::now() > deadline) {
                return fail(ErrorCode::kIo,
                            "services not up within {} s (ingest heartbeat {}, analyze heartbeat "
                            "{}, reduce and archive ready {}); see the logs in {}",
                            o_.startup_timeout_s, ingest_up, analyze_up, others_up,
                            logs_dir_.string());
            }
            std::this_thread::sleep_for(kPoll);
        }
    }

    // The simulator is `anisoflow simulate --stream` of this very binary, as a child: it blocks
    // while ingest applies backpressure, and a child can be stopped whatever it waits on.
    Result<void> start_simulator() {
        std::vector<std::string> arguments = {
            "simulate",
            "--stream",
            ">" + endpoints_.stream,
            "--fps",
            fmt::format("{}", o_.fps),
            "--run-id",
            run_id_,
            "--rows",
            std::to_string(o_.rows),
            "--cols",
            std::to_string(o_.cols),
            "--distance",
            fmt::format("{}", o_.distance_m),
            "--frames",
            std::to_string(o_.frames_per_orientation),
            "--distinct",
            std::to_string(o_.distinct_frames),
            "--mode",
            o_.mode,
            "--eps",
            fmt::format("{}", o_.eps),
            "--seed",
            std::to_string(o_.seed),
        };
        if (o_.interleave) {
            arguments.emplace_back("--interleave");
        }
        auto child = spawn("simulate", self_, arguments, logs_dir_ / "simulate.log");
        if (!child) {
            return tl::unexpected(child.error());
        }
        std::fprintf(stderr,
                     "anisoflow demo: streaming run %s: %zux%zu detector, %zu P + %zu N frames at "
                     "%g fps\n",
                     run_id_.c_str(), o_.rows, o_.cols, o_.frames_per_orientation,
                     o_.frames_per_orientation, o_.fps);
        children_.push_back(std::move(*child));
        return {};
    }

    // Prints every result of the run; returns once the final one came.
    Result<pb::AnalysisResult> follow_results() {
        const auto deadline = Clock::now() + std::chrono::duration<double>(o_.run_timeout_s);
        while (true) {
            if (auto ok = check_children(); !ok) {
                return tl::unexpected(ok.error());
            }
            if (Clock::now() > deadline) {
                return fail(ErrorCode::kIo, "no final result within {} s; see the logs in {}",
                            o_.run_timeout_s, logs_dir_.string());
            }
            auto received = transport::receive(sockets_.results, kPoll);
            if (!received) {
                if (g_signal.load() != 0) {
                    continue;  // the poll was interrupted by the signal: check_children() says so
                }
                return tl::unexpected(received.error());
            }
            if (!*received) {
                // Archive closes the run file after the final result, the last thing analyze
                // sends down the feed: without one by then, analyze has none to give.
                if (archive_closed_since_ && Clock::now() - *archive_closed_since_ > kFinalGrace) {
                    return fail(ErrorCode::kIo,
                                "analyze published no final result for run {}: {}; see {}", run_id_,
                                last_warning(logs_dir_ / "analyze.log"),
                                (logs_dir_ / "analyze.log").string());
                }
                if (!archive_closed_since_ && archive_closed()) {
                    archive_closed_since_ = Clock::now();
                }
                continue;
            }
            auto decoded = transport::decode(std::move(**received));
            if (!decoded) {
                continue;
            }
            const auto* result = std::get_if<transport::ResultMessage>(&*decoded);
            if (result == nullptr || result->header.run_id() != run_id_) {
                continue;
            }
            std::printf("%s\n", result_line(result->header, o_.frames_per_orientation).c_str());
            std::fflush(stdout);
            if (result->header.is_final()) {
                return result->header;
            }
        }
    }

    [[nodiscard]] bool archive_closed() const {
        return log_contains(Child{"archive", logs_dir_ / "archive.log"},
                            "run file closed run=" + run_id_);
    }

    // Archive closes the run file when RunEnd, the last message of the feed, comes: wait for
    // that before stopping it (a file open at stop is marked aborted).
    Result<void> wait_for_archive() {
        const auto deadline = Clock::now() + std::chrono::duration<double>(o_.startup_timeout_s);
        const Child* archive = nullptr;
        for (const Child& child : children_) {
            if (child.name == "archive") {
                archive = &child;
            }
        }
        const std::string closed = "run file closed run=" + run_id_;
        while (archive != nullptr && !log_contains(*archive, closed)) {
            if (auto ok = check_children(); !ok) {
                return ok;
            }
            if (Clock::now() > deadline) {
                return fail(ErrorCode::kIo, "archive did not close {} within {} s; see {}",
                            archive_file_.string(), o_.startup_timeout_s, archive->log.string());
            }
            std::this_thread::sleep_for(kPoll);
        }
        if (!fs::exists(archive_file_)) {
            return fail(ErrorCode::kNotFound, "archive file {} missing", archive_file_.string());
        }
        return {};
    }

    const DemoOptions& o_;
    fs::path self_;
    std::vector<std::pair<std::string, fs::path>> binaries_;
    fs::path dashboard_dir_;
    std::string dashboard_url_;
    fs::path config_dir_, logs_dir_, runs_dir_, metrics_dir_, archive_file_;
    Endpoints endpoints_;
    std::string run_id_;
    std::vector<std::pair<std::string, fs::path>> configs_;
    Sockets sockets_;
    std::vector<Child> children_;
    std::optional<Clock::time_point> archive_closed_since_;
};

}  // namespace

CLI::App* add_demo_command(CLI::App& app, DemoOptions& o) {
    CLI::App* cmd = app.add_subcommand(
        "demo",
        "the main job live: start ingest, N reduce workers, analyze and archive as child "
        "processes, stream a simulated run through them and print each result (docs/demo.md)");
    cmd->add_option("--out-dir", o.out_dir, "config/, logs/, runs/ (archive) and sock/ go here")
        ->capture_default_str();
    cmd->add_option("--services-dir", o.services_dir,
                    "directory of the anisoflow-<service> binaries (default: next to this "
                    "binary, else ../../services/<service>/ from it, the build tree)");
    cmd->add_option("--reducers", o.reducers, "reduce workers")->capture_default_str();
    cmd->add_option("--reduce-threads", o.reduce_threads, "integration threads per worker")
        ->capture_default_str();
    cmd->add_option("--frames", o.frames_per_orientation, "data frames per orientation (P and N)")
        ->capture_default_str();
    cmd->add_option("--distinct", o.distinct_frames,
                    "the simulator renders only the first N frames per orientation and sends "
                    "them again in turn (long runs; 0 = render every frame)")
        ->capture_default_str();
    cmd->add_flag("--interleave", o.interleave,
                  "the simulator sends P and N frames alternately (P0, N0, P1, ...), not every P "
                  "frame first");
    cmd->add_option("--fps", o.fps, "frames per second of the simulated detector (0 = no pacing)")
        ->capture_default_str();
    cmd->add_option("--rows", o.rows, "simulated detector rows (200 um pixels)")
        ->capture_default_str();
    cmd->add_option("--cols", o.cols, "simulated detector columns")->capture_default_str();
    cmd->add_option("--distance", o.distance_m, "sample-detector distance, m")
        ->capture_default_str();
    cmd->add_option("--mode", o.mode, "simulated strain: affine, radial, rotation or none")
        ->capture_default_str();
    cmd->add_option("--eps", o.eps, "simulated strain amplitude")->capture_default_str();
    cmd->add_option("--seed", o.seed, "simulation seed")->capture_default_str();
    cmd->add_option("--startup-timeout", o.startup_timeout_s, "s for the services to come up")
        ->capture_default_str();
    cmd->add_option("--run-timeout", o.run_timeout_s, "s for the final result")
        ->capture_default_str();
    cmd->add_option("--stop-timeout", o.stop_timeout_s, "s after SIGTERM before SIGKILL")
        ->capture_default_str();
    cmd->add_option("--raw-compression", o.raw_compression,
                    "raw frames in the run file: bslz4, lz4, none (uncompressed) or off (not "
                    "stored)")
        ->capture_default_str();
    cmd->add_option("--http", o.http,
                    "host:port of the gateway: the dashboard and the JSON API (port 0: any free "
                    "port; the address is printed)")
        ->capture_default_str();
    cmd->add_option("--dashboard-dir", o.dashboard_dir,
                    "the dashboard's built files (default: an install's share/anisoflow/dashboard "
                    "or the build tree's web/dist)");
    cmd->add_option("--recompute-ms", o.recompute_ms,
                    "analyze publishes a result at most this often while frames arrive, ms")
        ->capture_default_str()
        ->check(CLI::Range(1, 3600000));
    cmd->add_option("--linger-s", o.linger_s,
                    "keep the services up this many seconds after the final result (for the "
                    "dashboard or a Prometheus server); Ctrl-C ends sooner")
        ->capture_default_str();
    cmd->add_option("--json", o.json_path,
                    "write the final result (SUMMARY.json keys), the run file and every "
                    "service's metrics at the end of the run to this file");
    return cmd;
}

int run_demo(const DemoOptions& options) {
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, nullptr);
    ::sigaction(SIGTERM, &action, nullptr);
    Demo demo(options);
    return demo.run();
}

}  // namespace anisoflow::app
