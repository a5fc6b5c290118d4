// Every message kind through real ZeroMQ sockets (inproc and tcp on an ephemeral port, PUSH/PULL
// and PUB/SUB), backpressure, timeouts, and large frames that travel without a copy.

#include "anisoflow/transport/socket.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <zmq.hpp>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/payload.hpp"

#include "sample_messages.hpp"

namespace anisoflow::transport {
namespace {

using google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

// Generous: only reached when something is broken; a passing test never waits this long.
constexpr auto kPatience = 5s;

bool same_bytes(const zmq::message_t& a, const zmq::message_t& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

Multipart copy_of(const Multipart& parts) {
    Multipart out;
    for (const auto& part : parts) {
        out.emplace_back(part.data(), part.size());
    }
    return out;
}

// A connected sender/receiver pair. PUB/SUB uses XPUB on the sending side: it sends like PUB
// and lets the test wait for the subscription, so no message is lost to the slow-joiner race.
struct Link {
    zmq::context_t context;
    zmq::socket_t sender;
    zmq::socket_t receiver;
};

enum class Pattern { kPushPull, kPubSub };

struct LinkCase {
    const char* name;
    Pattern pattern;
    const char* bind_address;  // the receiver binds for PUSH/PULL, the sender for PUB/SUB
};

std::unique_ptr<Link> connect_link(const LinkCase& link_case) {
    auto link = std::make_unique<Link>();
    const bool push_pull = link_case.pattern == Pattern::kPushPull;
    const auto bind_type = push_pull ? zmq::socket_type::pull : zmq::socket_type::xpub;
    const auto connect_type = push_pull ? zmq::socket_type::push : zmq::socket_type::sub;
    auto bound = open_socket(link->context, bind_type, link_case.bind_address);
    EXPECT_TRUE(bound.has_value()) << bound.error().message;
    const std::string endpoint = bound->get(zmq::sockopt::last_endpoint);
    auto connected = open_socket(link->context, connect_type, ">" + endpoint);
    EXPECT_TRUE(connected.has_value()) << connected.error().message;
    if (push_pull) {
        link->receiver = std::move(*bound);
        link->sender = std::move(*connected);
    } else {
        link->sender = std::move(*bound);
        link->receiver = std::move(*connected);
        auto subscription = receive(link->sender, kPatience);  // XPUB: "\x01" + topic
        EXPECT_TRUE(subscription.has_value() && subscription->has_value());
    }
    return link;
}

class RoundTrip : public ::testing::TestWithParam<LinkCase> {};

TEST_P(RoundTrip, EveryMessageKindArrivesByteIdentical) {
    const auto link = connect_link(GetParam());

    const pb::ReducedFrame reduced = sample::reduced_header(1000, 72);
    const pb::AnalysisResult result = sample::result_header(1000, 2000);
    std::vector<Result<Multipart>> encoded;
    encoded.push_back(encode_control(sample::run_start()));
    encoded.push_back(
        encode_frame(sample::frame_header(256, 192, pb::PIXEL_DTYPE_UINT16),
                     make_payload(sample::values<std::uint16_t>(std::size_t{256} * 192, 5))));
    encoded.push_back(encode_reduced(reduced, sample::cake_parts(reduced)));
    encoded.push_back(encode_result(result, sample::curve_parts(result)));
    encoded.push_back(encode_control(sample::run_end()));
    encoded.push_back(encode_control(sample::heartbeat()));
    std::vector<Multipart> sent;
    for (auto& message : encoded) {
        ASSERT_TRUE(message.has_value()) << message.error().message;
        sent.push_back(std::move(*message));
    }
    for (const auto& message : sent) {
        Multipart outgoing = copy_of(message);
        auto accepted = send(link->sender, outgoing, kPatience);
        ASSERT_TRUE(accepted.has_value()) << accepted.error().message;
        ASSERT_TRUE(*accepted) << "the peer did not accept within " << kPatience.count() << " s";
        EXPECT_TRUE(outgoing.empty());
    }

    const char* const expected_types[] = {"RunStart",       "FrameHeader", "ReducedFrame",
                                          "AnalysisResult", "RunEnd",      "Heartbeat"};
    for (std::size_t m = 0; m < sent.size(); ++m) {
        auto received = receive(link->receiver, kPatience);
        ASSERT_TRUE(received.has_value()) << received.error().message;
        ASSERT_TRUE(received->has_value()) << "message " << m << " did not arrive";
        Multipart parts = std::move(**received);
        ASSERT_EQ(parts.size(), sent[m].size());
        for (std::size_t p = 0; p < parts.size(); ++p) {
            EXPECT_TRUE(same_bytes(parts[p], sent[m][p])) << "message " << m << " part " << p;
        }
        auto decoded = decode(std::move(parts));
        ASSERT_TRUE(decoded.has_value()) << decoded.error().error.message;
        EXPECT_EQ(message_type_name(*decoded), expected_types[m]);
    }

    // The typed views carry what was sent, field by field.
    auto start = decode(copy_of(sent[0]));
    ASSERT_TRUE(start.has_value());
    EXPECT_TRUE(
        MessageDifferencer::Equals(std::get<RunStartMessage>(*start).start, sample::run_start()));
    auto cake = decode(copy_of(sent[2]));
    ASSERT_TRUE(cake.has_value());
    const auto& cake_message = std::get<ReducedMessage>(*cake);
    EXPECT_TRUE(MessageDifferencer::Equals(cake_message.header, reduced));
    ASSERT_EQ(cake_message.parts.size(), 3U);
    EXPECT_EQ(copy_values<double>(cake_message.parts[1]), sample::values<double>(72000, 101));
    auto summary = decode(copy_of(sent[3]));
    ASSERT_TRUE(summary.has_value());
    const auto& result_message = std::get<ResultMessage>(*summary);
    EXPECT_TRUE(MessageDifferencer::Equals(result_message.header, result));
    ASSERT_TRUE(result_message.header.has_r_c_angstrom());
    EXPECT_EQ(result_message.header.r_c_angstrom(), 7.5);
    EXPECT_EQ(copy_values<double>(result_message.curves[5]), sample::values<double>(6000, 205));
}

INSTANTIATE_TEST_SUITE_P(
    Transport, RoundTrip,
    ::testing::Values(LinkCase{"InprocPushPull", Pattern::kPushPull, "@inproc://round-trip"},
                      LinkCase{"TcpPushPull", Pattern::kPushPull, "@tcp://127.0.0.1:*"},
                      LinkCase{"InprocPubSub", Pattern::kPubSub, "@inproc://round-trip"},
                      LinkCase{"TcpPubSub", Pattern::kPubSub, "@tcp://127.0.0.1:*"}),
    [](const ::testing::TestParamInfo<LinkCase>& param_info) {
        return std::string(param_info.param.name);
    });

TEST(LargeFrame, TravelsOutsideProtobufWithoutACopy) {
    constexpr std::uint32_t kSide = 2048;
    // The envelope is a header: well under a kilobyte even with long run ids.
    constexpr std::size_t kMaxHeaderBytes = 512;
    std::vector<std::uint32_t> pixels =
        sample::values<std::uint32_t>(std::size_t{kSide} * kSide, 11);
    const std::vector<std::uint32_t> expected = pixels;
    const void* const buffer = pixels.data();

    auto parts = encode_frame(sample::frame_header(kSide, kSide, pb::PIXEL_DTYPE_UINT32),
                              make_payload(std::move(pixels)));
    ASSERT_TRUE(parts.has_value()) << parts.error().message;
    ASSERT_EQ(parts->size(), 2U);
    EXPECT_LT((*parts)[0].size(), kMaxHeaderBytes);
    EXPECT_EQ((*parts)[1].size(), std::size_t{kSide} * kSide * 4);
    EXPECT_EQ((*parts)[1].data(), buffer) << "encode copied the pixels";

    // inproc hands ZeroMQ's message (and so our buffer) to the receiver as it is.
    const auto link = connect_link({"inproc", Pattern::kPushPull, "@inproc://large"});
    auto accepted = send(link->sender, *parts, kPatience);
    ASSERT_TRUE(accepted.has_value() && *accepted);
    auto received = receive(link->receiver, kPatience);
    ASSERT_TRUE(received.has_value() && received->has_value());
    auto decoded = decode(std::move(**received));
    ASSERT_TRUE(decoded.has_value()) << decoded.error().error.message;
    const auto& frame = std::get<FrameMessage>(*decoded);
    EXPECT_EQ(frame.payload.data(), buffer) << "the pixels were copied on the way";
    EXPECT_EQ(copy_values<std::uint32_t>(frame.payload), expected);

    // Over TCP the bytes are copied by the kernel, but still not through Protobuf.
    const auto tcp = connect_link({"tcp", Pattern::kPushPull, "@tcp://127.0.0.1:*"});
    auto again = encode_frame(sample::frame_header(kSide, kSide, pb::PIXEL_DTYPE_UINT32),
                              make_payload(std::vector<std::uint32_t>(expected)));
    ASSERT_TRUE(again.has_value());
    const std::size_t header_bytes = (*again)[0].size();
    accepted = send(tcp->sender, *again, kPatience);
    ASSERT_TRUE(accepted.has_value() && *accepted);
    received = receive(tcp->receiver, kPatience);
    ASSERT_TRUE(received.has_value() && received->has_value());
    ASSERT_EQ((*received)->size(), 2U);
    EXPECT_EQ((**received)[0].size(), header_bytes);
    EXPECT_EQ(copy_values<std::uint32_t>((**received)[1]), expected);
}

TEST(SharedPayload, OwnerIsReleasedOnceZeroMqIsDone) {
    auto owner = std::make_shared<std::vector<double>>(sample::values<double>(4096, 3));
    const std::span<const std::byte> bytes = std::as_bytes(std::span<const double>(*owner));
    {
        zmq::message_t part = make_shared_payload(owner, bytes);
        EXPECT_EQ(part.data(), static_cast<const void*>(owner->data()));
        EXPECT_EQ(owner.use_count(), 2);
        const auto link = connect_link({"inproc", Pattern::kPushPull, "@inproc://shared"});
        auto parts =
            encode_frame(sample::frame_header(64, 64, pb::PIXEL_DTYPE_FLOAT64), std::move(part));
        ASSERT_TRUE(parts.has_value()) << parts.error().message;
        ASSERT_TRUE(*send(link->sender, *parts, kPatience));
        auto received = receive(link->receiver, kPatience);
        ASSERT_TRUE(received.has_value() && received->has_value());
        EXPECT_EQ(owner.use_count(), 2) << "released while the receiver still holds the bytes";
    }
    EXPECT_EQ(owner.use_count(), 1);
}

TEST(TrySend, ReportsAFullPeerAndKeepsTheMessage) {
    zmq::context_t context;
    SocketOptions tight;
    tight.send_hwm = 1;
    tight.receive_hwm = 1;
    auto pull = open_socket(context, zmq::socket_type::pull, "@inproc://backpressure", tight);
    ASSERT_TRUE(pull.has_value()) << pull.error().message;
    auto push = open_socket(context, zmq::socket_type::push, ">inproc://backpressure", tight);
    ASSERT_TRUE(push.has_value()) << push.error().message;

    // Nobody reads: the queues fill after a few messages (inproc adds both high-water marks).
    constexpr int kMaxAttempts = 100;
    int accepted = 0;
    Multipart parts;
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
        auto encoded = encode_control(sample::heartbeat());
        ASSERT_TRUE(encoded.has_value());
        parts = std::move(*encoded);
        auto sent = try_send(*push, parts);
        ASSERT_TRUE(sent.has_value()) << sent.error().message;
        if (!*sent) {
            break;
        }
        ++accepted;
    }
    EXPECT_GE(accepted, 1);
    EXPECT_LT(accepted, kMaxAttempts) << "try_send never reported a full peer";
    ASSERT_EQ(parts.size(), 1U) << "a refused message must be left intact";
    EXPECT_TRUE(decode(copy_of(parts)).has_value());

    // A blocking send with a short timeout gives up; once the reader drains, it goes through.
    auto timed_out = send(*push, parts, 50ms);
    ASSERT_TRUE(timed_out.has_value());
    EXPECT_FALSE(*timed_out);
    for (int i = 0; i < accepted; ++i) {
        auto received = receive(*pull, kPatience);
        ASSERT_TRUE(received.has_value() && received->has_value());
    }
    auto later = send(*push, parts, kPatience);
    ASSERT_TRUE(later.has_value());
    EXPECT_TRUE(*later);
    EXPECT_TRUE(parts.empty());
}

TEST(TrySend, ReportsFalseWithoutAnyPeer) {
    zmq::context_t context;
    auto push = open_socket(context, zmq::socket_type::push, "@inproc://nobody");
    ASSERT_TRUE(push.has_value());
    auto parts = encode_control(sample::heartbeat());
    ASSERT_TRUE(parts.has_value());
    auto sent = try_send(*push, *parts);
    ASSERT_TRUE(sent.has_value());
    EXPECT_FALSE(*sent);
    EXPECT_EQ(parts->size(), 1U);
}

TEST(Receive, ReturnsNothingAfterItsTimeout) {
    zmq::context_t context;
    auto pull = open_socket(context, zmq::socket_type::pull, "@inproc://silent");
    ASSERT_TRUE(pull.has_value());
    constexpr auto kTimeout = 50ms;
    const auto start = std::chrono::steady_clock::now();
    auto received = receive(*pull, kTimeout);
    const auto waited = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(received.has_value()) << received.error().message;
    EXPECT_FALSE(received->has_value());
    // ZeroMQ's poll counts whole milliseconds on a coarse clock; allow it one tick early.
    EXPECT_GE(waited, kTimeout - 2ms);
}

TEST(BindOrConnect, ReportsTheChosenPortAndNamesBadAddresses) {
    zmq::context_t context;
    zmq::socket_t socket(context, zmq::socket_type::pull);
    auto bound = bind_or_connect(socket, "@tcp://127.0.0.1:*");
    ASSERT_TRUE(bound.has_value()) << bound.error().message;
    EXPECT_THAT(*bound, ::testing::MatchesRegex("tcp://127\\.0\\.0\\.1:[0-9]+"));
    EXPECT_THAT(*bound, ::testing::Not(HasSubstr(":*")));

    auto no_prefix = bind_or_connect(socket, "tcp://127.0.0.1:5555");
    ASSERT_FALSE(no_prefix.has_value());
    EXPECT_EQ(no_prefix.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(no_prefix.error().message, HasSubstr("'@' (bind) or '>' (connect)"));

    auto bad_transport = bind_or_connect(socket, "@nonsense://here");
    ASSERT_FALSE(bad_transport.has_value());
    EXPECT_EQ(bad_transport.error().code, ErrorCode::kIo);
    EXPECT_THAT(bad_transport.error().message, HasSubstr("bind 'nonsense://here'"));
}

}  // namespace
}  // namespace anisoflow::transport
