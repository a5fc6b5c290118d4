#include "gateway_service.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "anisoflow/archive/run_archive.hpp"
#include "anisoflow/archive/run_reader.hpp"
#include "anisoflow/core/clock.hpp"
#include "anisoflow/live/pipeline.hpp"
#include "anisoflow/live/run_board.hpp"
#include "anisoflow/metrics/scrape.hpp"
#include "anisoflow/runtime/stage.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/socket.hpp"
#include "anisoflow/transport/socket_security.hpp"

namespace anisoflow::gateway {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
namespace pb = ::anisoflow::stream::v1;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kFeedPoll{50};                  // how often the feed thread looks at stop
constexpr std::chrono::seconds kHttpTimeout{30};       // an idle or slow HTTP client is dropped
constexpr std::uint32_t kMaxRequestBytes = 16 * 1024;  // requests are GETs: headers only
constexpr int kDrainBatch = 256;  // messages per socket per poll, so one feed cannot starve

struct GatewayMetrics {
    metrics::CounterFamily requests;  // by route
    metrics::Gauge websocket_clients;
    metrics::Counter pushes;
    metrics::Counter pushes_dropped;
    metrics::Counter messages_received;
    metrics::CounterFamily messages_rejected;  // by reason
    metrics::Counter bytes_received;
};

Result<GatewayMetrics> register_metrics(metrics::Registry& registry) {
    auto requests = registry.counter_family(
        "anisoflow_gateway_http_requests_total", "HTTP requests answered, by route", "route",
        {"health", "pipeline", "runs", "run", "result", "cake", "static", "websocket", "not_found",
         "method_not_allowed", "busy"});
    auto clients = registry.gauge("anisoflow_gateway_websocket_clients",
                                  "pages connected to /ws for live results");
    auto pushes =
        registry.counter("anisoflow_gateway_pushes_total", "result messages pushed to pages");
    auto dropped = registry.counter(
        "anisoflow_gateway_pushes_dropped_total",
        "pushes skipped for a page that had not taken the earlier ones (it gets the newest)");
    auto received = registry.counter("anisoflow_gateway_messages_received_total",
                                     "messages read from the control and results feeds");
    auto rejected =
        registry.counter_family("anisoflow_gateway_messages_rejected_total",
                                "feed messages dropped by decode(), by reason", "reason");
    auto bytes = registry.counter("anisoflow_gateway_bytes_received_total",
                                  "bytes of every message part read from the feeds");
    if (!requests || !clients || !pushes || !dropped || !received || !rejected || !bytes) {
        return fail(ErrorCode::kInvalidArgument, "cannot register the gateway metrics");
    }
    return GatewayMetrics{*requests, *clients, *pushes, *dropped, *received, *rejected, *bytes};
}

// "%3A" -> ":"; nullopt for a malformed escape.
std::optional<std::string> percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out.push_back(text[i]);
            continue;
        }
        if (i + 2 >= text.size()) {
            return std::nullopt;
        }
        const auto hex = [](char c) -> int {
            if (c >= '0' && c <= '9') {
                return c - '0';
            }
            if (c >= 'a' && c <= 'f') {
                return c - 'a' + 10;
            }
            if (c >= 'A' && c <= 'F') {
                return c - 'A' + 10;
            }
            return -1;
        };
        const int high = hex(text[i + 1]);
        const int low = hex(text[i + 2]);
        if (high < 0 || low < 0) {
            return std::nullopt;
        }
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
    }
    return out;
}

std::string_view mime_type(const std::filesystem::path& path) {
    const std::string ext = path.extension().string();
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 9> kTypes = {{
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".map", "application/json"},
    }};
    for (const auto& [extension, type] : kTypes) {
        if (ext == extension) {
            return type;
        }
    }
    return "application/octet-stream";
}

class WebSocketSession;

// What every session shares; touched on the Asio thread only (the board has its own lock).
struct Hub {
    Hub(const cfg::GatewayConfig& config, GatewayMetrics metrics_in)
        : board(config.runs_kept()),
          static_dir(config.http().static_dir()),
          archive_dir(config.archive_dir()),
          max_clients(config.http().max_websocket_clients()),
          client_queue(std::max<std::uint32_t>(1, config.http().websocket_queue_messages())),
          metrics(std::move(metrics_in)) {}

    live::RunBoard board;
    live::PipelineMonitor pipeline;
    std::filesystem::path static_dir;
    std::filesystem::path archive_dir;
    std::uint32_t max_clients;
    std::uint32_t client_queue;
    GatewayMetrics metrics;
    std::set<WebSocketSession*> clients;

    void broadcast(const std::shared_ptr<const std::string>& text);
};

// One page's live connection: results pushed as they come, the newest kept when it lags.
class WebSocketSession : public std::enable_shared_from_this<WebSocketSession> {
  public:
    WebSocketSession(tcp::socket&& socket, Hub& hub) : ws_(std::move(socket)), hub_(hub) {}
    ~WebSocketSession() {
        if (hub_.clients.erase(this) > 0) {
            hub_.metrics.websocket_clients.set(static_cast<double>(hub_.clients.size()));
        }
    }
    WebSocketSession(const WebSocketSession&) = delete;
    WebSocketSession& operator=(const WebSocketSession&) = delete;
    WebSocketSession(WebSocketSession&&) = delete;
    WebSocketSession& operator=(WebSocketSession&&) = delete;

    void start(http::request<http::string_body> request) {
        ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
        ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& response) {
            response.set(http::field::server, "anisoflow-gateway");
        }));
        upgrade_ = std::move(request);  // kept until the handshake completes
        ws_.async_accept(
            upgrade_, [self = shared_from_this()](beast::error_code ec) { self->on_accept(ec); });
    }

    void send(const std::shared_ptr<const std::string>& text) {
        if (queue_.size() > hub_.client_queue) {
            // Keep the message being written (front) and drop the rest: the page gets the
            // newest, never a growing backlog.
            hub_.metrics.pushes_dropped.increment(static_cast<double>(queue_.size() - 1));
            queue_.erase(queue_.begin() + 1, queue_.end());
        }
        queue_.push_back(text);
        hub_.metrics.pushes.increment();
        if (queue_.size() == 1) {
            write_next();
        }
    }

  private:
    void on_accept(beast::error_code ec) {
        if (ec) {
            return;
        }
        hub_.clients.insert(this);
        hub_.metrics.websocket_clients.set(static_cast<double>(hub_.clients.size()));
        const nlohmann::json hello = {{"type", "hello"}, {"runs", hub_.board.runs()}};
        send(std::make_shared<const std::string>(hello.dump()));
        read_next();
    }

    // Pages do not talk; reading keeps the connection's close and pings handled.
    void read_next() {
        ws_.async_read(incoming_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) {
                self->hub_.clients.erase(self.get());
                self->hub_.metrics.websocket_clients.set(
                    static_cast<double>(self->hub_.clients.size()));
                return;
            }
            self->incoming_.consume(self->incoming_.size());
            self->read_next();
        });
    }

    void write_next() {
        ws_.text(true);
        ws_.async_write(net::buffer(*queue_.front()),
                        [self = shared_from_this()](beast::error_code ec, std::size_t) {
                            if (ec) {
                                self->queue_.clear();
                                return;
                            }
                            self->queue_.pop_front();
                            if (!self->queue_.empty()) {
                                self->write_next();
                            }
                        });
    }

    websocket::stream<beast::tcp_stream> ws_;
    Hub& hub_;
    http::request<http::string_body> upgrade_;
    beast::flat_buffer incoming_;
    std::deque<std::shared_ptr<const std::string>> queue_;
};

void Hub::broadcast(const std::shared_ptr<const std::string>& text) {
    for (WebSocketSession* client : clients) {
        client->send(text);
    }
}

// An archived run, read back from its file, folded into the board as the live run was, so one
// view serves both (docs/gateway.md). `run_id` is the name the page asked for (the file's stem).
Result<void> import_archived(live::RunBoard& board, const std::filesystem::path& file,
                             const std::string& run_id) {
    auto run = archive::read_run(file);
    if (!run) {
        return tl::unexpected(run.error());
    }
    const std::int64_t now = unix_now_ns();
    run->start.set_run_id(run_id);
    board.on_run_start(run->start, now);
    for (const pb::StateChange& change : run->run_log) {
        pb::RunEvent event;
        event.set_run_id(run_id);
        *event.mutable_change() = change;
        board.on_run_event(event);
    }
    for (std::size_t i = 0; i < run->results.size(); ++i) {
        transport::ResultMessage message;
        message.header = std::move(run->results[i]);
        message.header.set_run_id(run_id);
        if (i + 1 == run->results.size()) {  // the file keeps the latest curves only
            for (auto& [kind, values] : run->curves) {
                pb::CurveDescriptor& curve = *message.header.add_curves();
                curve.set_kind(kind);
                curve.set_n_points(values.size() / 3);
                message.curves.push_back(transport::make_payload(std::move(values)));
            }
        }
        (void)board.on_result(message, now);
    }
    // An interrupted file's run is not over, but nothing writes it: the archive started next
    // goes on with it when a message of the run comes, if one ever does.
    if (run->state == archive::kRunStateInterrupted) {
        board.on_run_interrupted(run_id);
    } else if (run->state != archive::kRunStateRunning) {
        pb::RunEnd end;
        end.set_run_id(run_id);
        end.set_reason(run->state == archive::kRunStateAborted ? pb::RUN_END_REASON_ABORTED
                                                               : pb::RUN_END_REASON_COMPLETED);
        end.set_detail(run->end_detail);
        board.on_run_end(end, now);
    }
    return {};
}

using Response = http::response<http::string_body>;

// Headers every answer carries: a read-only service that is never framed, sniffed or cached.
void secure(Response& response, bool html) {
    response.set(http::field::server, "anisoflow-gateway");
    response.set("X-Content-Type-Options", "nosniff");
    response.set("X-Frame-Options", "DENY");
    response.set("Referrer-Policy", "no-referrer");
    if (html) {
        response.set("Content-Security-Policy",
                     "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
                     "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'");
    }
}

Response json_response(http::status status, const nlohmann::json& body, unsigned version,
                       bool keep_alive) {
    Response response{status, version};
    secure(response, false);
    response.set(http::field::content_type, "application/json");
    response.set(http::field::cache_control, "no-store");
    response.keep_alive(keep_alive);
    response.body() = body.dump();
    response.prepare_payload();
    return response;
}

// The request's answer (the WebSocket upgrade is handled before).
Response answer(Hub& hub, const http::request<http::string_body>& request) {
    const unsigned version = request.version();
    const bool keep_alive = request.keep_alive();
    const auto error = [&](http::status status, std::string_view route, std::string text) {
        hub.metrics.requests.with(route).increment();
        return json_response(status, {{"error", std::move(text)}}, version, keep_alive);
    };
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
        auto response = error(http::status::method_not_allowed, "method_not_allowed",
                              "read-only: GET and HEAD only");
        response.set(http::field::allow, "GET, HEAD");
        return response;
    }
    std::string_view target(request.target().data(), request.target().size());
    target = target.substr(0, target.find('?'));

    if (target == "/api/health") {
        hub.metrics.requests.with("health").increment();
        return json_response(http::status::ok, hub.board.health(unix_now_ns()), version,
                             keep_alive);
    }
    if (target == "/api/pipeline") {
        hub.metrics.requests.with("pipeline").increment();
        return json_response(http::status::ok, hub.pipeline.json(), version, keep_alive);
    }
    if (target == "/api/runs") {
        hub.metrics.requests.with("runs").increment();
        nlohmann::json runs = hub.board.runs();
        std::set<std::string> live_ids;
        for (const auto& run : runs) {
            live_ids.insert(run["run_id"].get<std::string>());
        }
        std::error_code ec;
        if (!hub.archive_dir.empty()) {
            std::vector<nlohmann::json> archived;
            for (const auto& entry : std::filesystem::directory_iterator(hub.archive_dir, ec)) {
                if (entry.path().extension() != ".nxs" || live_ids.contains(entry.path().stem())) {
                    continue;
                }
                std::error_code size_ec;
                archived.push_back({{"run_id", entry.path().stem().string()},
                                    {"state", "archived"},
                                    {"file", entry.path().filename().string()},
                                    {"size_bytes", entry.file_size(size_ec)}});
            }
            std::sort(archived.begin(), archived.end(),
                      [](const auto& a, const auto& b) { return a["run_id"] > b["run_id"]; });
            for (auto& run : archived) {
                runs.push_back(std::move(run));
            }
        }
        return json_response(http::status::ok, runs, version, keep_alive);
    }
    constexpr std::string_view kRunsPrefix = "/api/runs/";
    if (target.starts_with(kRunsPrefix)) {
        std::string_view rest = target.substr(kRunsPrefix.size());
        constexpr std::string_view kResultSuffix = "/result";
        constexpr std::string_view kCakeSuffix = "/cake";
        const bool want_result = rest.ends_with(kResultSuffix);
        const bool want_cake = rest.ends_with(kCakeSuffix);
        if (want_result) {
            rest.remove_suffix(kResultSuffix.size());
        }
        if (want_cake) {
            rest.remove_suffix(kCakeSuffix.size());
        }
        const auto run_id = percent_decode(rest);
        if (!run_id || run_id->empty() || run_id->find('/') != std::string::npos) {
            return error(http::status::bad_request, "not_found",
                         fmt::format("bad run id in {}", target));
        }
        // A run this gateway did not see live: from its file in archive_dir, if there is one.
        const std::filesystem::path file = hub.archive_dir / (*run_id + ".nxs");
        std::error_code exists_ec;
        if (!hub.board.run(*run_id) && !hub.archive_dir.empty() && run_id->front() != '.' &&
            std::filesystem::is_regular_file(file, exists_ec)) {
            if (auto imported = import_archived(hub.board, file, *run_id); !imported) {
                return error(http::status::internal_server_error, "not_found",
                             imported.error().message);
            }
        }
        const auto found = want_result ? hub.board.result(*run_id)
                           : want_cake ? hub.board.image(*run_id)
                                       : hub.board.run(*run_id);
        if (!found) {
            return error(http::status::not_found, "not_found",
                         want_result ? fmt::format("run {}: no result yet", *run_id)
                         : want_cake ? fmt::format("run {}: no P - N image yet", *run_id)
                                     : fmt::format("run {}: not seen by this gateway", *run_id));
        }
        hub.metrics.requests.with(want_result ? "result" : want_cake ? "cake" : "run").increment();
        return json_response(http::status::ok, *found, version, keep_alive);
    }
    if (target.starts_with("/api/")) {
        return error(http::status::not_found, "not_found", fmt::format("no route {}", target));
    }

    // The dashboard's files: only what lies inside static_dir, however the path is spelled.
    if (hub.static_dir.empty()) {
        return error(http::status::not_found, "not_found", "no dashboard: http.static_dir unset");
    }
    auto decoded = percent_decode(target);
    if (!decoded || decoded->empty() || decoded->front() != '/' ||
        decoded->find("..") != std::string::npos || decoded->find('\0') != std::string::npos) {
        return error(http::status::not_found, "not_found", "no such file");
    }
    std::filesystem::path relative = decoded->substr(1);
    if (relative.empty() || decoded->back() == '/') {
        relative /= "index.html";
    }
    std::error_code ec;
    const auto root = std::filesystem::canonical(hub.static_dir, ec);
    const auto file = std::filesystem::weakly_canonical(hub.static_dir / relative, ec);
    const auto [root_end, file_it] =
        std::mismatch(root.begin(), root.end(), file.begin(), file.end());
    if (ec || root_end != root.end() || !std::filesystem::is_regular_file(file, ec)) {
        return error(http::status::not_found, "not_found", "no such file");
    }
    std::ifstream in(file, std::ios::binary);
    std::ostringstream body;
    body << in.rdbuf();
    hub.metrics.requests.with("static").increment();
    Response response{http::status::ok, version};
    secure(response, file.extension() == ".html");
    response.set(http::field::content_type, std::string(mime_type(file)));
    response.keep_alive(keep_alive);
    response.body() = body.str();
    response.prepare_payload();
    return response;
}

class HttpSession : public std::enable_shared_from_this<HttpSession> {
  public:
    HttpSession(tcp::socket&& socket, Hub& hub) : stream_(std::move(socket)), hub_(hub) {}

    void start() { read_next(); }

  private:
    void read_next() {
        parser_.emplace();
        parser_->header_limit(kMaxRequestBytes);
        parser_->body_limit(kMaxRequestBytes);
        stream_.expires_after(kHttpTimeout);
        http::async_read(
            stream_, buffer_, *parser_,
            [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
    }

    void on_read(beast::error_code ec) {
        if (ec) {
            beast::error_code ignored;
            stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
            return;  // end of stream, timeout, or a malformed request: the connection closes
        }
        http::request<http::string_body> request = parser_->release();
        std::string_view target(request.target().data(), request.target().size());
        if (websocket::is_upgrade(request) && target.substr(0, target.find('?')) == "/ws") {
            if (hub_.clients.size() >= hub_.max_clients) {
                hub_.metrics.requests.with("busy").increment();
                write(json_response(http::status::service_unavailable,
                                    {{"error", "too many pages connected"}}, request.version(),
                                    false));
                return;
            }
            hub_.metrics.requests.with("websocket").increment();
            stream_.expires_never();
            std::make_shared<WebSocketSession>(stream_.release_socket(), hub_)
                ->start(std::move(request));
            return;
        }
        Response response = answer(hub_, request);
        if (request.method() == http::verb::head) {
            response.body().clear();  // the headers keep the length of the GET
        }
        write(std::move(response));
    }

    void write(Response response) {
        auto shared = std::make_shared<Response>(std::move(response));
        http::async_write(stream_, *shared,
                          [self = shared_from_this(), shared](beast::error_code ec, std::size_t) {
                              if (ec || !shared->keep_alive()) {
                                  beast::error_code ignored;
                                  self->stream_.socket().shutdown(tcp::socket::shutdown_send,
                                                                  ignored);
                                  return;
                              }
                              self->read_next();
                          });
    }

    beast::tcp_stream stream_;
    Hub& hub_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
};

}  // namespace

struct GatewayService::State {
    State(const cfg::GatewayConfig& config_in, GatewayMetrics metrics)
        : config(config_in), hub(config_in, std::move(metrics)), acceptor(io) {}

    cfg::GatewayConfig config;
    // The hub outlives io: sessions still held by io's handlers unregister from it as io goes.
    Hub hub;
    net::io_context io{1};
    tcp::acceptor acceptor;
    zmq::context_t context;
    transport::SocketSecurity security;  // after the context it serves, before the sockets
    zmq::socket_t results;
    zmq::socket_t control;

    void accept_next() {
        acceptor.async_accept(io, [this](beast::error_code ec, tcp::socket socket) {
            if (ec) {
                if (ec != net::error::operation_aborted) {
                    spdlog::warn("accept failed error=\"{}\"", ec.message());
                    accept_next();
                }
                return;
            }
            std::make_shared<HttpSession>(std::move(socket), hub)->start();
            accept_next();
        });
    }

    // The feed thread: control and results into the board; each result pushed to the pages.
    Result<void> read_feeds(const runtime::StopToken& stop) {
        while (!stop.stop_requested()) {
            std::array<zmq::pollitem_t, 2> items = {
                zmq::pollitem_t{control.handle(), 0, ZMQ_POLLIN, 0},
                zmq::pollitem_t{results.handle(), 0, ZMQ_POLLIN, 0}};
            try {
                zmq::poll(items.data(), items.size(), kFeedPoll);
            } catch (const zmq::error_t& error) {
                if (error.num() != EINTR) {
                    return fail(ErrorCode::kIo, "poll: {}", error.what());
                }
            }
            for (zmq::socket_t* socket : {&control, &results}) {
                if (auto drained = drain(*socket); !drained) {
                    return drained;
                }
            }
        }
        return {};
    }

    // The scrape thread: every service in metrics_targets_file, as Prometheus would, for
    // /api/pipeline. A missing file or a service that does not answer is shown, never fatal.
    Result<void> scrape_targets(const runtime::StopToken& stop) {
        const milliseconds interval(std::max<std::uint32_t>(1, config.scrape_interval_ms()));
        const milliseconds timeout = std::min(interval, milliseconds{1000});
        while (!stop.stop_requested()) {
            const auto next = Clock::now() + interval;
            std::vector<live::StageSample> scrape;
            std::ifstream file(config.metrics_targets_file());
            const nlohmann::json targets = nlohmann::json::parse(file, nullptr, false);
            if (targets.is_array()) {
                for (const auto& group : targets) {
                    const auto labels = group.value("labels", nlohmann::json::object());
                    for (const auto& target : group.value("targets", nlohmann::json::array())) {
                        if (!target.is_string()) {
                            continue;
                        }
                        for (const auto& [address, instance] :
                             expand(target.get<std::string>(), labels.value("instance", ""))) {
                            scrape.push_back(scrape_one(address, labels.value("service", ""),
                                                        instance, timeout));
                        }
                    }
                }
            }
            hub.pipeline.update(std::move(scrape));
            while (!stop.stop_requested() && Clock::now() < next) {
                std::this_thread::sleep_for(std::min(milliseconds{50}, interval));
            }
        }
        return {};
    }

    // A target whose host name stands for several machines (compose's `reduce` with --scale,
    // a headless Kubernetes Service) is every one of them, as Prometheus' DNS discovery does:
    // one (address, instance) per resolved IPv4 address, the instance suffixed with it.
    static std::vector<std::pair<std::string, std::string>> expand(const std::string& target,
                                                                   const std::string& instance) {
        const auto colon = target.rfind(':');
        if (colon == std::string::npos) {
            return {{target, instance}};
        }
        const std::string host = target.substr(0, colon);
        const std::string port = target.substr(colon + 1);
        net::io_context io;
        tcp::resolver resolver(io);
        beast::error_code ec;
        const auto found = resolver.resolve(tcp::v4(), host, port, ec);
        std::vector<std::string> addresses;
        if (!ec) {
            for (const auto& entry : found) {
                addresses.push_back(entry.endpoint().address().to_string());
            }
        }
        std::sort(addresses.begin(), addresses.end());
        addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
        if (addresses.size() <= 1) {
            return {{target, instance}};
        }
        std::vector<std::pair<std::string, std::string>> out;
        out.reserve(addresses.size());
        for (const std::string& address : addresses) {
            out.emplace_back(fmt::format("{}:{}", address, port),
                             fmt::format("{}@{}", instance.empty() ? host : instance, address));
        }
        return out;
    }

    static live::StageSample scrape_one(const std::string& address, std::string service,
                                        std::string instance, milliseconds timeout) {
        live::StageSample sample;
        sample.service = std::move(service);
        sample.instance = std::move(instance);
        if (sample.instance.empty()) {
            sample.instance = address;
        }
        sample.address = address;
        sample.unix_ns = unix_now_ns();
        const auto colon = address.rfind(':');
        const unsigned long port =
            colon == std::string::npos ? 0 : std::strtoul(address.c_str() + colon + 1, nullptr, 10);
        if (port == 0 || port > 65535) {
            sample.error = "not host:port";
            return sample;
        }
        auto body =
            metrics::scrape(address.substr(0, colon), static_cast<std::uint16_t>(port), timeout);
        if (!body) {
            sample.error = body.error().message;
            return sample;
        }
        auto parsed = metrics::parse_exposition(*body);
        if (!parsed) {
            sample.error = parsed.error().message;
            return sample;
        }
        sample.samples = std::move(*parsed);
        sample.up = true;
        return sample;
    }

    Result<void> drain(zmq::socket_t& socket) {
        for (int i = 0; i < kDrainBatch; ++i) {
            auto received = transport::receive(socket, milliseconds{0});
            if (!received) {
                return tl::unexpected(received.error());
            }
            if (!*received) {
                return {};
            }
            hub.metrics.messages_received.increment();
            hub.metrics.bytes_received.increment(
                static_cast<double>(transport::size_of(**received)));
            auto decoded = transport::decode(std::move(**received));
            if (!decoded) {
                hub.metrics.messages_rejected.with(transport::to_string(decoded.error().reason))
                    .increment();
                continue;
            }
            const std::int64_t now = unix_now_ns();
            if (auto* start = std::get_if<transport::RunStartMessage>(&*decoded)) {
                hub.board.on_run_start(start->start, now);
            } else if (auto* event = std::get_if<transport::RunEventMessage>(&*decoded)) {
                hub.board.on_run_event(event->event);
            } else if (auto* end = std::get_if<transport::RunEndMessage>(&*decoded)) {
                hub.board.on_run_end(end->end, now);
            } else if (auto* beat = std::get_if<transport::HeartbeatMessage>(&*decoded)) {
                hub.board.on_heartbeat(beat->heartbeat, now);
            } else if (auto* result = std::get_if<transport::ResultMessage>(&*decoded)) {
                auto text =
                    std::make_shared<const std::string>(hub.board.on_result(*result, now).dump());
                net::post(io, [this, text] { hub.broadcast(text); });
            }
        }
        return {};
    }
};

GatewayService::GatewayService(std::unique_ptr<State> state) : state_(std::move(state)) {}
GatewayService::~GatewayService() = default;
GatewayService::GatewayService(GatewayService&&) noexcept = default;
GatewayService& GatewayService::operator=(GatewayService&&) noexcept = default;

Result<GatewayService> GatewayService::create(const cfg::GatewayConfig& config,
                                              metrics::Registry& registry) {
    auto metrics = register_metrics(registry);
    if (!metrics) {
        return tl::unexpected(metrics.error());
    }
    auto state = std::make_unique<State>(config, std::move(*metrics));

    const std::string& bind = config.http().bind_address();
    const auto colon = bind.rfind(':');
    if (colon == std::string::npos) {
        return fail(ErrorCode::kInvalidArgument, "http.bind_address \"{}\": write host:port", bind);
    }
    beast::error_code ec;
    const auto address = net::ip::make_address(bind.substr(0, colon), ec);
    if (ec) {
        return fail(ErrorCode::kInvalidArgument, "http.bind_address \"{}\": {}", bind,
                    ec.message());
    }
    const auto port = static_cast<std::uint16_t>(std::stoul(bind.substr(colon + 1)));
    const tcp::endpoint endpoint(address, port);
    state->acceptor.open(endpoint.protocol(), ec);
    if (!ec) {
        state->acceptor.set_option(net::socket_base::reuse_address(true), ec);
    }
    if (!ec) {
        state->acceptor.bind(endpoint, ec);
    }
    if (!ec) {
        state->acceptor.listen(net::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        return fail(ErrorCode::kIo, "http.bind_address \"{}\": {}", bind, ec.message());
    }

    auto security = transport::SocketSecurity::load(config.security());
    if (!security) {
        return tl::unexpected(security.error());
    }
    state->security = std::move(*security);
    if (auto started = state->security.start(state->context); !started) {
        return tl::unexpected(started.error().with_context("security"));
    }
    const auto open_sub = [&](const cfg::Socket& socket, const char* key) -> Result<zmq::socket_t> {
        transport::SocketOptions options;
        options.receive_hwm = static_cast<int>(socket.receive_hwm_messages());
        auto opened =
            state->security.open(state->context, zmq::socket_type::sub, socket.address(), options);
        if (!opened) {
            return tl::unexpected(opened.error().with_context(key));
        }
        return std::move(*opened);
    };
    auto results = open_sub(config.endpoints().results_in(), "endpoints.results_in");
    if (!results) {
        return tl::unexpected(results.error());
    }
    auto control = open_sub(config.endpoints().control_in(), "endpoints.control_in");
    if (!control) {
        return tl::unexpected(control.error());
    }
    state->results = std::move(*results);
    state->control = std::move(*control);
    return GatewayService(std::move(state));
}

std::uint16_t GatewayService::http_port() const { return state_->acceptor.local_endpoint().port(); }

Result<void> GatewayService::run(const runtime::StopSource& stop) {
    State& s = *state_;
    const tcp::endpoint bound = s.acceptor.local_endpoint();
    spdlog::info("gateway ready http={}:{} static_dir={} archive_dir={}",
                 bound.address().to_string(), bound.port(), s.config.http().static_dir(),
                 s.config.archive_dir());
    s.accept_next();
    runtime::StageThread feed("feed", stop, [&s](const runtime::StopToken& token) {
        Result<void> result = s.read_feeds(token);
        s.io.stop();  // stop, or a failed feed, ends the HTTP side too
        return result;
    });
    std::optional<runtime::StageThread> scraper;
    if (!s.config.metrics_targets_file().empty()) {
        scraper.emplace("scrape", stop,
                        [&s](const runtime::StopToken& token) { return s.scrape_targets(token); });
    }
    s.io.run();
    if (scraper) {
        stop.request_stop();  // the HTTP side ended (a failed feed): the scraper ends too
        (void)scraper->join();
    }
    return feed.join();
}

Result<void> run(const cfg::GatewayConfig& config, runtime::ServiceContext& context) {
    auto service = GatewayService::create(config, context.metrics);
    if (!service) {
        return tl::unexpected(service.error());
    }
    return service->run(context.stop);
}

}  // namespace anisoflow::gateway
