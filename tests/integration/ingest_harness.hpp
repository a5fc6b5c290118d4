#pragma once
// What the ingest integration tests share: ingest on a thread of the test, a fake reduce worker
// that takes every frame and reads the control PUB, a fake DECTRIS detector (a bound PUSH), and
// the configurations and series they use. Real tcp sockets on loopback throughout.

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/dectris/decode.hpp"
#include "anisoflow/runtime/config_loader.hpp"
#include "anisoflow/testing/test_paths.hpp"
#include "anisoflow/transport/dispatch.hpp"
#include "anisoflow/transport/payload.hpp"
#include "anisoflow/transport/socket.hpp"
#include "anisoflow/transport/socket_security.hpp"

#include "dectris_emulator.hpp"
#include "ingest_service.hpp"

namespace anisoflow::ingest::harness {

namespace pb = ::anisoflow::stream::v1;
namespace emu = ::anisoflow::dectris::emulator;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Only reached when something is broken; a passing test never waits this long.
inline constexpr auto kPatience = 20s;

inline cfg::IngestConfig base_config() {
    cfg::IngestConfig config;
    EXPECT_TRUE(runtime::merge_defaults(config));
    config.mutable_endpoints()->mutable_frames_out()->set_address("@tcp://127.0.0.1:*");
    config.mutable_endpoints()->mutable_control_out()->set_address("@tcp://127.0.0.1:*");
    config.set_heartbeat_interval_ms(100);
    config.set_run_start_republish_interval_ms(100);
    config.set_queue_capacity_frames(4);
    config.set_drain_timeout_ms(5000);
    config.mutable_metrics()->set_enabled(false);
    return config;
}

// The service on its own thread, stopped and joined on destruction.
class RunningIngest {
  public:
    explicit RunningIngest(const cfg::IngestConfig& config) {
        auto stop = runtime::StopSource::create();
        EXPECT_TRUE(stop);
        stop_.emplace(*stop);
        auto service = IngestService::create(config, registry_);
        EXPECT_TRUE(service) << service.error().message;
        service_.emplace(std::move(*service));
        thread_ = std::thread([this] { result_ = service_->run(*stop_); });
    }
    ~RunningIngest() {
        stop_->request_stop();
        thread_.join();
        EXPECT_TRUE(result_) << result_.error().message;
    }
    RunningIngest(const RunningIngest&) = delete;
    RunningIngest& operator=(const RunningIngest&) = delete;

    [[nodiscard]] const IngestEndpoints& endpoints() const { return service_->endpoints(); }
    [[nodiscard]] std::string metrics() const { return registry_.serialize(); }

  private:
    metrics::Registry registry_;
    std::optional<runtime::StopSource> stop_;
    std::optional<IngestService> service_;
    std::thread thread_;
    Result<void> result_;
};

struct ReceivedFrame {
    pb::FrameHeader header;
    std::vector<std::byte> payload;
};

// A reduce worker that acknowledges every data frame, and a control subscriber.
struct FakeReducer {
    // `security`: CURVE keys for both sockets (docs/security.md); plain by default.
    FakeReducer(zmq::context_t& context, const IngestEndpoints& endpoints,
                const transport::SocketSecurity& security = {},
                const std::string& instance = "reduce-test") {
        transport::WorkerLinkOptions options;
        auto keys = security.keys_for(">" + endpoints.frames);
        EXPECT_TRUE(keys) << keys.error().message;
        options.curve = keys ? *keys : std::nullopt;
        auto link =
            transport::WorkerLink::open(context, ">" + endpoints.frames, instance, 3, options);
        EXPECT_TRUE(link) << link.error().message;
        link_.emplace(std::move(*link));
        auto sub = security.open(context, zmq::socket_type::sub, ">" + endpoints.control);
        EXPECT_TRUE(sub) << sub.error().message;
        control_ = std::move(*sub);
    }

    // Serves frames and reads control until a RunEnd of `run_id` (or any run, if empty) came.
    std::optional<pb::RunEnd> until_run_end(const std::string& run_id = "") {
        const auto deadline = Clock::now() + kPatience;
        std::size_t seen = ends.size();
        while (Clock::now() < deadline) {
            serve(10ms);
            read_control();
            for (; seen < ends.size(); ++seen) {
                if (run_id.empty() || ends[seen].run_id() == run_id) {
                    return ends[seen];
                }
            }
        }
        return std::nullopt;
    }

    // Serves frames until `n` have come; false if they did not.
    bool until_frames(std::size_t n) {
        const auto deadline = Clock::now() + kPatience;
        while (frames.size() < n && Clock::now() < deadline) {
            serve(10ms);
        }
        return frames.size() >= n;
    }

    // Serves frames and reads control until `n` RunEvents came; false if they did not.
    bool until_events(std::size_t n) {
        const auto deadline = Clock::now() + kPatience;
        while (events.size() < n && Clock::now() < deadline) {
            serve(10ms);
            read_control();
        }
        return events.size() >= n;
    }

    // Everything waiting on the control SUB.
    void read_control() {
        while (true) {
            auto received = transport::receive(control_, 0ms);
            EXPECT_TRUE(received);
            if (!received || !*received) {
                return;
            }
            auto decoded = transport::decode(std::move(**received));
            EXPECT_TRUE(decoded);
            if (!decoded) {
                continue;
            }
            if (auto* start = std::get_if<transport::RunStartMessage>(&*decoded)) {
                control_starts[start->start.run_id()] = start->start;
            } else if (auto* event = std::get_if<transport::RunEventMessage>(&*decoded)) {
                events.push_back(event->event);
            } else if (auto* end = std::get_if<transport::RunEndMessage>(&*decoded)) {
                ends.push_back(end->end);
            }
        }
    }

    void serve(std::chrono::milliseconds timeout) {
        auto received = link_->receive(timeout);
        ASSERT_TRUE(received) << received.error().message;
        if (!*received) {
            return;
        }
        ASSERT_TRUE(**received) << (*received)->error().error.message;
        if (auto* start = std::get_if<transport::RunStartMessage>(&***received)) {
            order.push_back("start:" + start->start.run_id());
            starts[start->start.run_id()] = start->start;
        } else if (auto* frame = std::get_if<transport::FrameMessage>(&***received)) {
            order.push_back("frame:" + std::to_string(frame->header.sequence()));
            const auto bytes = transport::bytes_of(frame->payload);
            frames.push_back({frame->header, {bytes.begin(), bytes.end()}});
            // Darks and flats are broadcast without credit; every other kind is acknowledged.
            if (frame->header.kind() != pb::FRAME_KIND_DARK &&
                frame->header.kind() != pb::FRAME_KIND_FLAT) {
                // Reduced, then analyze's receipt relayed: this fake stands in for both.
                ASSERT_TRUE(link_->ack(frame->header.run_id(), frame->header.sequence(),
                                       pb::ACK_STATUS_REDUCED));
                ASSERT_TRUE(link_->ack(frame->header.run_id(), frame->header.sequence(),
                                       pb::ACK_STATUS_RECEIVED));
            }
        }
    }

    std::optional<transport::WorkerLink> link_;
    zmq::socket_t control_;
    std::vector<std::string> order;
    std::map<std::string, pb::RunStart> starts;
    std::map<std::string, pb::RunStart> control_starts;
    std::vector<ReceivedFrame> frames;
    std::vector<pb::RunEnd> ends;
    std::vector<pb::RunEvent> events;  // run control's state changes seen on the control PUB
};

// A bound PUSH standing in for the detector's stream socket.
struct FakeDetector {
    explicit FakeDetector(zmq::context_t& context) {
        transport::SocketOptions options;
        options.linger = 1000ms;
        auto push =
            transport::open_socket(context, zmq::socket_type::push, "@tcp://127.0.0.1:*", options);
        EXPECT_TRUE(push) << push.error().message;
        socket = std::move(*push);
        endpoint = socket.get(zmq::sockopt::last_endpoint);
    }
    void send(const emu::Multipart& message) {
        transport::Multipart parts;
        for (const auto& part : message) {
            parts.emplace_back(part.data(), part.size());
        }
        auto sent = transport::send(socket, parts, kPatience);
        ASSERT_TRUE(sent && *sent);
    }
    zmq::socket_t socket;
    std::string endpoint;
};

inline cfg::IngestConfig dectris_config(const std::string& endpoint, dectris::Protocol protocol) {
    cfg::IngestConfig config = base_config();
    cfg::IngestSource& source = *config.mutable_source();
    source.set_kind(cfg::SOURCE_KIND_DECTRIS_STREAM);
    source.set_dectris_address(">" + endpoint);
    source.set_dectris_protocol(protocol == dectris::Protocol::kStreamV1
                                    ? cfg::DECTRIS_PROTOCOL_STREAM_V1
                                    : cfg::DECTRIS_PROTOCOL_STREAM_V2);
    // The run description as a site writes it (docs/configuration.md, source.dectris_run_file).
    const auto file = testing::scratch_dir() / "dectris_run.toml";
    std::ofstream(file) << "dark_images = 1\nflat_images = 1\ndata_p_images = 2\n"
                           "run_id_prefix = \"test-\"\n[experiment]\ncomposition = \"Cu50Zr50\"\n"
                           "mode = \"pn\"\n";
    source.set_dectris_run_file(file.string());
    return config;
}

inline emu::SeriesSettings tiny_series() {
    emu::SeriesSettings settings;
    settings.width_px = 64;
    settings.height_px = 64;
    settings.number_of_images = 6;  // dark, flat, P, P, N, N
    return settings;
}

// The messages of a series, as the detector would send them, whatever the protocol.
inline std::vector<emu::Multipart> series_messages(dectris::Protocol protocol,
                                                   const emu::SeriesSettings& settings,
                                                   emu::WireEncoding encoding) {
    std::vector<emu::Multipart> messages;
    if (protocol == dectris::Protocol::kStreamV1) {
        return emu::v1_series(settings, encoding);
    }
    for (auto& part : emu::v2_series(settings, encoding)) {
        messages.push_back({std::move(part)});
    }
    return messages;
}

// The payload bytes of image `n` as the decoder sees them (what ingest must forward untouched).
inline std::vector<std::byte> sent_payload(dectris::Protocol protocol,
                                           const emu::Multipart& message) {
    std::vector<dectris::ByteSpan> spans;
    for (const auto& part : message) {
        spans.emplace_back(part);
    }
    auto decoded = protocol == dectris::Protocol::kStreamV1 ? dectris::decode_v1(spans)
                                                            : dectris::decode_v2(spans.front());
    EXPECT_TRUE(decoded);
    return std::get<dectris::Image>(*decoded).channels.front().payload;
}

}  // namespace anisoflow::ingest::harness
