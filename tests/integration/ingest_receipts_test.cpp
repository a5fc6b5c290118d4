// Ingest's side of archive receipts (docs/protocol.md, "Archive receipts"), in process over real
// tcp sockets: the test is the source, a FakeReducer the worker, a PULL archive's raw feed and a
// PUB archive's receipts, whose sessions and ranges are the test's choice.
//  - every raw feed message is kept until a receipt covers it; at max_unreceipted_raw_frames the
//    source is held back;
//  - receipts of a new session make ingest send again, in order, the raw frames kept;
//  - a RunEnd is kept until archive says the run is finished.
// The fault suite (tests/faults, kill-archive) reaches the same code with real processes.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "anisoflow/stream/v1/stream.pb.h"

#include "anisoflow/testing/child_process.hpp"
#include "anisoflow/transport/message.hpp"
#include "anisoflow/transport/socket.hpp"

#include "ingest_harness.hpp"
#include "ingest_service.hpp"
#include "run_messages.hpp"

namespace anisoflow::ingest {
namespace {

using namespace harness;  // NOLINT(google-build-using-namespace): the test's vocabulary
constexpr std::uint32_t kSide = 16;
constexpr std::uint32_t kMaxUnreceipted = 3;

pb::ArchiveReceipts receipts(std::uint64_t session, const std::string& run_id,
                             std::optional<std::pair<std::uint64_t, std::uint64_t>> raw,
                             bool finished = false) {
    pb::ArchiveReceipts out;
    out.set_session(session);
    if (raw || finished) {
        pb::RunReceipt& run = *out.add_runs();
        run.set_run_id(run_id);
        run.set_finished(finished);
        if (raw) {
            pb::SequenceRange& range = *run.add_raw();
            range.set_first(raw->first);
            range.set_last(raw->second);
        }
    }
    return out;
}

class RawFeedWithReceipts {
  public:
    RawFeedWithReceipts() {
        auto pub = transport::open_socket(context_, zmq::socket_type::pub, "@tcp://127.0.0.1:*");
        EXPECT_TRUE(pub) << pub.error().message;
        receipts_ = std::move(*pub);
        config_ = base_config();
        config_.mutable_source()->set_kind(cfg::SOURCE_KIND_ANISOFLOW_STREAM);
        config_.mutable_source()->set_stream_address("@tcp://127.0.0.1:*");
        config_.mutable_endpoints()->mutable_raw_out()->set_address("@tcp://127.0.0.1:*");
        config_.mutable_endpoints()->mutable_receipts_in()->set_address(
            ">" + receipts_.get(zmq::sockopt::last_endpoint));
        config_.set_max_unreceipted_raw_frames(kMaxUnreceipted);
        ingest_.emplace(config_);
        reducer_.emplace(context_, ingest_->endpoints());
        auto raw = transport::open_socket(context_, zmq::socket_type::pull,
                                          ">" + ingest_->endpoints().raw);
        EXPECT_TRUE(raw) << raw.error().message;
        raw_ = std::move(*raw);
        auto source = transport::open_socket(context_, zmq::socket_type::push,
                                             ">" + ingest_->endpoints().source);
        EXPECT_TRUE(source) << source.error().message;
        source_ = std::move(*source);
    }

    void send(transport::Multipart parts) {
        auto sent = transport::send(source_, parts, kPatience);
        ASSERT_TRUE(sent && *sent);
    }

    /// The next message on the raw feed ("RunStart", "frame N", "RunEnd"), serving the worker
    /// and publishing `standing` receipts meanwhile; empty after `patience`.
    std::string next_raw(const pb::ArchiveReceipts& standing,
                         std::chrono::milliseconds patience = kPatience) {
        const auto deadline = Clock::now() + patience;
        while (Clock::now() < deadline) {
            auto parts = transport::encode_control(standing);
            EXPECT_TRUE(parts && transport::try_send(receipts_, *parts));
            reducer_->serve(5ms);
            auto received = transport::receive(raw_, 10ms);
            if (!received || !*received) {
                continue;
            }
            auto decoded = transport::decode(std::move(**received));
            EXPECT_TRUE(decoded);
            if (!decoded) {
                return "undecodable";
            }
            if (const auto* frame = std::get_if<transport::FrameMessage>(&*decoded)) {
                return "frame " + std::to_string(frame->header.sequence());
            }
            return std::string(transport::message_type_name(*decoded));
        }
        return "";
    }

    /// Publishes `standing` until ingest has seen `sessions` archive sessions; false if it did
    /// not (what ingest keeps before the first receipts goes again, so a test starts after).
    bool until_sessions(const pb::ArchiveReceipts& standing, double sessions) {
        const auto deadline = Clock::now() + kPatience;
        while (Clock::now() < deadline) {
            auto parts = transport::encode_control(standing);
            EXPECT_TRUE(parts && transport::try_send(receipts_, *parts));
            if (metric("anisoflow_ingest_archive_sessions_total") >= sessions) {
                return true;
            }
            std::this_thread::sleep_for(10ms);
        }
        return false;
    }

    double metric(const std::string& series) const {
        return testing::metric_value(ingest_->metrics(), series);
    }

  private:
    zmq::context_t context_;
    zmq::socket_t receipts_;
    cfg::IngestConfig config_;
    std::optional<RunningIngest> ingest_;
    std::optional<FakeReducer> reducer_;
    zmq::socket_t raw_;
    zmq::socket_t source_;
};

TEST(IngestReceipts, KeepsRawFramesUntilStoredAndSendsThemAgainToARestartedArchive) {
    RawFeedWithReceipts feed;
    const pb::RunStart start = testing::small_run_start("raw-receipts", kSide);
    const std::string& id = start.run_id();
    constexpr std::uint64_t kOld = 0x1A;
    constexpr std::uint64_t kNew = 0x1B;
    const pb::ArchiveReceipts none = receipts(kOld, id, std::nullopt);

    ASSERT_TRUE(feed.until_sessions(none, 1));
    auto start_parts = transport::encode_control(start);
    ASSERT_TRUE(start_parts);
    feed.send(std::move(*start_parts));
    feed.send(testing::small_run_frame(id, 0, kSide));
    feed.send(testing::small_run_frame(id, 1, kSide));
    EXPECT_EQ(feed.next_raw(none), "RunStart");
    EXPECT_EQ(feed.next_raw(none), "frame 0");
    EXPECT_EQ(feed.next_raw(none), "frame 1");

    // Archive stored the RunStart and frame 0; frame 1 is kept. At the bound (frames 1 .. 3)
    // the source is held back: frames 4 and 5 wait.
    const pb::ArchiveReceipts stored_0 = receipts(kOld, id, std::pair{0, 0});
    for (std::uint64_t s = 2; s < 6; ++s) {
        feed.send(testing::small_run_frame(id, s, kSide));
    }
    EXPECT_EQ(feed.next_raw(stored_0), "frame 2");
    EXPECT_EQ(feed.next_raw(stored_0), "frame 3");
    EXPECT_EQ(feed.next_raw(stored_0, 500ms), "") << "beyond the bound";
    EXPECT_EQ(feed.metric("anisoflow_ingest_raw_unreceipted_frames"), kMaxUnreceipted);

    // A restarted archive: the kept frames go again, in order, before anything new.
    const pb::ArchiveReceipts restarted = receipts(kNew, id, std::nullopt);
    for (const char* expected : {"frame 1", "frame 2", "frame 3"}) {
        EXPECT_EQ(feed.next_raw(restarted), expected);
    }
    EXPECT_EQ(feed.next_raw(restarted, 300ms), "") << "sent again only once";
    EXPECT_EQ(feed.metric("anisoflow_ingest_raw_resent_total"), kMaxUnreceipted);
    EXPECT_EQ(feed.metric("anisoflow_ingest_archive_sessions_total"), 2);

    // Stored: the source goes on, and the run ends.
    const pb::ArchiveReceipts stored_3 = receipts(kNew, id, std::pair{0, 3});
    EXPECT_EQ(feed.next_raw(stored_3), "frame 4");
    EXPECT_EQ(feed.next_raw(stored_3), "frame 5");
    pb::RunEnd end;
    end.set_run_id(id);
    end.set_reason(pb::RUN_END_REASON_COMPLETED);
    auto end_parts = transport::encode_control(end);
    ASSERT_TRUE(end_parts);
    feed.send(std::move(*end_parts));
    EXPECT_EQ(feed.next_raw(stored_3), "RunEnd");
    // The RunEnd is kept (and would go again) until archive says the run is finished.
    const pb::ArchiveReceipts restarted_again = receipts(kOld, id, std::pair{0, 5});
    EXPECT_EQ(feed.next_raw(restarted_again), "RunEnd");
    EXPECT_EQ(feed.next_raw(receipts(kOld, id, std::nullopt, true), 300ms), "");
    EXPECT_EQ(feed.metric("anisoflow_ingest_raw_unreceipted_frames"), 0);
}

}  // namespace
}  // namespace anisoflow::ingest
