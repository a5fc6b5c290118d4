#include "run_command.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>
#include <zmq.hpp>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/core/clock.hpp"
#include "anisoflow/core/result.hpp"
#include "anisoflow/io/poni_file.hpp"
#include "anisoflow/runtime/config_loader.hpp"
#include "anisoflow/transport/experiment.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/socket.hpp"

#include "command_support.hpp"

namespace anisoflow::app {

namespace {

namespace pb = ::anisoflow::stream::v1;
using std::chrono::milliseconds;

Result<pb::FrameKind> parse_kind(const std::string& kind) {
    if (kind == "data") {
        return pb::FRAME_KIND_DATA;
    }
    if (kind == "dark") {
        return pb::FRAME_KIND_DARK;
    }
    if (kind == "flat") {
        return pb::FRAME_KIND_FLAT;
    }
    if (kind == "background") {
        return pb::FRAME_KIND_BACKGROUND;
    }
    return fail(ErrorCode::kInvalidArgument, "--kind \"{}\": data, dark, flat or background", kind);
}

Result<pb::SetState> parse_state(const RunOptions& o) {
    auto kind = parse_kind(o.kind);
    if (!kind) {
        return tl::unexpected(kind.error());
    }
    pb::SetState state;
    state.set_kind(*kind);
    if (o.orientation == "P" || o.orientation == "p") {
        state.set_orientation(pb::ORIENTATION_P);
    } else if (o.orientation == "N" || o.orientation == "n") {
        state.set_orientation(pb::ORIENTATION_N);
    } else if (!o.orientation.empty()) {
        return fail(ErrorCode::kInvalidArgument, "--orientation \"{}\": P or N", o.orientation);
    } else if (*kind == pb::FRAME_KIND_DATA) {
        return fail(ErrorCode::kInvalidArgument, "--kind data needs --orientation P or N");
    }
    state.set_note(o.note);
    return state;
}

// The StartRun of `run start`: the TOML's ExperimentConfig, the PONI's geometry over it.
Result<pb::StartRun> start_request(const RunOptions& o) {
    pb::StartRun start;
    start.set_run_id(o.run_id);
    if (auto loaded = runtime::merge_toml_file(*start.mutable_config(), o.config_path); !loaded) {
        return tl::unexpected(loaded.error().with_context("--config"));
    }
    if (!o.poni_path.empty()) {
        auto poni = io::read_poni_file(o.poni_path);
        if (!poni) {
            return tl::unexpected(poni.error().with_context("--poni"));
        }
        *start.mutable_config()->mutable_geometry() = transport::to_message(poni->geometry);
    }
    if (!o.kind.empty()) {
        auto state = parse_state(o);
        if (!state) {
            return tl::unexpected(state.error());
        }
        *start.mutable_initial_state() = *state;
    }
    return start;
}

// Sends one request and waits for its reply; a fresh REQ socket each time, so a lost reply
// never leaves a socket stuck in its send/receive lock-step.
Result<pb::RunControlReply> exchange(const RunOptions& o, const pb::RunControlRequest& request) {
    auto security = load_curve(o.curve);
    if (!security) {
        return tl::unexpected(security.error());
    }
    zmq::context_t context;
    transport::SocketOptions options;
    options.linger = milliseconds{0};
    auto socket = security->open(context, zmq::socket_type::req, ">" + o.address, options);
    if (!socket) {
        return tl::unexpected(socket.error().with_context("--address"));
    }
    auto encoded = transport::encode_control(request);
    if (!encoded) {
        return tl::unexpected(encoded.error());
    }
    const milliseconds timeout(o.timeout_ms);
    auto sent = transport::send(*socket, *encoded, timeout);
    if (!sent) {
        return tl::unexpected(sent.error());
    }
    if (!*sent) {
        return fail(ErrorCode::kIo, "{}: request not taken within {} ms", o.address, o.timeout_ms);
    }
    auto received = transport::receive(*socket, timeout);
    if (!received) {
        return tl::unexpected(received.error());
    }
    if (!*received) {
        // A CURVE handshake ingest refused looks the same from here: nothing comes back.
        return fail(ErrorCode::kIo,
                    "{}: no reply within {} ms (is ingest running with endpoints.run_control? "
                    "with CURVE on, does ingest trust this client's certificate, "
                    "--curve-certificate?)",
                    o.address, o.timeout_ms);
    }
    auto decoded = transport::decode(std::move(**received));
    if (!decoded) {
        return fail(ErrorCode::kCorrupt, "{}: reply rejected: {}", o.address,
                    decoded.error().error.message);
    }
    auto* reply = std::get_if<transport::RunControlReplyMessage>(&*decoded);
    if (reply == nullptr) {
        return fail(ErrorCode::kCorrupt, "{}: expected a RunControlReply, got a {}", o.address,
                    transport::message_type_name(*decoded));
    }
    return std::move(reply->reply);
}

// "data P", "data N", "dark", ...: the state as the operator says it.
std::string kind_text(pb::FrameKind kind, pb::Orientation orientation) {
    const std::string_view name = transport::frame_kind_name(kind);
    return kind == pb::FRAME_KIND_DATA
               ? fmt::format("{} {}", name, transport::orientation_name(orientation))
               : std::string(name);
}

std::string_view change_text(pb::StateChangeType type) {
    switch (type) {
        case pb::STATE_CHANGE_TYPE_RUN_STARTED:
            return "run started";
        case pb::STATE_CHANGE_TYPE_STATE_SET:
            return "state set";
        case pb::STATE_CHANGE_TYPE_ACQUISITION_OPENED:
            return "series opened";
        case pb::STATE_CHANGE_TYPE_ACQUISITION_CLOSED:
            return "series closed";
        case pb::STATE_CHANGE_TYPE_RUN_ENDED:
            return "run ended";
        default:
            return "?";
    }
}

void print_status(const pb::RunStatus& s, bool with_log) {
    if (s.run_id().empty()) {
        std::printf("no run open (frames refused since ingest started: %llu)\n",
                    static_cast<unsigned long long>(s.frames_refused()));
        return;
    }
    const pb::FrameCounts& f = s.frames_taken();
    std::printf(
        "run %s open: frames now are %s%s\n", s.run_id().c_str(),
        kind_text(s.kind(), s.orientation()).c_str(),
        s.kind() == pb::FRAME_KIND_UNSPECIFIED ? " (refused until `anisoflow run next`)" : "");
    std::printf(
        "  taken: data P %llu, data N %llu, dark %llu, flat %llu, background %llu; "
        "detector series streaming: %s\n",
        static_cast<unsigned long long>(f.data_p()), static_cast<unsigned long long>(f.data_n()),
        static_cast<unsigned long long>(f.dark()), static_cast<unsigned long long>(f.flat()),
        static_cast<unsigned long long>(f.background()), s.acquisition_open() ? "yes" : "no");
    if (!with_log) {
        return;
    }
    for (const pb::StateChange& c : s.history()) {
        std::printf("  #%u %s %-13s from frame %llu: %s%s%s\n", c.index(),
                    iso8601_utc(c.changed_unix_ns(), false).c_str(),
                    std::string(change_text(c.type())).c_str(),
                    static_cast<unsigned long long>(c.next_sequence()),
                    kind_text(c.kind(), c.orientation()).c_str(), c.note().empty() ? "" : "  ",
                    c.note().c_str());
    }
}

}  // namespace

CLI::App* add_run_command(CLI::App& app, RunOptions& o) {
    CLI::App* run = app.add_subcommand(
        "run",
        "run control: open a run, say what the frames are, end it, ask where it stands "
        "(ingest's endpoints.run_control; docs/run-control.md)");
    run->require_subcommand(1);
    run->add_option("--address", o.address, "ingest's run control endpoint")->capture_default_str();
    run->add_option("--timeout-ms", o.timeout_ms, "wait this long for the reply, ms")
        ->capture_default_str();
    add_curve_options(*run, o.curve);
    run->add_flag("--json", o.json, "print the reply as JSON (RunControlReply)");

    CLI::App* start = run->add_subcommand("start", "open a run with its configuration");
    start->add_option("--config", o.config_path, "TOML of the run's ExperimentConfig")
        ->required()
        ->check(CLI::ExistingFile);
    start->add_option("--poni", o.poni_path, "PONI calibration: the run's geometry")
        ->check(CLI::ExistingFile);
    start->add_option("--run-id", o.run_id, "the run's name (default: run-<UTC time>)");
    start->add_option("--kind", o.kind, "state of the first frames: data, dark, flat, background");
    start->add_option("--orientation", o.orientation, "P or N, with --kind data");
    start->add_option("--note", o.note, "for the run log");

    CLI::App* next = run->add_subcommand("next", "set what the next frames are");
    next->add_option("--kind", o.kind, "data, dark, flat or background")->required();
    next->add_option("--orientation", o.orientation, "P or N, with --kind data");
    next->add_option("--note", o.note, "for the run log, e.g. \"sample turned to N\"");

    CLI::App* stop = run->add_subcommand("stop", "end the run; frames taken still get analysed");
    stop->add_flag("--abort", o.abort, "end it as aborted");
    stop->add_option("--detail", o.detail, "why, for the log and RunEnd");

    run->add_subcommand("status", "where the run stands, with its log");
    return run;
}

int run_run(const CLI::App& command, const RunOptions& o) {
    pb::RunControlRequest request;
    bool with_log = false;
    if (command.got_subcommand("start")) {
        auto start = start_request(o);
        if (!start) {
            std::fprintf(stderr, "anisoflow run start: %s\n", start.error().message.c_str());
            return 2;
        }
        *request.mutable_start() = std::move(*start);
    } else if (command.got_subcommand("next")) {
        auto state = parse_state(o);
        if (!state) {
            std::fprintf(stderr, "anisoflow run next: %s\n", state.error().message.c_str());
            return 2;
        }
        *request.mutable_next() = std::move(*state);
    } else if (command.got_subcommand("stop")) {
        pb::StopRun& stop = *request.mutable_stop();
        stop.set_reason(o.abort ? pb::RUN_END_REASON_ABORTED : pb::RUN_END_REASON_COMPLETED);
        stop.set_detail(o.detail);
    } else {
        request.mutable_status();
        with_log = true;
    }
    auto reply = exchange(o, request);
    if (!reply) {
        std::fprintf(stderr, "anisoflow run: %s\n", reply.error().message.c_str());
        return 1;
    }
    if (o.json) {
        std::string json;
        google::protobuf::util::JsonPrintOptions options;
        options.add_whitespace = true;
        options.preserve_proto_field_names = true;
        (void)google::protobuf::util::MessageToJsonString(*reply, &json, options);
        std::printf("%s", json.c_str());
    } else {
        print_status(reply->status(), with_log);
    }
    if (!reply->ok()) {
        std::fprintf(stderr, "anisoflow run: refused: %s\n", reply->error().c_str());
        return 1;
    }
    return 0;
}

}  // namespace anisoflow::app
